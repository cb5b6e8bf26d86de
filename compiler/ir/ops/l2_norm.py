"""L2 normalization over the channel axis with a learned per-channel scale (S3FD's L2Norm, as
EdgeML's RNNPool face detectors use it on their early feature maps):

    y = x / (sqrt(sum_c x^2) + eps) * scale_c

Exporters write it as Pow / ReduceSum / Sqrt / Add / Div / Mul (or ReduceL2, or
LpNormalization); canonicalize folds those into this one op (passes/fold_l2norm.py). TFLite's
L2_NORMALIZATION is the op without a scale.

Integers. Affine int8 is TFLite's L2Normalization: sum of (x - zp)^2 in int32, 1/sqrt by
gemmlowp's Newton-Raphson (GetInvSqrtQuantizedMultiplierExp), each value rescaled into Q7
(scale 1/128, the TFLite output); the learned scale is then one per-channel requantization of
that Q7 value times the scale's int8 code (symmetric per channel, so the code is +-127 and the
magnitude lives in the multiplier). With no scale and an output of 1/128, zero point 0 this is
TFLite's kernel exactly. SeeDot (int8/int16): an exact integer square root of the sum with 16
extra bits, one rounded division per value into the output exponent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered, struct_call
from compiler.ir.ops._qutil import clamp, pow2_exp, qp, scale_zp
from compiler.ir.ops._util import permute_axis, same
from compiler.ir.registry import AttrSpec, Quant, TType, int_ref, lowering, op, params
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import (
    QRANGE,
    inv_sqrt_multiplier_exp,
    isqrt,
    mbqm,
    quantize_multipliers,
    trunc_div,
)

Q7 = 7  # TFLite's L2Normalization output: scale 1/128
SQRT_BITS = 8  # SeeDot: the square root carries 8 fractional bits (the sum 16)


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    rank = len(t[0].shape)
    axis = int(node.attrs["axis"]) % rank  # type: ignore[call-overload]
    if len(t) == 2 and t[1].shape != (t[0].shape[axis],):
        raise IRError(
            f"l2_norm {node.label}: scale {list(t[1].shape)} is not one value per channel "
            f"({t[0].shape[axis]})"
        )
    return same(t)


@op(
    "l2_norm",
    attrs={"axis": AttrSpec("int", 1), "eps": AttrSpec("float", 1e-10)},
    inputs=(1, 2),
    infer=_infer,
    layout="axis",
    memory="own",
    quant=Quant("calibrated", weights="per_channel"),
    kernels=("tvc_norm.c",),
    permute_attrs=permute_axis,
)
def l2_norm(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """x / (||x||_2 over `axis` + eps), times a per-channel scale when given."""
    axis = int(node.attrs["axis"]) % x[0].ndim  # type: ignore[call-overload]
    v = x[0].astype(np.float64)
    norm = np.sqrt((v * v).sum(axis=axis, keepdims=True)) + float(node.attrs["eps"])  # type: ignore[arg-type]
    y = v / norm
    if len(x) == 2:
        y = y * x[1].astype(np.float64).reshape([-1 if a == axis else 1 for a in range(v.ndim)])
    return [y.astype(np.float32)]


@dataclass(frozen=True)
class L2NormParams:
    """The integers of one quantized L2Norm, computed once."""

    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    pow2_shift: int | None  # SeeDot: k in y = x * w * 2^k / sqrt(sum x^2 * 2^16)
    mult: tuple[int, ...]  # affine: per channel, Q7 value times the scale code -> output
    shift: tuple[int, ...]
    weights: tuple[int, ...]  # the scale's integer codes per channel (1 without a scale)


@params("l2_norm")
def l2_norm_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> L2NormParams:
    x, y = ins[0], outs[0]
    c = x.shape[-1]
    if int(node.attrs["axis"]) % len(x.shape) != len(x.shape) - 1:  # type: ignore[call-overload]
        raise IRError(f"l2_norm {node.label}: integer L2Norm runs over the last (channel) axis")
    lo, hi = QRANGE[y.dtype]
    if len(ins) == 2:
        assert ins[1].data is not None
        codes = tuple(int(v) for v in ins[1].data.reshape(-1))
    else:
        codes = (1,) * c
    e_x, e_y = pow2_exp(x), pow2_exp(y)
    if e_x is not None and e_y is not None:
        e_w = int(pow2_exp(ins[1])) if len(ins) == 2 else 0  # type: ignore[arg-type]
        k = SQRT_BITS + e_w - e_y
        if not -31 <= k <= 30:
            raise IRError(f"l2_norm {node.label}: output exponent {e_y} is out of reach")
        return L2NormParams(0, 0, lo, hi, k, (), (), codes)
    s_x, z_x = scale_zp(x)
    s_y, z_y = scale_zp(y)
    if x.dtype != "i8":
        raise IRError(f"l2_norm {node.label}: affine L2Norm is int8 (TFLite's kernel)")
    s_w = np.asarray(qp(ins[1]).scale, np.float64) if len(ins) == 2 else np.ones(1)
    m, s = quantize_multipliers(np.broadcast_to(s_w, (c,)) / (128.0 * s_y))
    return L2NormParams(
        z_x, z_y, lo, hi, None, tuple(int(v) for v in m), tuple(int(v) for v in s), codes
    )


@int_ref("l2_norm")
def l2_norm_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    p = l2_norm_params(node, ins, outs)
    w = np.array(p.weights, np.int64)
    if p.pow2_shift is not None:
        v = x[0].astype(np.int64)
        root = np.maximum(isqrt((v * v).sum(axis=-1, keepdims=True) << (2 * SQRT_BITS)), 1)
        num, den = v * w, root
        if p.pow2_shift >= 0:
            num = num << p.pow2_shift
        else:
            den = den << -p.pow2_shift
        q = trunc_div(np.abs(num) + den // 2, den) * np.sign(num)
        return [clamp(q, p.act_min, p.act_max, outs[0])]
    v = x[0].astype(np.int64) - p.in_zp
    m, s = inv_sqrt_multiplier_exp((v * v).sum(axis=-1, keepdims=True))
    n = np.clip(mbqm(v, m, s + Q7), -128, 127)  # TFLite's output, Q7
    y = mbqm(n * w, np.array(p.mult), np.array(p.shift)) + p.out_zp
    return [clamp(y, p.act_min, p.act_max, outs[0])]


def _last_axis(graph: Graph, node: Node) -> bool:
    rank = len(graph.tensors[node.inputs[0]].shape)
    return int(node.attrs["axis"]) % rank == rank - 1  # type: ignore[call-overload]


@lowering("l2_norm", "portable", applies=_last_axis)
def l2_norm_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    y = ctx.graph.tensors[node.outputs[0]]
    p = l2_norm_params(node, ins, [y])
    depth = ins[0].shape[-1]
    fields: dict[str, object] = {
        "rows": ins[0].numel // depth,
        "depth": depth,
        "in_zp": p.in_zp,
        "out_zp": p.out_zp,
        "act_min": p.act_min,
        "act_max": p.act_max,
        "pow2_shift": p.pow2_shift or 0,
        "weights": low.table(f"{ctx.name}_w", "int16_t", np.array(p.weights, np.int64)),
    }
    if len(node.inputs) == 2:
        ctx.replace(node.inputs[1])  # read as int16 codes from the table above
    if p.pow2_shift is None:
        fields["mult"] = low.table(f"{ctx.name}_mult", "int32_t", np.array(p.mult, np.int64))
        fields["shift"] = low.table(f"{ctx.name}_shift", "int32_t", np.array(p.shift, np.int64))
        kernel = "l2_norm_s8"
    else:
        fields.update(mult="0", shift="0")
        kernel = f"l2_norm_pow2_{SUFFIX[y.dtype]}"
    return struct_call(ctx, low, node, "tvc_l2norm_t", fields, kernel)
