"""Binary elementwise arithmetic with numpy (= ONNX multidirectional) broadcasting."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.registry import TType, op

NUMERIC = ("f32", "i32", "i64")


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    try:
        shape = np.broadcast_shapes(t[0].shape, t[1].shape)
    except ValueError:
        raise IRError(
            f"{node.op} {node.label}: shapes {list(t[0].shape)} and {list(t[1].shape)} "
            "do not broadcast"
        ) from None
    if t[0].dtype != t[1].dtype:
        raise IRError(f"{node.op} {node.label}: dtypes {t[0].dtype} and {t[1].dtype} differ")
    return [TType(tuple(shape), t[0].dtype)]


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX integer Div truncates toward zero (numpy's // floors)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) ^ (b < 0), -q, q).astype(a.dtype)


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    def run(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(fn(x[0], x[1])).astype(x[0].dtype, copy=False)]

    run.__doc__ = f"elementwise {name} with broadcasting"
    op(name, inputs=(2, 2), infer=_infer, dtypes=NUMERIC)(run)


_binary("add", np.add)
_binary("sub", np.subtract)
_binary("mul", np.multiply)
_binary(
    "div",
    lambda a, b: _int_div(a, b) if a.dtype.kind == "i" else np.divide(a, b),
)
