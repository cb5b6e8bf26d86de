"""Pointwise activations and softmax; also the fused-activation clamp that conv/dense carry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered, struct_call
from compiler.ir.ops._cmsis import affine_i8
from compiler.ir.ops._qutil import clamp, pow2_exp, scale_zp
from compiler.ir.ops._util import channel_map, permute_axis, same, same_rows
from compiler.ir.registry import (
    CALIBRATED,
    NOT_QUANTIZED,
    AttrSpec,
    ChannelRule,
    Quant,
    RowRule,
    channel_rule,
    get_op,
    int_ref,
    lowering,
    op,
    params,
    row_rule,
)
from compiler.ir.tensor import Tensor
from compiler.numerics import fixedpoint as fx
from compiler.numerics.fixedpoint import trunc_div
from compiler.numerics.pow2 import TABLE_BITS, apply_table, pointwise_table, saturate

FUSED_ACTS = ("none", "relu", "relu6", "clip")
# attributes every op with a fused activation carries
FUSED_ACT_ATTRS = {
    "act": AttrSpec("str", "none", FUSED_ACTS),
    "clip": AttrSpec("floats", None),  # [lo, hi], only with act="clip"
}


def act_range(attrs: dict[str, object]) -> tuple[float, float] | None:
    """The clamp a fused activation applies, or None."""
    act = attrs.get("act", "none")
    if act == "relu":
        return 0.0, float("inf")
    if act == "relu6":
        return 0.0, 6.0
    if act == "clip":
        lo, hi = attrs["clip"]  # type: ignore[misc]
        return float(lo), float(hi)
    return None


def apply_fused_act(y: np.ndarray, attrs: dict[str, object]) -> np.ndarray:
    r = act_range(attrs)
    return y if r is None else np.clip(y, r[0], r[1]).astype(y.dtype)


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32, copy=False)


@op(
    "relu",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.maximum(x[0], np.float32(0))]


@op(
    "clip",
    attrs={"min": AttrSpec("float", float("-inf")), "max": AttrSpec("float", float("inf"))},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def clip(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(np.clip(x[0], node.attrs["min"], node.attrs["max"]))]


@op(
    "leaky_relu",
    attrs={"alpha": AttrSpec("float", 0.01)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def leaky_relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a = np.float32(node.attrs["alpha"])
    return [np.where(x[0] >= 0, x[0], x[0] * a)]


@op(
    "sigmoid",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=Quant("fixed", (1.0 / 256, -128)),
    kernels=("tvc_pointwise.c",),
)
def sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(1.0 / (1.0 + np.exp(-x[0].astype(np.float64))))]


@op(
    "tanh",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=Quant("fixed", (1.0 / 128, 0)),
    kernels=("tvc_pointwise.c",),
)
def tanh(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.tanh(x[0])]


@op(
    "hard_sigmoid",
    attrs={"alpha": AttrSpec("float", 0.2), "beta": AttrSpec("float", 0.5)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def hard_sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a, b = np.float32(node.attrs["alpha"]), np.float32(node.attrs["beta"])
    return [_f32(np.clip(x[0] * a + b, 0, 1))]


@op(
    "hard_swish",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def hard_swish(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """x * relu6(x + 3) / 6 (ONNX HardSwish: alpha 1/6, beta 0.5)."""
    return [_f32(x[0] * np.clip(x[0] * np.float32(1 / 6) + np.float32(0.5), 0, 1))]


_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)
SQRT_2_OVER_PI = np.float32(math.sqrt(2.0 / math.pi))  # TFLite's kSqrt2dPi, a float


def gelu_f32(v: np.ndarray, approximate: str) -> np.ndarray:
    """GELU as TFLite's reference builds its tables (float32 in, float32 out): exact,
    0.5 x erfc(-x / sqrt 2); "tanh", 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). The
    transcendental parts are evaluated in double and rounded once to float32, the arithmetic
    around them in float32 as the C++ does."""
    x = np.asarray(v, np.float32)
    half_x = np.float32(0.5) * x
    if approximate == "tanh":
        inner = x + np.float32(0.044715) * x * x * x
        t = np.tanh((SQRT_2_OVER_PI * inner).astype(np.float64)).astype(np.float32)
        return (half_x * (np.float32(1) + t)).astype(np.float32)
    neg = (x * -np.float32(math.sqrt(0.5))).astype(np.float64)
    return (half_x * _erfc(neg).astype(np.float64).astype(np.float32)).astype(np.float32)


@op(
    "gelu",
    attrs={"approximate": AttrSpec("str", "none", ("none", "tanh"))},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def gelu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """GELU: x Phi(x) (ONNX Gelu, torch nn.GELU, TFLite GELU); "tanh" is the tanh form."""
    return [gelu_f32(x[0], str(node.attrs["approximate"]))]


@op(
    "erf",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="own",
    quant=NOT_QUANTIZED,  # only inside GELU's exported pattern, which canonicalize folds
    kernels=(),
)
def erf(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_erf(x[0].astype(np.float64)).astype(np.float64).astype(np.float32)]


@op(
    "softmax",
    attrs={"axis": AttrSpec("int", -1), "beta": AttrSpec("float", 1.0)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="own",
    quant=Quant("fixed", (1.0 / 256, -128)),
    kernels=("tvc_softmax.c",),
    permute_attrs=permute_axis,
)
def softmax(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs["axis"])  # type: ignore[arg-type]
    z = (x[0] - x[0].max(axis=axis, keepdims=True)) * np.float32(node.attrs["beta"])
    e = np.exp(z)
    return [_f32(e / e.sum(axis=axis, keepdims=True))]


# --- integer parameters and references ------------------------------------------------------


@dataclass(frozen=True)
class RequantParams:
    """TFLite ReluX / Requantize, computed once: one multiplier s_in / s_out, a clamp."""

    in_zp: int
    out_zp: int
    mult: int
    shift: int
    act_min: int
    act_max: int


def requant_params(
    ins: list[Tensor], outs: list[Tensor], act: tuple[float, float] | None
) -> RequantParams:
    (si, zi), (so, zo) = scale_zp(ins[0]), scale_zp(outs[0])
    m, sh = fx.quantize_multiplier(si / so)
    lo, hi = fx.act_bounds(act, so, zo, outs[0].dtype)
    return RequantParams(zi, zo, m, sh, lo, hi)


def _relux_range(node: Node) -> tuple[float, float]:
    if node.op == "relu":
        return 0.0, float("inf")
    return float(node.attrs["min"]), float(node.attrs["max"])  # type: ignore[arg-type]


@params("relu")
@params("clip")
def relux_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> RequantParams:
    return requant_params(ins, outs, _relux_range(node))


def requant_int(p: RequantParams, x: np.ndarray, out: Tensor) -> np.ndarray:
    return clamp(
        p.out_zp + fx.mbqm(x.astype(np.int64) - p.in_zp, p.mult, p.shift), p.act_min, p.act_max, out
    )


@int_ref("relu")
@int_ref("clip")
def relux_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite ReluX: requantize to the output scale, clamp to the activation's range."""
    return [requant_int(relux_params(node, ins, outs), x[0], outs[0])]


