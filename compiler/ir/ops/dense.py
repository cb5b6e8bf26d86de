"""Fully connected (constant weights, [out, in]) and general matrix multiply."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._qutil import finish, pow2_exp, qp, scale_zp
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import NOT_QUANTIZED, Quant, TType, int_ref, op
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import mbqm, quantize_multipliers, round_half_away_array
from compiler.numerics.pow2 import shift_round


def _infer_dense(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    x, w = t[0].shape, t[1].shape
    if len(w) != 2 or not x or x[-1] != w[1]:
        raise IRError(f"dense {node.label}: input {list(x)} does not match weight {list(w)}")
    if len(t) == 3 and t[2].shape != (w[0],):
        raise IRError(f"dense {node.label}: bias {list(t[2].shape)} != [{w[0]}]")
    return [TType((*x[:-1], w[0]), t[0].dtype)]


@op(
    "dense",
    attrs=dict(FUSED_ACT_ATTRS),
    inputs=(2, 3),
    infer=_infer_dense,
    macs=lambda n, i, o: int(np.prod(o[0].shape)) * i[1].shape[1],
    layout="logical",
    memory="own",
    quant=Quant("calibrated", weights="per_tensor"),
    kernels=("tvc_dense.c",),
)
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


@op(
    "matmul",
    inputs=(2, 2),
    infer=_infer_matmul,
    layout="logical",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def matmul(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.matmul(x[0], x[1]).astype(np.float32)]


@int_ref("dense")
def dense_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite FullyConnected. Per-tensor weights: integer multiplier and shift. Per-channel
    weights: TFLite's reference kernel requantizes in double, round(acc * s_x*s_w/s_y), and so
    do we (TFLite Micro and CMSIS-NN use integer multipliers there and can differ by one)."""
    e_x = pow2_exp(ins[0])
    if e_x is not None:  # SeeDot: exponents add; one rounding shift to the output's
        acc = (x[0].astype(np.float64) @ x[1].astype(np.float64).T).astype(np.int64)
        if len(x) == 3:
            acc = acc + x[2].astype(np.int64)
        e_acc = e_x + int(pow2_exp(ins[1]))  # type: ignore[arg-type]
        shifted = shift_round(acc, int(pow2_exp(outs[0])) - e_acc)  # type: ignore[arg-type]
        return [finish(shifted, outs[0], act_range(node.attrs))]
    s_x, z_x = scale_zp(ins[0])
    q_w = qp(ins[1])
    s_w = np.asarray(q_w.scale, np.float64)
    z_w = np.asarray(q_w.zero_point, np.float64)
    s_y, z_y = scale_zp(outs[0])
    n_out = x[1].shape[0]
    wz = x[1].astype(np.float64) - (z_w[:, None] if z_w.size > 1 else z_w)
    acc = ((x[0].astype(np.float64) - z_x) @ wz.T).astype(np.int64)
    if len(x) == 3:
        acc = acc + x[2].astype(np.int64)
    if s_w.size > 1:
        scaled = acc.astype(np.float64) * (s_x * s_w / s_y)
        return [finish(round_half_away_array(scaled) + z_y, outs[0], act_range(node.attrs))]
    mult, shift = quantize_multipliers(s_x * np.broadcast_to(s_w, (n_out,)) / s_y)
    return [finish(mbqm(acc, mult, shift) + z_y, outs[0], act_range(node.attrs))]
