"""Fully connected (constant weights, [out, in]) and general matrix multiply."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, apply_fused_act
from compiler.ir.registry import TType, op


def _infer_dense(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    x, w = t[0].shape, t[1].shape
    if len(w) != 2 or not x or x[-1] != w[1]:
        raise IRError(f"dense {node.label}: input {list(x)} does not match weight {list(w)}")
    if len(t) == 3 and t[2].shape != (w[0],):
        raise IRError(f"dense {node.label}: bias {list(t[2].shape)} != [{w[0]}]")
    return [TType((*x[:-1], w[0]), t[0].dtype)]


@op("dense", attrs=dict(FUSED_ACT_ATTRS), inputs=(2, 3), infer=_infer_dense)
def dense(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """y = x @ W^T + b over the last axis (Gemm with transB=1, PyTorch Linear)."""
    y = x[0] @ x[1].T
    if len(x) == 3:
        y = y + x[2]
    return [apply_fused_act(y.astype(np.float32), node.attrs)]


def _infer_matmul(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    a = np.broadcast_to(np.int8(0), t[0].shape)  # zero-stride views: no memory for shapes
    b = np.broadcast_to(np.int8(0), t[1].shape)
    try:
        shape = np.matmul(a, b).shape
    except ValueError:
        raise IRError(
            f"matmul {node.label}: shapes {list(t[0].shape)} and {list(t[1].shape)} do not match"
        ) from None
    return [TType(tuple(shape), t[0].dtype)]


@op("matmul", inputs=(2, 2), infer=_infer_matmul)
def matmul(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.matmul(x[0], x[1]).astype(np.float32)]
