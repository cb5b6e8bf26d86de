"""Binary elementwise arithmetic with numpy (= ONNX multidirectional) broadcasting.

add/sub/mul carry a fused activation like conv does (TFLite fuses ReLU into them too).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered, dims4, ints, strides, struct
from compiler.ir.ops import _cmsis as cm
from compiler.ir.ops._cmsis import affine_i8
from compiler.ir.ops._qutil import clamp, pow2_exp, scale_zp
from compiler.ir.ops._util import channel_map, same_rows
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import (
    CALIBRATED,
    NOT_QUANTIZED,
    ChannelRule,
    RowRule,
    TType,
    channel_rule,
    int_ref,
    lowering,
    op,
    params,
    row_rule,
)
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import (
    act_bounds,
    mbqm,
    mbqm_lt_one,
    quantize_multiplier,
    requant_constants,
    wrap32,
)
from compiler.numerics.pow2 import shift_round

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


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], fused: bool) -> None:
    def run(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
        y = np.asarray(fn(x[0], x[1])).astype(x[0].dtype, copy=False)
        return [apply_fused_act(y, node.attrs) if fused and y.dtype.kind == "f" else y]

    run.__doc__ = f"elementwise {name} with broadcasting"
    attrs = dict(FUSED_ACT_ATTRS) if fused else None
    op(
        name,
        attrs=attrs,
        inputs=(2, 2),
        infer=_infer,
        dtypes=NUMERIC,
        layout="broadcast",
        memory="in_place" if fused else "own",
        quant=CALIBRATED if fused else NOT_QUANTIZED,
        kernels=("tvc_binary.c",) if fused else (),
    )(run)


_binary("add", np.add, True)
_binary("sub", np.subtract, True)
_binary("mul", np.multiply, True)
_binary("div", lambda a, b: _int_div(a, b) if a.dtype.kind == "i" else np.divide(a, b), False)

ADD_LEFT_SHIFT = {"i8": 20, "i16": 15}


@dataclass(frozen=True)
class BinaryParams:
    """The integers of one quantized add/sub/mul, computed once. Affine add: TFLite's scheme,
    both inputs to a common 2x-max scale with `left_shift` bits of headroom, summed, requantized;
    affine mul: one multiplier s1*s2/s_out. SeeDot: exponent differences (`pow2_*`)."""

    in1_zp: int
    in2_zp: int
    out_zp: int
    act_min: int
    act_max: int
    pow2: bool
    pow2_1: int = 0  # SeeDot add: shift of each input to the output exponent
    pow2_2: int = 0
    pow2_out: int = 0  # SeeDot mul: shift of the product to the output exponent
    left_shift: int = 0
    mult1: int = 0
    shift1: int = 0
    mult2: int = 0
    shift2: int = 0
    mult_out: int = 0
    shift_out: int = 0


def binary_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> BinaryParams:
    y = outs[0]
    s_y, z_y = scale_zp(y)
    lo, hi = act_bounds(act_range(node.attrs), s_y, z_y, y.dtype)
    e1, e2, eo = pow2_exp(ins[0]), pow2_exp(ins[1]), pow2_exp(y)
    if e1 is not None and e2 is not None and eo is not None:
        if node.op == "mul":
            return BinaryParams(0, 0, 0, lo, hi, True, pow2_out=eo - e1 - e2)
        return BinaryParams(0, 0, 0, lo, hi, True, pow2_1=eo - e1, pow2_2=eo - e2)
    (s1, z1), (s2, z2) = scale_zp(ins[0]), scale_zp(ins[1])
    if node.op == "mul":
        m, sh = quantize_multiplier(s1 * s2 / s_y)
        return BinaryParams(z1, z2, z_y, lo, hi, False, mult_out=m, shift_out=sh)
    left = ADD_LEFT_SHIFT[y.dtype]
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left) * s_y))
    return BinaryParams(
        z1,
        z2,
        z_y,
        lo,
        hi,
        False,
        left_shift=left,
        mult1=m1,
        shift1=sh1,
        mult2=m2,
        shift2=sh2,
        mult_out=mo,
        shift_out=sho,
    )


def _add_sub_int(sign: int) -> Callable[..., list[np.ndarray]]:
    def run_int(
        node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
    ) -> list[np.ndarray]:
        """TFLite int8 Add: both inputs to a common 2x-max scale with 20 bits of headroom,
        summed, requantized to the output scale. SeeDot: align both exponents to the output's."""
        p = binary_params(node, ins, outs)
        if p.pow2:
            total = shift_round(x[0], p.pow2_1) + sign * shift_round(x[1], p.pow2_2)
            return [clamp(total, p.act_min, p.act_max, outs[0])]
        v1 = mbqm_lt_one(
            wrap32((x[0].astype(np.int64) - p.in1_zp) << p.left_shift), p.mult1, p.shift1
        )
        v2 = mbqm_lt_one(
            wrap32((x[1].astype(np.int64) - p.in2_zp) << p.left_shift), p.mult2, p.shift2
        )
        raw = mbqm_lt_one(v1 + sign * v2, p.mult_out, p.shift_out) + p.out_zp
        return [clamp(raw, p.act_min, p.act_max, outs[0])]

    return run_int


