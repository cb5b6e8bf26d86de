"""Quantization-parameter access and output clamping shared by the integer references."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.tensor import DTYPES, QParams, Tensor
from compiler.numerics.fixedpoint import QRANGE, act_bounds


def qp(t: Tensor) -> QParams:
    if t.qparams is None:
        raise IRError(f"tensor {t.name} has no quantization parameters")
    return t.qparams


def scale_zp(t: Tensor) -> tuple[float, int]:
    """Per-tensor (scale, zero point); a power-of-two tensor is 2^exp with zero point 0."""
    q = qp(t)
    if q.exp is not None:
        return 2.0**q.exp, 0
    if q.axis is not None and len(q.scale) > 1:
        raise IRError(f"tensor {t.name} is quantized per channel where per-tensor is required")
    return float(q.scale[0]), int(q.zero_point[0])


def pow2_exp(t: Tensor) -> int | None:
    """The exponent of a SeeDot-style tensor (value = q * 2^exp), None for affine ones."""
    return None if t.qparams is None else t.qparams.exp


def channel_scales(t: Tensor) -> np.ndarray:
    q = qp(t)
    return np.asarray(q.scale, np.float64)


def finish(acc: np.ndarray, out: Tensor, act: tuple[float, float] | None = None) -> np.ndarray:
    """Clamp to the fused activation's integer range (or the dtype's) and narrow."""
    s, zp = scale_zp(out)
    lo, hi = act_bounds(act, s, zp, out.dtype) if out.dtype in QRANGE else (None, None)
    return np.clip(acc, lo, hi).astype(DTYPES[out.dtype])


def same_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> None:
    """Data-movement ops keep bytes as they are: every integer input and output shares params."""
    ref = outs[0].qparams
    for t in [*ins, *outs]:
        if t.dtype in QRANGE and not t.is_const and t.qparams != ref:
            raise IRError(
                f"{node.op} {node.label}: {t.name} has quantization {t.qparams}, output has {ref}; "
                "data-movement ops need equal parameters"
            )


def clamp(acc: np.ndarray, lo: int, hi: int, out: Tensor) -> np.ndarray:
    """Clamp to precomputed integer bounds (an op's params) and narrow to the output dtype."""
    return np.clip(acc, lo, hi).astype(DTYPES[out.dtype])
