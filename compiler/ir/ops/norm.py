"""Inference-mode batch normalization (folded away by canonicalize when it can be)."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.registry import NOT_QUANTIZED, AttrSpec, TType, op


def bn_affine(x: list[np.ndarray], eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel (multiplier, offset) that batch norm applies, in float64."""
    scale, bias, mean, var = (a.astype(np.float64) for a in x[1:5])
    mul = scale / np.sqrt(var + eps)
    return mul, bias - mean * mul


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    c = t[0].shape[1] if node.attrs["layout"] == "NCHW" else t[0].shape[-1]
    if any(p.shape != (c,) for p in t[1:]):
        raise IRError(f"batch_norm {node.label}: parameters must all be [{c}]")
    return [t[0]]


@op(
    "batch_norm",
    attrs={"epsilon": AttrSpec("float", 1e-5)},
    inputs=(5, 5),
    infer=_infer,
    layout="spatial",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def batch_norm(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    mul, off = bn_affine(x, float(node.attrs["epsilon"]))  # type: ignore[arg-type]
    shape = [1] * x[0].ndim
    axis = 1 if node.attrs["layout"] == "NCHW" else x[0].ndim - 1
    shape[axis] = -1
    return [(x[0] * mul.reshape(shape) + off.reshape(shape)).astype(np.float32)]