int_ref("add")(_add_sub_int(1))
int_ref("sub")(_add_sub_int(-1))


@int_ref("mul")
def mul_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite int8 Mul: product of offset inputs, one requantization by s1*s2/s_out.
    SeeDot: the product's exponent is the sum; one rounding shift to the output's."""
    p = binary_params(node, ins, outs)
    if p.pow2:
        prod = x[0].astype(np.int64) * x[1].astype(np.int64)
        return [clamp(shift_round(prod, p.pow2_out), p.act_min, p.act_max, outs[0])]
    prod = (x[0].astype(np.int64) - p.in1_zp) * (x[1].astype(np.int64) - p.in2_zp)
    out = mbqm(wrap32(prod), p.mult_out, p.shift_out) + p.out_zp
    return [clamp(out, p.act_min, p.act_max, outs[0])]


for _name in ("add", "sub", "mul"):
    params(_name)(binary_params)


# --- lowering ------------------------------------------------------------------------------


def _binary_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """One broadcasting kernel for add/sub (sign2 = -1 for sub) and one for mul."""
    low = Lowered()
    kind = "mul" if node.op == "mul" else "add"
    a, b, y = (ctx.graph.tensors[i] for i in (*node.inputs, node.outputs[0]))
    dt = y.dtype
    out = dims4(y.shape)

    def stride_of(shape: tuple[int, ...]) -> list[int]:
        d = dims4(shape)
        st = strides(d)
        return [0 if d[k] == 1 and out[k] != 1 else st[k] for k in range(4)]

    p = binary_params(node, [a, b], [y])
    f: dict[str, object] = {
        "dims": "{" + ints(out) + "}",
        "stride1": "{" + ints(stride_of(a.shape)) + "}",
        "stride2": "{" + ints(stride_of(b.shape)) + "}",
        "act_min": p.act_min,
        "act_max": p.act_max,
        "sign2": -1 if node.op == "sub" else 1,
    }
    if p.pow2:
        f.update(requant="TVC_RQ_POW2", in1_zp=0, in2_zp=0, out_zp=0)
        if kind == "add":
            f.update(pow2_1=p.pow2_1, pow2_2=p.pow2_2)
        else:
            f.update(pow2_out=p.pow2_out)
    else:
        f.update(requant="TVC_RQ_MULT", in1_zp=p.in1_zp, in2_zp=p.in2_zp, out_zp=p.out_zp)
        if kind == "add":
            f.update(
                left_shift=p.left_shift,
                mult1=p.mult1,
                shift1=p.shift1,
                mult2=p.mult2,
                shift2=p.shift2,
                mult_out=p.mult_out,
                shift_out=p.shift_out,
            )
        else:
            f.update(mult_out=p.mult_out, shift_out=p.shift_out)
    low.decls.append(struct("tvc_binary_t", ctx.name, f))
    low.stmts.append(
        ctx.call(
            f"{kind}_{SUFFIX[dt]}",
            f"&{ctx.name}",
            ctx.ptr(node.inputs[0]),
            ctx.ptr(node.inputs[1]),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


def add_tables(p: BinaryParams, sign: int) -> tuple[np.ndarray, np.ndarray]:
    """Each input's contribution to TFLite's Add sum, per byte value -128..127 (the integer
    reference's v1 and sign * v2, tabulated)."""
    q = np.arange(-128, 128, dtype=np.int64)
    t1 = mbqm_lt_one(wrap32((q - p.in1_zp) << p.left_shift), p.mult1, p.shift1)
    t2 = mbqm_lt_one(wrap32((q - p.in2_zp) << p.left_shift), p.mult2, p.shift2)
    return t1.astype(np.int64), sign * t2.astype(np.int64)


def _add_rqc(graph: Graph, node: Node) -> np.ndarray | None:
    """Affine int8 add/sub of two same-shape activations whose output requantization can be
    precomputed: its tvc_rqc row (None where the shared kernel runs)."""
    if node.op not in ("add", "sub"):
        return None
    a, b, y = (graph.tensors[t] for t in (*node.inputs, node.outputs[0]))
    if not (a.dtype == b.dtype == y.dtype == "i8") or a.shape != y.shape or b.shape != y.shape:
        return None
    if a.data is not None or b.data is not None:
        return None
    p = binary_params(node, [a, b], [y])
    if p.pow2:
        return None
    return requant_constants(np.array([p.mult_out]), np.array([p.shift_out]), p.out_zp)


@lowering("add", "portable", applies=lambda g, n: _add_rqc(g, n) is not None)
@lowering("sub", "portable", applies=lambda g, n: _add_rqc(g, n) is not None)
def add_lut_special(ctx: LowerCtx, node: Node) -> Lowered:
    """--optimize speed: each input's scaling as a 256-entry table, the output's requantization
    precomputed (compiler/runtime/tvc_special.h); bit-exact with TFLite's Add."""
    if ctx.optimize != "speed":
        return _binary_portable(ctx, node)
    low = Lowered()
    a, b, y = (ctx.graph.tensors[t] for t in (*node.inputs, node.outputs[0]))
    p = binary_params(node, [a, b], [y])
    rqc = _add_rqc(ctx.graph, node)
    assert rqc is not None
    t1, t2 = add_tables(p, -1 if node.op == "sub" else 1)
    n1 = low.table(f"{ctx.name}_t1", "int32_t", t1)
    n2 = low.table(f"{ctx.name}_t2", "int32_t", t2)
    r = low.table(f"{ctx.name}_rqc", "int32_t", rqc.reshape(-1))
    ctx.feature("TVC_SPECIAL")
    low.stmts.append(
        f"tvc_add_lut_s8({ctx.ptr(node.inputs[0])}, {ctx.ptr(node.inputs[1])}, "
        f"{ctx.ptr(node.outputs[0], False)}, {n1} + 128, {n2} + 128, {r}, {y.numel}, "
        f"{p.act_min}, {p.act_max});"
    )
    return low


for _name in ("add", "sub", "mul"):
    lowering(_name, "portable")(_binary_portable)


def _cmsis_add_applies(graph: Graph, node: Node) -> bool:
    a, b, y = (graph.tensors[t] for t in (*node.inputs, node.outputs[0]))
    return (
        affine_i8(graph, node)
        and b.dtype == "i8"
        and pow2_exp(b) is None
        and a.shape == b.shape == y.shape
    )


@lowering("add", "cmsis-nn", applies=_cmsis_add_applies)
def add_cmsis(ctx: LowerCtx, node: Node) -> Lowered:
    """arm_elementwise_add_s8: same-shape affine int8 add."""
    low = Lowered()
    a, b, y = (ctx.graph.tensors[t] for t in (*node.inputs, node.outputs[0]))
    p = binary_params(node, [a, b], [y])
    args = [
        ctx.ptr(node.inputs[0]),
        ctx.ptr(node.inputs[1]),
        str(-p.in1_zp),
        str(p.mult1),
        str(p.shift1),
        str(-p.in2_zp),
        str(p.mult2),
        str(p.shift2),
        str(p.left_shift),
        ctx.ptr(node.outputs[0], False),
        str(p.out_zp),
        str(p.mult_out),
        str(p.shift_out),
        str(p.act_min),
        str(p.act_max),
        str(y.numel),
    ]
    low.stmts.append(cm.status("arm_elementwise_add_s8", *args))
    return low


for _name in ("add", "sub", "mul"):  # channel k of the result reads channel k of each operand
    channel_rule(_name, ChannelRule(kind=channel_map))
    row_rule(_name, RowRule(needs=same_rows))  # row k of the result reads row k of each
