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
from compiler.ir.ops._util import (
    from_nhwc,
    hwc_dims,
    make_shape,
    out_size,
    to_nhwc,
    window_band,
    window_rows,
    windows,
)
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import (
    AttrSpec,
    ChannelRule,
    Quant,
    RowRule,
    TType,
    channel_rule,
    int_ref,
    lowering,
    op,
    params,
    row_rule,
)
from compiler.ir.tensor import QParams, Tensor, const_tensor
from compiler.numerics.fixedpoint import (
    act_bounds,
    mbqm,
    quantize_multipliers,
    requant_constants,
)
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
    # affine with every shift a right shift of 1..22 bits: requantization and zero point
    # precomputed per channel (mult, e - 1, add low, add high; numerics.requant_constants)
    rqc: tuple[int, ...] = ()


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
    rows = None
    if e_x is not None:
        shift = int(pow2_exp(y)) - (e_x + int(pow2_exp(w)))  # type: ignore[arg-type]
        mult, sh = (), ()
    else:
        shift = None
        m, s = quantize_multipliers(s_x * np.broadcast_to(channel_scales(w), (o,)) / s_y)
        mult, sh = tuple(int(v) for v in m), tuple(int(v) for v in s)
        rows = requant_constants(m, s, z_y) if y.dtype == "i8" else None
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
        rqc=() if rows is None else tuple(int(v) for v in rows.reshape(-1)),
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
    fields = {
        "requant": "TVC_RQ_MULT",
        "mult": low.table(f"{name}_mult", "int32_t", np.array(p.mult, np.int64)),
        "shift": low.table(f"{name}_shift", "int32_t", np.array(p.shift, np.int64)),
    }
    if p.rqc:
        fields["rqc"] = low.table(f"{name}_rqc", "int32_t", np.array(p.rqc, np.int64))
    return fields


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


def _dw3x3_special(graph: Graph, node: Node) -> bool:
    """A 3x3 depthwise layer with multiplier 1, channels a multiple of 4 and precomputed
    requantization: --optimize speed compiles its shape into a kernel of its own."""
    a = node.attrs
    ins, outs = _tensors(graph, node)
    x, y = ins[0], outs[0]
    if x.dtype != "i8" or y.dtype != "i8" or pow2_exp(x) is not None or a["layout"] != "NHWC":
        return False
    c = x.shape[3]
    stride = list(a["stride"])  # type: ignore[call-overload]
    return (
        int(a["groups"]) == c == y.shape[3]  # type: ignore[call-overload]
        and c % 4 == 0
        and list(a["kernel"]) == [3, 3]  # type: ignore[call-overload]
        and list(a["dilation"]) == [1, 1]  # type: ignore[call-overload]
        and stride[0] == stride[1]
        and bool(conv_params(node, ins, outs).rqc)
    )


