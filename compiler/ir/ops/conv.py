"""2-D convolution: general, grouped, depthwise, dilated; with a fused activation clamp.

Weights are OIHW when the op's layout is NCHW (as exported) and OHWI when NHWC (as CMSIS-NN and
TFLite store them); the layout pass permutes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import C_TYPES, SUFFIX, CodegenError, LowerCtx, Lowered, struct
from compiler.ir.ops import _cmsis as cm
from compiler.ir.ops._cmsis import affine_i8
from compiler.ir.ops._qutil import channel_scales, clamp, pow2_exp, qp, scale_zp
from compiler.ir.ops._util import from_nhwc, hwc_dims, make_shape, out_size, to_nhwc, windows
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import AttrSpec, Quant, TType, int_ref, lowering, op, params
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import act_bounds, mbqm, quantize_multipliers
from compiler.numerics.pow2 import shift_round

CONV_ATTRS = {
    "kernel": AttrSpec("ints"),
    "stride": AttrSpec("ints", [1, 1]),
    "pad": AttrSpec("ints", [0, 0, 0, 0]),  # top, left, bottom, right
    "dilation": AttrSpec("ints", [1, 1]),
    "groups": AttrSpec("int", 1),
    **FUSED_ACT_ATTRS,
}


def weight_ohwi(w: np.ndarray, layout: str) -> np.ndarray:
    return w.transpose(0, 2, 3, 1) if layout == "NCHW" else w


def conv_out_hw(node: Node, h: int, w: int) -> tuple[int, int]:
    a = node.attrs
    k, s, d, p = a["kernel"], a["stride"], a["dilation"], a["pad"]
    return (
        out_size(h, k[0], s[0], d[0], p[0], p[2]),  # type: ignore[index]
        out_size(w, k[1], s[1], d[1], p[1], p[3]),  # type: ignore[index]
    )


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    layout = str(node.attrs["layout"])
    if len(t[0].shape) != 4 or len(t[1].shape) != 4:
        raise IRError(f"conv2d {node.label}: input and weight must be 4-D")
    n, h, w, c = hwc_dims(t[0].shape, layout)
    wo = t[1].shape
    o, kh, kw, cg = wo if layout == "NHWC" else (wo[0], wo[2], wo[3], wo[1])
    g = int(node.attrs["groups"])  # type: ignore[arg-type]
    if [kh, kw] != node.attrs["kernel"] or cg * g != c or o % g:
        raise IRError(
            f"conv2d {node.label}: weight {list(wo)} does not match input channels {c}, "
            f"groups {g}, kernel {node.attrs['kernel']}"
        )
    if len(t) == 3 and t[2].shape != (o,):
        raise IRError(f"conv2d {node.label}: bias shape {list(t[2].shape)} != [{o}]")
    oh, ow = conv_out_hw(node, h, w)
    if oh <= 0 or ow <= 0:
        raise IRError(f"conv2d {node.label}: empty output {oh}x{ow}")
    return [TType(make_shape(n, oh, ow, o, layout), t[0].dtype)]


@op(
    "conv2d",
    attrs=CONV_ATTRS,
    inputs=(2, 3),
    infer=_infer,
    macs=lambda n, i, o: int(np.prod(o[0].shape)) * int(np.prod(i[1].shape[1:])),
    layout="spatial",
    memory="own",
    quant=Quant("calibrated", weights="per_channel"),
    kernels=("tvc_conv.c",),
    nhwc_weights={1: ("ohwi", (0, 2, 3, 1))},
)
def conv2d(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    layout = str(node.attrs["layout"])
    a = node.attrs
    inp = to_nhwc(x[0], layout)
    w = weight_ohwi(x[1], layout)
    pt, pl, pb, pr = a["pad"]  # type: ignore[misc]
    inp = np.pad(inp, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, wd, c = x[0].shape if layout == "NHWC" else to_nhwc(x[0], layout).shape
    oh, ow = conv_out_hw(node, h, wd)
    win = windows(inp, a["kernel"], a["stride"], a["dilation"], (oh, ow))  # type: ignore[arg-type]
    g = int(a["groups"])  # type: ignore[arg-type]
    o, kh, kw, cg = w.shape
    if g == 1:
        y = np.tensordot(win, w, axes=([3, 4, 5], [3, 1, 2]))
    else:
        win = win.reshape(n, oh, ow, g, cg, kh, kw)
        wg = w.reshape(g, o // g, kh, kw, cg)
        y = np.einsum("nhwgcij,goijc->nhwgo", win, wg, optimize=True).reshape(n, oh, ow, o)
    if len(x) == 3:
        y = y + x[2]
    y = apply_fused_act(y.astype(np.float32), a)
    return [np.ascontiguousarray(from_nhwc(y, layout))]


@dataclass(frozen=True)
class ConvParams:
    """The integers of one quantized convolution, computed once: the interpreter and every
    backend read these fields, so C and reference agree by construction."""

    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    pow2_shift: int | None  # SeeDot: one rounding shift from the accumulator to the output
    mult: tuple[int, ...]  # affine: TFLite multiplier and shift per output channel
    shift: tuple[int, ...]
    depthwise: bool  # groups == input channels: per-channel windows, [KH][KW][C_out] weights
    im2col_bytes: int  # two int16 im2col columns (DSP conv kernels, CMSIS-NN convolve_s8)


@params("conv2d")
def conv_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> ConvParams:
    a = node.attrs
    x, w, y = ins[0], ins[1], outs[0]
    if pow2_exp(w) is None and any(z != 0 for z in qp(w).zero_point):
        raise IRError(f"conv2d {node.label}: weights must be symmetric (zero point 0)")
    o, kh, kw, cg = w.shape
    s_y, z_y = scale_zp(y)
    s_x, z_x = scale_zp(x)
    lo, hi = act_bounds(act_range(a), s_y, z_y, y.dtype)
    e_x = pow2_exp(x)
    if e_x is not None:
        shift = int(pow2_exp(y)) - (e_x + int(pow2_exp(w)))  # type: ignore[arg-type]
        mult, sh = (), ()
    else:
        shift = None
        m, s = quantize_multipliers(s_x * np.broadcast_to(channel_scales(w), (o,)) / s_y)
        mult, sh = tuple(int(v) for v in m), tuple(int(v) for v in s)
    cols = kh * kw * cg
    g = int(a["groups"])  # type: ignore[call-overload]
    return ConvParams(
        in_zp=z_x,
        out_zp=z_y,
        act_min=lo,
        act_max=hi,
        pow2_shift=shift,
        mult=mult,
        shift=sh,
        depthwise=g > 1 and g == x.shape[3],
        im2col_bytes=2 * (cols + (-cols) % 4) * 2,
    )


def depthwise_weights_hwc(w: np.ndarray) -> np.ndarray:
    """Depthwise weights [C_out][KH][KW][1] as [KH][KW][C_out], flat: runs of output channels
    read contiguously (our kernels and CMSIS-NN's)."""
    return w.transpose(1, 2, 0, 3).reshape(-1)


@int_ref("conv2d")
def conv2d_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite ConvPerChannel / DepthwiseConvPerChannel: int32 accumulation of
    (x - zp_x) * w, plus bias, requantized per output channel, clamped by the fused activation."""
    a = node.attrs
    if a["layout"] != "NHWC":
        raise IRError(f"conv2d {node.label}: integer convolution runs on NHWC data")
    p = conv_params(node, ins, outs)
    pt, pl, pb, pr = a["pad"]  # type: ignore[misc]
    xin = np.pad(x[0].astype(np.float64) - p.in_zp, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    n, h, wd, c = x[0].shape
    oh, ow = conv_out_hw(node, h, wd)
    win = windows(xin, a["kernel"], a["stride"], a["dilation"], (oh, ow))  # type: ignore[arg-type]
    w = x[1].astype(np.float64)
    g = int(a["groups"])  # type: ignore[arg-type]
    o, kh, kw, cg = w.shape
    # float64 sums of int8 products are exact far beyond any layer size (< 2^53)
    if g == 1:
        acc = np.tensordot(win, w, axes=([3, 4, 5], [3, 1, 2]))
    else:
        win = win.reshape(n, oh, ow, g, cg, kh, kw)
        acc = np.einsum(
            "nhwgcij,goijc->nhwgo", win, w.reshape(g, o // g, kh, kw, cg), optimize=True
        )
        acc = acc.reshape(n, oh, ow, o)
    acc = acc.astype(np.int64)
    if len(x) == 3:
        acc = acc + x[2].astype(np.int64)
    if p.pow2_shift is not None:  # SeeDot: exponents add; one rounding shift to the output's
        out = shift_round(acc, p.pow2_shift)
    else:
        out = mbqm(acc, np.array(p.mult), np.array(p.shift)) + p.out_zp
    return [clamp(out, p.act_min, p.act_max, outs[0])]


# --- lowering ------------------------------------------------------------------------------


def _requant_fields(low: Lowered, name: str, p: ConvParams) -> dict[str, object]:
    """Per-channel TFLite multipliers, or one SeeDot shift."""
    if p.pow2_shift is not None:
        return {
            "requant": "TVC_RQ_POW2",
            "mult": "0",
            "shift": low.table(f"{name}_shift", "int32_t", [p.pow2_shift]),
        }
    return {
        "requant": "TVC_RQ_MULT",
        "mult": low.table(f"{name}_mult", "int32_t", np.array(p.mult, np.int64)),
        "shift": low.table(f"{name}_shift", "int32_t", np.array(p.shift, np.int64)),
    }


def conv_struct(
    ctx: LowerCtx,
    low: Lowered,
    name: str,
    node: Node,
    attrs: dict[str, object],
    x: Tensor,
    y: Tensor,
    p: ConvParams,
) -> None:
    """The tvc_conv_t of a convolution (also the first half of a fused conv + RNNPool)."""
    a = attrs
    _, h, w, c = x.shape
    _, oh, ow, oc = y.shape
    fields = {
        "in_h": h,
        "in_w": w,
        "in_c": c,
        "out_h": oh,
        "out_w": ow,
        "out_c": oc,
        "k_h": a["kernel"][0],  # type: ignore[index]
        "k_w": a["kernel"][1],  # type: ignore[index]
        "stride_h": a["stride"][0],  # type: ignore[index]
        "stride_w": a["stride"][1],  # type: ignore[index]
        "dil_h": a["dilation"][0],  # type: ignore[index]
        "dil_w": a["dilation"][1],  # type: ignore[index]
        "pad_t": a["pad"][0],  # type: ignore[index]
        "pad_l": a["pad"][1],  # type: ignore[index]
        "groups": a["groups"],
        "in_zp": p.in_zp,
        "out_zp": p.out_zp,
        "act_min": p.act_min,
        "act_max": p.act_max,
        **_requant_fields(low, name, p),
    }
    low.decls.append(struct("tvc_conv_t", name, fields))


def check_bias(graph: Graph, node: Node, dt: str) -> None:
    if len(node.inputs) > 2:
        want = "i32" if dt == "i8" else "i64"
        got = graph.tensors[node.inputs[2]].dtype
        if got != want:
            raise CodegenError(f"node {node.label!r}: {dt} kernels take {want} bias, not {got}")


def _tensors(graph: Graph, node: Node) -> tuple[list[Tensor], list[Tensor]]:
    return [graph.tensors[i] for i in node.inputs], [graph.tensors[o] for o in node.outputs]


def _portable_scratch(graph: Graph, node: Node) -> int:
    """The DSP kernel's im2col columns (int8 dense convolution; unused elsewhere)."""
    if graph.tensors[node.inputs[0]].dtype == "i8" and node.attrs["groups"] == 1:
        return conv_params(node, *_tensors(graph, node)).im2col_bytes
    return 0


@lowering("conv2d", "portable", scratch=_portable_scratch)
def conv2d_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    ins, outs = _tensors(ctx.graph, node)
    dt = outs[0].dtype
    p = conv_params(node, ins, outs)
    conv_struct(ctx, low, ctx.name, node, node.attrs, ins[0], outs[0], p)
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
    check_bias(ctx.graph, node, dt)
    if p.depthwise:
        w = ins[1].data
        assert w is not None
        ctx.replace(node.inputs[1])
        hwc = low.table(f"{ctx.name}_w", C_TYPES[dt], depthwise_weights_hwc(w))
        if outs[0].shape[3] != ins[0].shape[3] and dt == "i8":  # a channel multiplier
            ctx.feature("TVC_DW_MULTIPLIER")  # compile in its four-lane path
        low.stmts.append(
            ctx.call(
                f"depthwise_{SUFFIX[dt]}",
                f"&{ctx.name}",
                ctx.ptr(node.inputs[0]),
                hwc,
                bias,
                ctx.ptr(node.outputs[0], False),
            )
        )
        return low
    args = [f"&{ctx.name}", ctx.ptr(node.inputs[0]), ctx.ptr(node.inputs[1]), bias]
    if dt == "i8":  # the DSP kernel's im2col columns (unused elsewhere)
        args.append(ctx.scratch_ptr("int16_t"))
    low.stmts.append(ctx.call(f"conv2d_{SUFFIX[dt]}", *args, ctx.ptr(node.outputs[0], False)))
    return low


def _cmsis_kind(graph: Graph, node: Node) -> str | None:
    if not affine_i8(graph, node):
        return None
    g = int(node.attrs["groups"])  # type: ignore[call-overload]
    if g == 1:
        return "conv"
    return "depthwise" if g == graph.tensors[node.inputs[0]].shape[3] else None


def _cmsis_scratch(graph: Graph, node: Node) -> int:
    """arm_convolve_s8: two im2col columns of int16; depthwise_conv_s8_opt: one int16 window
    per channel (CMSIS-NN's formulas for the non-MVE cores, an upper bound over the paths)."""
    if _cmsis_kind(graph, node) == "conv":
        return conv_params(node, *_tensors(graph, node)).im2col_bytes
    _, kh, kw, _ = graph.tensors[node.inputs[1]].shape
    return graph.tensors[node.inputs[0]].shape[3] * kh * kw * 2


@lowering(
    "conv2d",
    "cmsis-nn",
    applies=lambda g, n: _cmsis_kind(g, n) is not None,
    scratch=_cmsis_scratch,
)
def conv2d_cmsis(ctx: LowerCtx, node: Node) -> Lowered:
    """arm_convolve_wrapper_s8 / arm_depthwise_conv_wrapper_s8."""
    kind = _cmsis_kind(ctx.graph, node)
    low = Lowered()
    name = ctx.name
    a = node.attrs
    ins, outs = _tensors(ctx.graph, node)
    x, w, y = ins[0], ins[1], outs[0]
    _, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    p = conv_params(node, ins, outs)
    m = low.table(f"{name}_mult", "int32_t", np.array(p.mult, np.int64))
    sh = low.table(f"{name}_shift", "int32_t", np.array(p.shift, np.int64))
    kh, kw = a["kernel"]  # type: ignore[misc]
    common = {
        "input_offset": -p.in_zp,
        "output_offset": p.out_zp,
        "stride": cm.tile(a["stride"][1], a["stride"][0]),  # type: ignore[index]
        "padding": cm.tile(a["pad"][1], a["pad"][0]),  # type: ignore[index]
        "dilation": cm.tile(a["dilation"][1], a["dilation"][0]),  # type: ignore[index]
        "activation": f"{{.min = {p.act_min}, .max = {p.act_max}}}",
    }
    low.decls += [
        struct(
            "cmsis_nn_per_channel_quant_params",
            f"{name}_q",
            {"multiplier": f"(int32_t *){m}", "shift": f"(int32_t *){sh}"},
        ),
        cm.dims(f"{name}_in", 1, h, wd, c),
        cm.dims(f"{name}_out", 1, oh, ow, oc),
        cm.dims(f"{name}_b", 1, 1, 1, oc),
    ]
    bias = ctx.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
    cctx = cm.context(ctx, low)
    if kind == "conv":
        low.decls += [
            struct("cmsis_nn_conv_params", f"{name}_cp", common),
            cm.dims(f"{name}_f", oc, kh, kw, c),
        ]
        fn, weights = "arm_convolve_wrapper_s8", ctx.ptr(node.inputs[1])
    else:
        assert w.data is not None
        ctx.replace(node.inputs[1])
        hwc = low.table(f"{name}_w", "int8_t", depthwise_weights_hwc(w.data))
        low.decls += [
            struct("cmsis_nn_dw_conv_params", f"{name}_cp", {**common, "ch_mult": oc // c}),
            cm.dims(f"{name}_f", 1, kh, kw, oc),
        ]
        fn, weights = "arm_depthwise_conv_wrapper_s8", hwc
    d = (f"&{name}_cp", f"&{name}_in", f"&{name}_f", f"&{name}_out")
    low.stmts.append(cm.scratch_check(cctx, f"{fn}_get_buffer_size({', '.join(d)})"))
    x_ptr, y_ptr = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0], False)
    low.stmts.append(
        cm.status(
            fn,
            cctx,
            f"&{name}_cp",
            f"&{name}_q",
            f"&{name}_in",
            x_ptr,
            f"&{name}_f",
            weights,
            f"&{name}_b",
            bias,
            f"&{name}_out",
            y_ptr,
        )
    )
    return low
