"""Float-only math that exporters write inside larger patterns (x^2, sqrt, sums and L2 norms
over an axis). Canonicalize folds the patterns into one op each (GELU, L2Norm); what is left is
refused by quantization with the node named, since these have no integer kernel."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._util import infer_reduce, permute_sorted_axes, same
from compiler.ir.registry import NOT_QUANTIZED, AttrSpec, TType, op


def _infer_pow(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    try:
        shape = np.broadcast_shapes(t[0].shape, t[1].shape)
    except ValueError:
        raise IRError(
            f"pow {node.label}: shapes {t[0].shape} and {t[1].shape} do not broadcast"
        ) from None
    return [TType(tuple(shape), t[0].dtype)]


@op(
    "pow",
    inputs=(2, 2),
    infer=_infer_pow,
    layout="broadcast",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def pow_(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.power(x[0].astype(np.float64), x[1]).astype(np.float32)]


@op(
    "sqrt",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def sqrt(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.sqrt(x[0].astype(np.float64)).astype(np.float32)]


REDUCE_ATTRS = {"axes": AttrSpec("ints"), "keepdims": AttrSpec("int", 1, (0, 1))}


def _reduce(node: Node, x: np.ndarray, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    axes = tuple(a % x.ndim for a in node.attrs["axes"])  # type: ignore[attr-defined]
    return np.asarray(fn(x.astype(np.float64), axes, bool(node.attrs["keepdims"])), np.float32)


def _reduction(name: str, fn) -> None:  # type: ignore[no-untyped-def]
    """A float-only reduction over `axes` (fn(values, axes, keepdims), in float64)."""

    def run(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
        return [_reduce(node, x[0], fn)]

    run.__doc__ = f"{name} over axes (float only, inside patterns canonicalize folds)"
    op(
        name,
        attrs=REDUCE_ATTRS,
        infer=infer_reduce,
        layout="axis",
        memory="own",
        quant=NOT_QUANTIZED,
        kernels=(),
        permute_attrs=permute_sorted_axes,
    )(run)


_reduction("reduce_sum", lambda v, a, k: v.sum(axis=a, keepdims=k))
_reduction("reduce_l2", lambda v, a, k: np.sqrt((v * v).sum(axis=a, keepdims=k)))
