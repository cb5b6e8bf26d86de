"""Fully connected (constant weights, [out, in]) and general matrix multiply."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered, struct
from compiler.ir.ops import _cmsis as cm
from compiler.ir.ops._cmsis import affine_i8
from compiler.ir.ops._qutil import clamp, pow2_exp, qp, scale_zp
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.ops.conv import check_bias
from compiler.ir.registry import (
    NOT_QUANTIZED,
    ChannelRule,
    Quant,
    TType,
    channel_rule,
    int_ref,
    lowering,
    op,
    params,
)
from compiler.ir.tensor import Tensor, const_tensor
from compiler.numerics.fixedpoint import (
    act_bounds,
    mbqm,
    quantize_multiplier,
    requant_constants,
    round_half_away_array,
)
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


@dataclass(frozen=True)
class DenseParams:
    """The integers of one quantized fully connected layer, computed once."""

    in_zp: int
    w_zp: int  # TFLite per-tensor weights may carry a zero point
    out_zp: int
    act_min: int
    act_max: int
    pow2_shift: int | None  # SeeDot: one rounding shift from the accumulator to the output
    mult: int  # affine per-tensor: one TFLite multiplier and shift
    shift: int
    # TFLite per-channel FULLY_CONNECTED: its reference kernel requantizes in double,
    # round(acc * s_x * s_w / s_y); the C reproduces that product exactly in integers
    exact_scale: tuple[float, ...]


@params("dense")
def dense_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> DenseParams:
    x, w, y = ins[0], ins[1], outs[0]
    (s_x, z_x), (s_y, z_y) = scale_zp(x), scale_zp(y)
    lo, hi = act_bounds(act_range(node.attrs), s_y, z_y, y.dtype)
    e_x = pow2_exp(x)
    if e_x is not None:
        shift = int(pow2_exp(y)) - (e_x + int(pow2_exp(w)))  # type: ignore[arg-type]
        return DenseParams(0, 0, 0, lo, hi, shift, 0, 0, ())
    q_w = qp(w)
    s_w = np.asarray(q_w.scale, np.float64)
    z_w = q_w.zero_point
    if s_w.size > 1:
        exact = tuple(float(e) for e in s_x * s_w / s_y)
        return DenseParams(z_x, 0, z_y, lo, hi, None, 0, 0, exact)
    m, sh = quantize_multiplier(s_x * float(s_w[0]) / s_y)
    return DenseParams(z_x, int(z_w[0]) if len(z_w) == 1 else 0, z_y, lo, hi, None, m, sh, ())


@int_ref("dense")
def dense_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite FullyConnected. Per-tensor weights: integer multiplier and shift. Per-channel
    weights: TFLite's reference kernel requantizes in double, round(acc * s_x*s_w/s_y), and so
    do we (TFLite Micro and CMSIS-NN use integer multipliers there and can differ by one)."""
    p = dense_params(node, ins, outs)
    if p.pow2_shift is not None:  # SeeDot: exponents add; one rounding shift to the output's
        acc = (x[0].astype(np.float64) @ x[1].astype(np.float64).T).astype(np.int64)
        if len(x) == 3:
            acc = acc + x[2].astype(np.int64)
        return [clamp(shift_round(acc, p.pow2_shift), p.act_min, p.act_max, outs[0])]
    z_w = np.asarray(qp(ins[1]).zero_point, np.float64)
    wz = x[1].astype(np.float64) - (z_w[:, None] if z_w.size > 1 else z_w)
    acc = ((x[0].astype(np.float64) - p.in_zp) @ wz.T).astype(np.int64)
    if len(x) == 3:
        acc = acc + x[2].astype(np.int64)
    if p.exact_scale:
        out = round_half_away_array(acc.astype(np.float64) * np.array(p.exact_scale)) + p.out_zp
    else:
        out = mbqm(acc, p.mult, p.shift) + p.out_zp
    return [clamp(out, p.act_min, p.act_max, outs[0])]


# --- lowering ------------------------------------------------------------------------------


def _mantissa(value: float) -> tuple[int, int]:
    """A double as mant * 2^exp with an integer mant < 2^53 (exact)."""
    if value == 0.0:
        return 0, 0
    m, e = math.frexp(value)
    return int(m * (1 << 53)), e - 53


def _special_rqc(graph: Graph, node: Node) -> np.ndarray | None:
    """Affine int8 with per-tensor symmetric weights whose requantization can be precomputed:
    the rows of tvc_rqc for every output (None where the shared kernel must run)."""
    ins = [graph.tensors[i] for i in node.inputs]
    y = graph.tensors[node.outputs[0]]
    x, w = ins[0], ins[1]
    if x.dtype != "i8" or y.dtype != "i8" or pow2_exp(x) is not None or w.data is None:
        return None
    if len(node.inputs) > 2 and graph.tensors[node.inputs[2]].data is None:
        return None
    p = dense_params(node, ins, [y])
    if p.exact_scale or p.w_zp != 0:
        return None
    n = w.shape[0]
    return requant_constants(np.full(n, p.mult), np.full(n, p.shift), p.out_zp)