def _sigmoid_f32(v: np.ndarray) -> np.ndarray:
    """1.0f / (1.0f + expf(-v)) evaluated in float32 steps (expf correctly rounded)."""
    e = np.exp(-v.astype(np.float64)).astype(np.float32)
    return np.float32(1) / (np.float32(1) + e)


def _tanh_f32(v: np.ndarray) -> np.ndarray:
    return np.tanh(v.astype(np.float64)).astype(np.float32)


def table_fn(node: Node) -> Callable[[np.ndarray], np.ndarray]:
    """The float function a pointwise op's table samples: TFLite's own evaluation for
    sigmoid/tanh (their int8 kernels build the table so), the float reference otherwise."""
    if node.op == "sigmoid":
        return _sigmoid_f32
    if node.op == "tanh":
        return _tanh_f32
    if node.op == "gelu":
        return lambda v: gelu_f32(v, str(node.attrs["approximate"]))
    run = get_op(node.op).run
    return lambda v: run(node, [v])[0]


@dataclass(frozen=True)
class TableParams:
    """A pointwise op as a table, computed once: int8, one entry per input code (affine:
    TFLite's LUTPopulate; SeeDot: exact per code); int16 (SeeDot), 2^TABLE_BITS + 1 points with
    linear interpolation."""

    table: np.ndarray  # int8 codes, or int32 points for int16


