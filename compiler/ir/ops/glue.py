"""Shape glue that exporters emit around dynamic dims; constant folding removes all of it."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.registry import NOT_QUANTIZED, AttrSpec, TType, op
from compiler.ir.tensor import DTYPES

ANY = tuple(DTYPES)


def _shape_range(rank: int, attrs: dict[str, object]) -> slice:
    end = attrs.get("end")
    return slice(int(attrs["start"]), None if end is None else int(end))  # type: ignore[call-overload]


@op(
    "shape",
    attrs={"start": AttrSpec("int", 0), "end": AttrSpec("int", None)},
    infer=lambda n, t, v: [
        TType((len(t[0].shape[_shape_range(len(t[0].shape), n.attrs)]),), "i64")
    ],
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def shape(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """The input's (static) shape; foldable whether or not the input is constant."""
    return [np.array(x[0].shape[_shape_range(x[0].ndim, node.attrs)], np.int64)]


def _infer_gather(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    data = t[0].shape
    axis = int(node.attrs["axis"]) % max(len(data), 1)  # type: ignore[arg-type]
    return [TType((*data[:axis], *t[1].shape, *data[axis + 1 :]), t[0].dtype)]


@op(
    "gather",
    attrs={"axis": AttrSpec("int", 0)},
    inputs=(2, 2),
    infer=_infer_gather,
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def gather(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.take(x[0], x[1].astype(np.int64), axis=node.attrs["axis"])]  # type: ignore[call-overload]


def _shape_value(node: Node, v: np.ndarray | None) -> tuple[int, ...] | None:
    if v is None:
        return None
    if v.ndim != 1:
        raise IRError(f"{node.op} {node.label}: shape input must be 1-D")
    return tuple(int(d) for d in v)


@op(
    "constant_of_shape",
    attrs={"value": AttrSpec("float", 0.0), "dtype": AttrSpec("str", "f32", tuple(DTYPES))},
    infer=lambda n, t, v: (
        None if (s := _shape_value(n, v[0])) is None else [TType(s, str(n.attrs["dtype"]))]
    ),
    dtypes=("i64",),
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def constant_of_shape(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    dt = DTYPES[str(node.attrs["dtype"])]
    return [np.full(tuple(int(d) for d in x[0]), node.attrs["value"], dtype=dt)]


def _infer_expand(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType] | None:
    s = _shape_value(node, v[1])
    if s is None:
        return None
    try:
        return [TType(tuple(np.broadcast_shapes(t[0].shape, s)), t[0].dtype)]
    except ValueError:
        raise IRError(
            f"expand {node.label}: {list(t[0].shape)} does not expand to {list(s)}"
        ) from None


@op(
    "expand",
    inputs=(2, 2),
    infer=_infer_expand,
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def expand(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    target = np.broadcast_shapes(x[0].shape, tuple(int(d) for d in x[1]))
    return [np.ascontiguousarray(np.broadcast_to(x[0], target))]


def _infer_range(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType] | None:
    if any(a is None for a in v):
        return None
    return [TType((len(np.arange(v[0], v[1], v[2])),), t[0].dtype)]  # type: ignore[call-overload]


@op(
    "range",
    inputs=(3, 3),
    infer=_infer_range,
    dtypes=("i32", "i64", "f32"),
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def range_(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.arange(x[0], x[1], x[2]).astype(x[0].dtype)]  # type: ignore[call-overload]