def _special_applies(graph: Graph, node: Node) -> bool:
    return _special_rqc(graph, node) is not None


def _special_scratch(graph: Graph, node: Node) -> int:
    """The input row as int16 columns (K rounded up to a multiple of 4)."""
    k = graph.tensors[node.inputs[1]].shape[1]
    return ((k + 3) // 4) * 8


def dense16_weights(w: np.ndarray) -> np.ndarray:
    """[N][K] int8 weights as int16 words for tvc_dense16_row: per four output rows (zero rows
    past N) and per four of K (zeros past K), r(k0, k2) r(k1, k3) for each of the four rows."""
    n, k = w.shape
    n4, k4 = (n + 3) // 4, (k + 3) // 4
    flat = np.zeros((n4 * 4, k4 * 4), np.int64)
    flat[:n, :k] = w
    q = flat.reshape(n4, 4, k4, 4)  # [group][row][four][lane]
    words = (q[..., [0, 1]] & 0xFFFF) | (q[..., [2, 3]] << 16)
    return np.ascontiguousarray(words.transpose(0, 2, 1, 3)).reshape(-1)


@lowering("dense", "portable", applies=_special_applies, scratch=_special_scratch)
def dense_special(ctx: LowerCtx, node: Node) -> Lowered:
    """The layer's own fully connected kernel (--optimize speed): shapes and clamp as
    constants, the input row once in int16, SMLAD on prepacked weights, four rows at a time
    (compiler/runtime/tvc_special.h)."""
    if ctx.optimize != "speed":
        return dense_portable(ctx, node)
    low = Lowered()
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    y = ctx.graph.tensors[node.outputs[0]]
    x, w = ins[0], ins[1]
    p = dense_params(node, ins, [y])
    rows = _special_rqc(ctx.graph, node)
    assert rows is not None and w.data is not None
    n, k = w.shape
    n4, k4 = (n + 3) // 4, (k + 3) // 4
    pad = np.zeros((n4 * 4 - n, 4), np.int64)
    ctx.replace(node.inputs[1])
    w16 = low.table(f"{ctx.name}_w16", "int32_t", dense16_weights(w.data))
    rqc = low.table(f"{ctx.name}_rqc", "int32_t", np.concatenate([rows, pad]).reshape(-1))
    b = np.zeros(n4 * 4, np.int64)
    if len(node.inputs) > 2:
        bias_data = ins[2].data
        assert bias_data is not None
        b[:n] = bias_data
        ctx.replace(node.inputs[2])
    bias = low.table(f"{ctx.name}_bias", "int32_t", b)
    ctx.feature("TVC_SPECIAL")
    fn = f"{ctx.name}_row"
    low.decls.append(
        f"static TVC_NOINLINE void {fn}(const int16_t *col, int8_t *y) {{\n"
        f"    tvc_dense16_row(col, {w16}, {bias}, {rqc}, y, {n}, {k4}, {p.act_min}, "
        f"{p.act_max});\n}}"
    )
    low.stmts.append(
        f"tvc_dense16_layer({ctx.ptr(node.inputs[0])}, {ctx.scratch_ptr('int16_t')}, "
        f"{ctx.ptr(node.outputs[0], False)}, {fn}, {x.numel // k}, {k}, {n}, {k4}, {p.in_zp});"
    )
    return low


@lowering("dense", "portable")
def dense_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    name = ctx.name
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    y = ctx.graph.tensors[node.outputs[0]]
    x, w = ins[0], ins[1]
    dt = y.dtype
    p = dense_params(node, ins, [y])
    n_out, k = w.shape
    fields: dict[str, object] = {
        "rows": x.numel // k,
        "in_dim": k,
        "out_dim": n_out,
        "act_min": p.act_min,
        "act_max": p.act_max,
    }
    if p.pow2_shift is not None:
        fields.update(
            in_zp=0,
            w_zp=0,
            out_zp=0,
            requant="TVC_RQ_POW2",
            per_channel=0,
            shift=low.table(f"{name}_shift", "int32_t", [p.pow2_shift]),
        )
    else:
        fields.update(in_zp=p.in_zp, out_zp=p.out_zp, w_zp=p.w_zp)
        if p.exact_scale:
            mant, exp = zip(*(_mantissa(e) for e in p.exact_scale), strict=True)
            fields.update(
                requant="TVC_RQ_EXACT",
                per_channel=1,
                exact_mant=low.table(f"{name}_mant", "int64_t", np.array(mant)),
                exact_exp=low.table(f"{name}_exp", "int32_t", np.array(exp)),
            )
        else:
            fields.update(
                requant="TVC_RQ_MULT",
                per_channel=0,
                mult=low.table(f"{name}_mult", "int32_t", [p.mult]),
                shift=low.table(f"{name}_shift", "int32_t", [p.shift]),
            )
    low.decls.append(struct("tvc_dense_t", name, fields))
    check_bias(ctx.graph, node, dt)
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
    low.stmts.append(
        ctx.call(
            f"dense_{SUFFIX[dt]}",
            f"&{name}",
            ctx.ptr(node.inputs[0]),
            ctx.ptr(node.inputs[1]),
            bias,
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


def _cmsis_applies(graph: Graph, node: Node) -> bool:
    w = graph.tensors[node.inputs[1]]
    return affine_i8(graph, node) and w.qparams is not None and len(w.qparams.scale) == 1


@lowering("dense", "cmsis-nn", applies=_cmsis_applies)
def dense_cmsis(ctx: LowerCtx, node: Node) -> Lowered:
    """arm_fully_connected_s8 (per-tensor weights: the integer multiplier every backend shares)."""
    low = Lowered()
    name = ctx.name
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    y = ctx.graph.tensors[node.outputs[0]]
    x, w = ins[0], ins[1]
    p = dense_params(node, ins, [y])
    n_out, k = w.shape
    rows = x.numel // k
    low.decls += [
        struct(
            "cmsis_nn_fc_params",
            f"{name}_p",
            {
                "input_offset": -p.in_zp,
                "filter_offset": -p.w_zp,
                "output_offset": p.out_zp,
                "activation": f"{{.min = {p.act_min}, .max = {p.act_max}}}",
            },
        ),
        struct(
            "cmsis_nn_per_tensor_quant_params",
            f"{name}_q",
            {"multiplier": p.mult, "shift": p.shift},
        ),
        cm.dims(f"{name}_in", rows, 1, 1, k),
        cm.dims(f"{name}_f", k, 1, 1, n_out),
        cm.dims(f"{name}_b", 1, 1, 1, n_out),
        cm.dims(f"{name}_out", rows, 1, 1, n_out),
    ]
    cctx = cm.context(ctx, low)
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
    x_ptr, y_ptr = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0], False)
    low.stmts.append(
        cm.status(
            "arm_fully_connected_s8",
            cctx,
            f"&{name}_p",
            f"&{name}_q",
            f"&{name}_in",
            x_ptr,
            f"&{name}_f",
            ctx.ptr(node.inputs[1]),
            f"&{name}_b",
            bias,
            f"&{name}_out",
            y_ptr,
        )
    )
    return low


# --- dead-channel elimination: constant input features fold into the bias ---------------------


def _dense_kind(graph: Graph, node: Node) -> str | None:
    x, w = (graph.tensors[node.inputs[i]] for i in (0, 1))
    y = graph.tensors[node.outputs[0]]
    plain = (
        x.dtype == y.dtype == "i8"
        and len(x.shape) == 2
        and pow2_exp(x) is None
        and w.data is not None
        and len(node.inputs) == 3
        and graph.tensors[node.inputs[2]].data is not None
    )
    return "mix" if plain else None


def _dense_folded_bias(graph: Graph, node: Node, consts: dict[int, int]) -> np.ndarray:
    """bias + sum over constant features k of (c_k - zp_x) * (w[o, k] - zp_w)."""
    w = graph.tensors[node.inputs[1]]
    z_x = scale_zp(graph.tensors[node.inputs[0]])[1]
    z_w = np.asarray(qp(w).zero_point, np.int64)
    assert w.data is not None
    wz = w.data.astype(np.int64) - (z_w[:, None] if z_w.size > 1 else z_w)
    b = graph.tensors[node.inputs[2]].data.astype(np.int64)  # type: ignore[union-attr]
    for k, c in consts.items():
        b = b + (int(c) - z_x) * wz[:, k]
    return b


def _dense_foldable(graph: Graph, node: Node, consts: dict[int, int]) -> set[int]:
    b = _dense_folded_bias(graph, node, consts)
    return set() if b.min() < -(2**31) or b.max() >= 2**31 else set(consts)


def _dense_rewrite(
    graph: Graph, node: Node, folded: dict[int, int], drop_in: set[int], drop_out: set[int]
) -> None:
    assert set(folded) == drop_in and not drop_out
    w, bt = graph.tensors[node.inputs[1]], graph.tensors[node.inputs[2]]
    b = _dense_folded_bias(graph, node, folded).astype(np.int32)
    keep = [k for k in range(w.shape[1]) if k not in drop_in]
    assert w.data is not None
    new_w = const_tensor(w.name, np.ascontiguousarray(w.data[:, keep]), w.layout)
    new_w.qparams = w.qparams
    new_b = const_tensor(bt.name, b, bt.layout)
    new_b.qparams = bt.qparams
    node.inputs[1] = graph.add_const(f"{w.name}_live", new_w)
    node.inputs[2] = graph.add_const(f"{bt.name}_live", new_b)


channel_rule(
    "dense", ChannelRule(kind=_dense_kind, foldable=_dense_foldable, rewrite=_dense_rewrite)
)