def table_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> TableParams:
    fn = table_fn(node)
    e_in, e_out = pow2_exp(ins[0]), pow2_exp(outs[0])
    if e_in is not None and e_out is not None:
        return TableParams(pointwise_table(fn, e_in, e_out, outs[0].dtype))
    if outs[0].dtype != "i8":
        raise IRError(f"{node.op} {node.label}: affine pointwise kernels are int8 lookup tables")
    (si, zi), (so, zo) = scale_zp(ins[0]), scale_zp(outs[0])
    return TableParams(fx.lut_int8(si, zi, so, zo, fn))


def table_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """A pointwise op by its table (TFLite int8 Logistic/Tanh build theirs the same way)."""
    p = table_params(node, ins, outs)
    dt = np.int8 if outs[0].dtype == "i8" else np.int16
    return [apply_table(p.table, x[0], outs[0].dtype).astype(dt)]


TABLE_OPS = ("sigmoid", "tanh", "hard_swish", "hard_sigmoid", "leaky_relu", "gelu")
for _name in TABLE_OPS:
    params(_name)(table_params)
    int_ref(_name)(table_int)


@dataclass(frozen=True)
class SoftmaxParams:
    """Softmax's integers, computed once. Affine: TFLite's input multiplier, left shift and
    diff_min; SeeDot: the exp table (Q0.15-ish, by the pointwise table) and the output shift."""

    pow2: bool
    mult: int = 0
    left_shift: int = 0
    diff_min: int = 0
    exp_table: np.ndarray | None = None
    out_shift: int = 0


@params("softmax")
def softmax_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> SoftmaxParams:
    e_in, e_out = pow2_exp(ins[0]), pow2_exp(outs[0])
    beta = np.float32(node.attrs["beta"])
    if e_in is not None and e_out is not None:
        dt = outs[0].dtype
        bits = 16 if dt == "i16" else 8
        table = pointwise_table(
            lambda t: np.exp(t.astype(np.float64) * beta).astype(np.float32),
            e_in,
            -(bits - 1),
            dt,
        )
        return SoftmaxParams(True, exp_table=table, out_shift=-e_out)
    if outs[0].dtype != "i8":
        raise IRError(f"softmax {node.label}: integer softmax runs over the last axis, int8")
    try:
        mult, shift, diff_min = fx.softmax_params(float(beta), scale_zp(ins[0])[0])
    except ValueError as e:
        raise IRError(f"softmax {node.label}: {e}") from None
    return SoftmaxParams(False, mult, shift, diff_min)