def dw3x3_weights(w: np.ndarray) -> np.ndarray:
    """Depthwise weights [C][3][3][1] as words [C/4][9 taps][2]: the int16 lanes (c0, c2) and
    (c1, c3), which SMLABB/SMLATT multiply with SXTAB16's lanes of four input bytes."""
    c = w.shape[0]
    t = w.reshape(c // 4, 4, 9).transpose(0, 2, 1).astype(np.int64)  # [group][tap][lane]
    lo, hi = t[:, :, [0, 1]], t[:, :, [2, 3]]  # (c0, c1) low halves, (c2, c3) high halves
    words = (lo & 0xFFFF) | (hi << 16)  # [group][tap][(c0, c2), (c1, c3)]
    return np.where(words >= 1 << 31, words - (1 << 32), words).reshape(-1)


def _special_tables(
    ctx: LowerCtx, low: Lowered, node: Node, packed: np.ndarray, suffix: str
) -> tuple[str, str, str]:
    """What every per-layer conv kernel reads: its packed weights (which replace the OHWI
    ones), the precomputed requantization, and the bias (a zero table when there is none;
    an even count of entries, so that channel pairs may read one past an odd last channel).
    Returns their C names."""
    ins, outs = _tensors(ctx.graph, node)
    p = conv_params(node, ins, outs)
    oc = outs[0].shape[3]
    ctx.replace(node.inputs[1])
    w = low.table(f"{ctx.name}_{suffix}", "int32_t", packed)
    rqc = low.table(f"{ctx.name}_rqc", "int32_t", np.array(p.rqc, np.int64))
    b = np.zeros(oc + oc % 2, np.int64)
    if len(node.inputs) > 2:
        assert ins[2].data is not None
        b[:oc] = ins[2].data
        ctx.replace(node.inputs[2])  # read from the copy below
    ctx.feature("TVC_SPECIAL")
    return w, rqc, low.table(f"{ctx.name}_bias", "int32_t", b)


@lowering("conv2d", "portable", applies=_dw3x3_special)
def conv2d_dw3x3_special(ctx: LowerCtx, node: Node) -> Lowered:
    """The layer's own 3x3 depthwise kernel: its shape, zero point and clamp as constants, taps
    at immediate offsets, four channels per word (compiler/runtime/tvc_special.h)."""
    if ctx.optimize != "speed":
        return conv2d_portable(ctx, node)
    low = Lowered()
    ins, outs = _tensors(ctx.graph, node)
    x, w, y = ins[0], ins[1], outs[0]
    p = conv_params(node, ins, outs)
    _, h, wd, c = x.shape
    _, oh, ow, _ = y.shape
    a = node.attrs
    assert w.data is not None
    w16, rqc, bias = _special_tables(ctx, low, node, dw3x3_weights(w.data), "w16")
    fn = f"{ctx.name}_pixel"
    low.decls.append(
        f"static TVC_NOINLINE void {fn}(const int8_t *x, const int32_t *w, const int32_t *b, "
        f"const int32_t *r, int8_t *y) {{\n"
        f"    tvc_dw3x3_pixel(x, w, b, r, y, {c}, {wd * c}, {p.in_zp}, {p.act_min}, {p.act_max});\n"
        f"}}"
    )
    pad_t, pad_l = a["pad"][0], a["pad"][1]  # type: ignore[index]
    low.stmts.append(
        f"tvc_dw3x3_layer({ctx.ptr(node.inputs[0])}, {w16}, {bias}, {rqc}, "
        f"{ctx.ptr(node.outputs[0], False)}, {fn}, {h}, {wd}, {c}, {oh}, {ow}, "
        f"{a['stride'][0]}, {pad_t}, {pad_l}, {p.in_zp}, {p.act_min}, {p.act_max});"  # type: ignore[index]
    )
    return low


def _conv16_special(graph: Graph, node: Node) -> bool:
    """A dense (groups 1) int8 convolution with precomputed requantization, no dilation and
    equal strides: --optimize speed gives it a kernel of its own on prepacked int16 weights."""
    a = node.attrs
    ins, outs = _tensors(graph, node)
    x, y = ins[0], outs[0]
    if x.dtype != "i8" or y.dtype != "i8" or pow2_exp(x) is not None or a["layout"] != "NHWC":
        return False
    stride = list(a["stride"])  # type: ignore[call-overload]
    return (
        int(a["groups"]) == 1  # type: ignore[call-overload]
        and list(a["dilation"]) == [1, 1]  # type: ignore[call-overload]
        and stride[0] == stride[1]
        and bool(conv_params(node, ins, outs).rqc)
    )


def conv16_weights(w: np.ndarray) -> np.ndarray:
    """OHWI int8 weights as int16 words for tvc_conv16_pixels: per pair of output channels and
    per four of K (KH*KW*C, zero-padded), o(k0, k2) o(k1, k3) o+1(k0, k2) o+1(k1, k3), each
    word two int16 lanes, low first; an odd last channel is paired with zeros."""
    o = w.shape[0]
    k = int(np.prod(w.shape[1:]))
    k4 = (k + 3) // 4
    flat = np.zeros((o + o % 2, k4 * 4), np.int64)
    flat[:o, :k] = w.reshape(o, k)
    q = flat.reshape(-1, 2, k4, 4)  # [pair][channel][four][lane]
    words = (q[..., [0, 1]] & 0xFFFF) | (q[..., [2, 3]] << 16)  # (k0, k2) and (k1, k3)
    return np.ascontiguousarray(words.transpose(0, 2, 1, 3)).reshape(-1)


# Winograd F(2x2, 3x3) with the filter transform scaled by 4: G' = 2G has integer entries
WINO_G = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], np.int64)
WINO_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.int64)
WINO_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.int64)
WINO_V_MAX = 4 * 255  # |B^T d B| for |x - zp| <= 255: four terms