@int_ref("softmax")
def softmax_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite reference int8 Softmax: gemmlowp fixed-point exp of scaled differences to the
    row max, a fixed-point reciprocal of their sum; output scale 1/256, zero point -128.
    SeeDot: exp of (x - max) by the table into Q0.15, an int32 sum, one rounded integer
    division per element into the output exponent."""
    axis = int(node.attrs["axis"]) % x[0].ndim  # type: ignore[arg-type]
    p = softmax_params(node, ins, outs)
    v = x[0].astype(np.int64)
    if p.pow2:
        dt = outs[0].dtype
        bits = 16 if dt == "i16" else 8
        diff = np.maximum(v - v.max(axis=axis, keepdims=True), -(1 << (bits - 1)))
        e = apply_table(p.exp_table, diff, dt)  # type: ignore[arg-type]
        total = e.sum(axis=axis, keepdims=True)
        num = e << p.out_shift
        out = trunc_div(num + total // 2, np.maximum(total, 1))
        return [saturate(out, dt).astype(np.int8 if dt == "i8" else np.int16)]
    if axis != x[0].ndim - 1:
        raise IRError(f"softmax {node.label}: integer softmax runs over the last axis, int8")
    diff = v - v.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    scaled = fx.mbqm_gt_one(diff, p.mult, p.left_shift)
    exps = np.where(valid, fx.exp_on_negative_values(scaled, 5), 0)
    total = fx.rdbpot(exps, 12).sum(axis=-1, keepdims=True)  # Rescale<12>, F12 accumulator
    recip, over = fx.get_reciprocal(total, 12)
    out = fx.rdbpot(fx.srdhm(recip, exps), over + 31 - 8) - 128
    return [np.where(valid, np.clip(out, -128, 127), -128).astype(np.int8)]


# --- lowering ------------------------------------------------------------------------------


def requant_portable(
    ctx: LowerCtx, node: Node, p: RequantParams, kernel: str | None = None
) -> Lowered:
    low = Lowered()
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    fields: dict[str, object] = {
        "count": x.numel,
        "in_zp": p.in_zp,
        "out_zp": p.out_zp,
        "mult": p.mult,
        "shift": p.shift,
        "act_min": p.act_min,
        "act_max": p.act_max,
        "requant": "TVC_RQ_MULT",
    }
    kernel = kernel or f"requant_{SUFFIX[y.dtype]}"
    return struct_call(ctx, low, node, "tvc_requant_t", fields, kernel)


def _tensors(ctx: LowerCtx, node: Node) -> tuple[list[Tensor], list[Tensor]]:
    g = ctx.graph
    return [g.tensors[i] for i in node.inputs], [g.tensors[o] for o in node.outputs]


@lowering("relu", "portable")
@lowering("clip", "portable")
def relux_portable(ctx: LowerCtx, node: Node) -> Lowered:
    return requant_portable(ctx, node, relux_params(node, *_tensors(ctx, node)))


def _table_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    p = table_params(node, [x], [y])
    if y.dtype == "i8":
        t = low.table(f"{ctx.name}_lut", "int8_t", p.table)
        low.stmts.append(
            ctx.call(
                "lut_s8", str(x.numel), t, ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0], False)
            )
        )
    else:
        t = low.table(f"{ctx.name}_table", "int32_t", p.table)
        low.stmts.append(
            ctx.call(
                "interp_s16",
                str(x.numel),
                t,
                str(TABLE_BITS),
                ctx.ptr(node.inputs[0]),
                ctx.ptr(node.outputs[0], False),
            )
        )
    return low


for _name in TABLE_OPS:
    lowering(_name, "portable")(_table_portable)


def _last_axis(graph: Graph, node: Node) -> bool:
    rank = len(graph.tensors[node.inputs[0]].shape)
    return int(node.attrs["axis"]) % rank == rank - 1  # type: ignore[call-overload]


@lowering("softmax", "portable", applies=_last_axis)
def softmax_portable(ctx: LowerCtx, node: Node) -> Lowered:
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    dt = y.dtype
    low = Lowered()
    depth = x.shape[-1]
    f: dict[str, object] = {"rows": x.numel // depth, "depth": depth}
    p = softmax_params(node, [x], [y])
    if p.pow2:
        f.update(
            out_shift=p.out_shift,
            table_bits=TABLE_BITS,
            exp_table=low.table(f"{ctx.name}_exp", "int32_t", p.exp_table),  # type: ignore[arg-type]
        )
        kernel = f"softmax_pow2_{SUFFIX[dt]}"
    else:
        f.update(mult=p.mult, left_shift=p.left_shift, diff_min=p.diff_min)
        kernel = "softmax_s8"
    return struct_call(ctx, low, node, "tvc_softmax_t", f, kernel)


@lowering("softmax", "cmsis-nn", applies=lambda g, n: affine_i8(g, n) and _last_axis(g, n))
def softmax_cmsis(ctx: LowerCtx, node: Node) -> Lowered:
    """arm_softmax_s8, with the same parameters as TFLite's reference kernel."""
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    low = Lowered()
    depth = x.shape[-1]
    p = softmax_params(node, [x], [y])
    args = [
        ctx.ptr(node.inputs[0]),
        str(x.numel // depth),
        str(depth),
        str(p.mult),
        str(p.left_shift),
        str(p.diff_min),
        ctx.ptr(node.outputs[0], False),
    ]
    low.stmts.append(f"arm_softmax_s8({', '.join(args)});")
    return low


# element by element: channel k of the output reads channel k of the input alone
for _name in (
    "relu",
    "clip",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "hard_swish",
    "gelu",
):
    channel_rule(_name, ChannelRule(kind=channel_map))
    row_rule(_name, RowRule(needs=same_rows))  # row k of the output reads row k alone