def winograd_filters(w: np.ndarray) -> np.ndarray:
    """U = G' g G'^T for every (output, input channel) of OHWI 3x3 weights: [O][16][C],
    exactly 4 times the usual transform, integers within 12 bits (|U| <= 1152)."""
    g = w.astype(np.int64).transpose(0, 3, 1, 2)  # [O][C][3][3]
    u = np.einsum("ij,ocjk,lk->ocil", WINO_G, g, WINO_G)  # [O][C][4][4]
    return u.reshape(u.shape[0], u.shape[1], 16).transpose(0, 2, 1)


def winograd_proof(w: np.ndarray, bias: np.ndarray | None) -> bool:
    """Whether no sum of the Winograd path leaves int32 for any input, from this layer's own
    weights: every M = sum_c U * V (and each SMLAD partial sum) is bounded by sum_c |U| * 1020;
    each output transform adds nine of them; a quarter of that plus the bias is the direct sum."""
    u = winograd_filters(w)
    m_max = int(np.abs(u).sum(axis=2).max()) * WINO_V_MAX
    b_max = int(np.abs(bias).max()) if bias is not None and bias.size else 0
    return 9 * m_max < 2**31 and 9 * m_max // 4 + b_max < 2**31


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """U packed for tvc_wino_tiles: per pair of output channels (an odd last one paired with
    zeros), per position (16), per four input channels: o(c0, c2) o(c1, c3) o+1(c0, c2)
    o+1(c1, c3), each word two int16 lanes, low first."""
    u = winograd_filters(w)  # [O][16][C]
    o, _, c = u.shape
    full = np.zeros((o + o % 2, 16, c), np.int64)
    full[:o] = u
    q = full.reshape(-1, 2, 16, c // 4, 4)  # [pair][channel][position][four][lane]
    words = (q[..., [0, 1]] & 0xFFFF) | (q[..., [2, 3]] << 16)
    return np.ascontiguousarray(words.transpose(0, 2, 3, 1, 4)).reshape(-1)


def _winograd_special(graph: Graph, node: Node) -> bool:
    """A stride-1 3x3 convolution, input channels a multiple of 4, that the Winograd path
    computes exactly (winograd_proof) and with fewer multiplies: at least 2 output rows and
    columns, so that tiles are mostly whole."""
    a = node.attrs
    if not _conv16_special(graph, node):
        return False
    ins, outs = _tensors(graph, node)
    x, w, y = ins[0], ins[1], outs[0]
    if list(a["kernel"]) != [3, 3] or list(a["stride"]) != [1, 1] or x.shape[3] % 4:  # type: ignore[call-overload]
        return False
    if y.shape[1] < 2 or y.shape[2] < 2 or w.data is None:
        return False
    bias = ins[2].data if len(ins) > 2 else None
    return winograd_proof(w.data, bias)


def _winograd_scratch(graph: Graph, node: Node) -> int:
    """Two transformed tiles: 16 positions x C channels x 2 tiles, int16."""
    return 16 * graph.tensors[node.inputs[0]].shape[3] * 2 * 2


@lowering("conv2d", "portable", applies=_winograd_special, scratch=_winograd_scratch)
def conv2d_winograd(ctx: LowerCtx, node: Node) -> Lowered:
    """Integer Winograd F(2x2, 3x3) (--optimize speed): 16 multiplies per tile and channel
    instead of 36, exact where winograd_proof holds (compiler/runtime/tvc_special.h)."""
    if ctx.optimize != "speed":
        return conv2d_portable(ctx, node)
    low = Lowered()
    ins, outs = _tensors(ctx.graph, node)
    x, w, y = ins[0], ins[1], outs[0]
    p = conv_params(node, ins, outs)
    _, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    assert w.data is not None
    u, rqc, bias = _special_tables(ctx, low, node, winograd_weights(w.data), "u")
    fn = f"{ctx.name}_tiles"
    low.decls.append(
        f"static TVC_NOINLINE void {fn}(const int16_t *v, int8_t *ya, int8_t *yb, int32_t rows, "
        f"int32_t cols_a, int32_t cols_b) {{\n"
        f"    tvc_wino_tiles(v, {u}, {bias}, {rqc}, ya, yb, rows, cols_a, cols_b, {oc}, {c}, "
        f"{ow * oc}, {p.act_min}, {p.act_max});\n}}"
    )
    pad_t, pad_l = node.attrs["pad"][0], node.attrs["pad"][1]  # type: ignore[index]
    low.stmts.append(
        f"tvc_wino_layer({ctx.ptr(node.inputs[0])}, {ctx.scratch_ptr('int16_t')}, "
        f"{ctx.ptr(node.outputs[0], False)}, {fn}, {h}, {wd}, {c}, {oh}, {ow}, {oc}, {pad_t}, "
        f"{pad_l}, {p.in_zp});"
    )
    return low


@lowering("conv2d", "portable", applies=_conv16_special, scratch=_portable_scratch)
def conv2d_conv16_special(ctx: LowerCtx, node: Node) -> Lowered:
    """The layer's own convolution: shape, zero point and clamp as constants, the window as
    int16 columns of two pixels, SMLAD on prepacked weights (compiler/runtime/tvc_special.h)."""
    if ctx.optimize != "speed":
        return conv2d_portable(ctx, node)
    low = Lowered()
    ins, outs = _tensors(ctx.graph, node)
    x, w, y = ins[0], ins[1], outs[0]
    p = conv_params(node, ins, outs)
    _, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    kh, kw = node.attrs["kernel"]  # type: ignore[misc]
    k4 = (kh * kw * c + 3) // 4
    assert w.data is not None
    w16, rqc, bias = _special_tables(ctx, low, node, conv16_weights(w.data), "w16")
    fn = f"{ctx.name}_pixels"
    low.decls.append(
        f"static TVC_NOINLINE void {fn}(const int16_t *col, const int32_t *w, const int32_t *b, "
        f"const int32_t *r, int8_t *ya, int8_t *yb) {{\n"
        f"    tvc_conv16_pixels(col, w, b, r, ya, yb, {oc}, {k4}, {p.act_min}, {p.act_max});\n"
        f"}}"
    )
    a = node.attrs
    pad_t, pad_l = a["pad"][0], a["pad"][1]  # type: ignore[index]
    low.stmts.append(
        f"tvc_conv16_layer({ctx.ptr(node.inputs[0])}, {w16}, {bias}, {rqc}, "
        f"{ctx.scratch_ptr('int16_t')}, {ctx.ptr(node.outputs[0], False)}, {fn}, {h}, {wd}, "
        f"{c}, {oh}, {ow}, {oc}, {kh}, {kw}, {a['stride'][0]}, {pad_t}, {pad_l}, {k4}, "  # type: ignore[index]
        f"{p.in_zp});"
    )
    return low


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


# --- dead-channel elimination ----------------------------------------------------------------


def _affine_int8(graph: Graph, node: Node) -> bool:
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    return (
        x.dtype == "i8"
        and y.dtype == "i8"
        and node.attrs["layout"] == "NHWC"
        and pow2_exp(x) is None
        and graph.tensors[node.inputs[1]].data is not None
        and (len(node.inputs) < 3 or graph.tensors[node.inputs[2]].data is not None)
    )


def _channel_kind(graph: Graph, node: Node) -> str | None:
    if not _affine_int8(graph, node):
        return None
    g = int(node.attrs["groups"])  # type: ignore[call-overload]
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    if g == 1:
        return "mix"
    return "map" if g == x.shape[3] == y.shape[3] else None


def _dead_outputs(graph: Graph, node: Node) -> set[int]:
    w = graph.tensors[node.inputs[1]].data
    assert w is not None
    return {int(o) for o in np.flatnonzero(~w.reshape(w.shape[0], -1).any(axis=1))}


def _bias(graph: Graph, node: Node) -> np.ndarray:
    o = graph.tensors[node.inputs[1]].shape[0]
    if len(node.inputs) < 3:
        return np.zeros(o, np.int64)
    b = graph.tensors[node.inputs[2]].data
    assert b is not None
    return b.astype(np.int64)


def _folded_bias(graph: Graph, node: Node, consts: dict[int, int]) -> np.ndarray:
    """bias + sum over the constant input channels k of (c_k - zp) * (sum of w[o, :, :, k]):
    exact where every tap of every output reads the constant (no padding) or where the constant
    is the zero point (padding reads it too, and the product is 0)."""
    w = graph.tensors[node.inputs[1]].data
    assert w is not None
    zp = scale_zp(graph.tensors[node.inputs[0]])[1]
    taps = w.astype(np.int64).sum(axis=(1, 2))  # [O][C]
    b = _bias(graph, node)
    for k, c in consts.items():
        b = b + (int(c) - zp) * taps[:, k]
    return b


def _foldable(graph: Graph, node: Node, consts: dict[int, int]) -> set[int]:
    zp = scale_zp(graph.tensors[node.inputs[0]])[1]
    unpadded = not any(node.attrs["pad"])  # type: ignore[arg-type]
    ok = {k: c for k, c in consts.items() if c == zp or unpadded}
    b = _folded_bias(graph, node, ok)
    if b.min(initial=0) < -(2**31) or b.max(initial=0) >= 2**31:
        return set()  # the folded bias would not fit int32: keep those channels
    return set(ok)


def _slice_qparams(t: Tensor, keep: np.ndarray) -> QParams | None:
    q = t.qparams
    if q is None or q.axis != 0 or len(q.scale) != t.shape[0]:
        return q
    return QParams(
        tuple(q.scale[i] for i in keep), tuple(q.zero_point[i] for i in keep), q.axis, q.exp
    )


def _rewrite_channels(
    graph: Graph, node: Node, folded: dict[int, int], drop_in: set[int], drop_out: set[int]
) -> None:
    wt = graph.tensors[node.inputs[1]]
    w = wt.data
    assert w is not None
    keep_o = np.array([o for o in range(w.shape[0]) if o not in drop_out], np.int64)
    depthwise = _channel_kind(graph, node) == "map"
    if depthwise:  # channel k in is channel k out
        assert drop_in == drop_out
        b = _bias(graph, node)
        node.attrs["groups"] = len(keep_o)
    else:
        assert set(folded) == drop_in
        b = _folded_bias(graph, node, folded)
        keep_i = np.array([k for k in range(w.shape[3]) if k not in drop_in], np.int64)
        w = w[:, :, :, keep_i]
    w = np.ascontiguousarray(w[keep_o])
    new_w = const_tensor(wt.name, w, wt.layout)
    new_w.qparams = _slice_qparams(wt, keep_o)
    node.inputs[1] = graph.add_const(f"{wt.name}_live", new_w)
    if len(node.inputs) > 2:
        bt = graph.tensors[node.inputs[2]]
        new_b = const_tensor(bt.name, b[keep_o].astype(np.int32), bt.layout)
        new_b.qparams = _slice_qparams(bt, keep_o)
        node.inputs[2] = graph.add_const(f"{bt.name}_live", new_b)
    elif b.any():  # a bias of its own for the folded constants
        s_x = scale_zp(graph.tensors[node.inputs[0]])[0]
        s_w = np.broadcast_to(channel_scales(wt), (w.shape[0] + len(drop_out),))[keep_o]
        new_b = const_tensor(f"{node.outputs[0]}_bias", b[keep_o].astype(np.int32))
        new_b.qparams = QParams(tuple(float(s_x * s) for s in s_w), (0,) * len(keep_o), 0)
        node.inputs.append(graph.add_const(f"{node.outputs[0]}_bias", new_b))


channel_rule(
    "conv2d",
    ChannelRule(
        kind=_channel_kind, dead=_dead_outputs, foldable=_foldable, rewrite=_rewrite_channels
    ),
)

# a band of output rows reads the band's windows (patch-based stages)
row_rule("conv2d", RowRule(needs=window_rows, band=window_band))
