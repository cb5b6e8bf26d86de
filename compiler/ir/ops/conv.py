"""2-D convolution: general, grouped, depthwise, dilated; with a fused activation clamp.

Weights are OIHW when the op's layout is NCHW (as exported) and OHWI when NHWC (as CMSIS-NN and
TFLite store them); the layout pass permutes them.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._qutil import channel_scales, finish, pow2_exp, qp, scale_zp
from compiler.ir.ops._util import from_nhwc, hwc_dims, make_shape, out_size, to_nhwc, windows
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import AttrSpec, Quant, TType, int_ref, op
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import mbqm, quantize_multipliers
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
    layout_sensitive=True,
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


@int_ref("conv2d")
def conv2d_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite ConvPerChannel / DepthwiseConvPerChannel: int32 accumulation of
    (x - zp_x) * w, plus bias, requantized per output channel, clamped by the fused activation."""
    a = node.attrs
    if a["layout"] != "NHWC":
        raise IRError(f"conv2d {node.label}: integer convolution runs on NHWC data")
    s_x, z_x = scale_zp(ins[0])
    s_w = channel_scales(ins[1])
    s_y, _ = scale_zp(outs[0])
    if pow2_exp(ins[1]) is None and any(z != 0 for z in qp(ins[1]).zero_point):
        raise IRError(f"conv2d {node.label}: weights must be symmetric (zero point 0)")
    pt, pl, pb, pr = a["pad"]  # type: ignore[misc]
    xin = np.pad(x[0].astype(np.float64) - z_x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
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
    e_x = pow2_exp(ins[0])
    if e_x is not None:  # SeeDot: exponents add; one rounding shift to the output's
        e_acc = e_x + int(pow2_exp(ins[1]))  # type: ignore[arg-type]
        shifted = shift_round(acc, int(pow2_exp(outs[0])) - e_acc)  # type: ignore[arg-type]
        return [finish(shifted, outs[0], act_range(a))]
    mult, shift = quantize_multipliers(s_x * np.broadcast_to(s_w, (o,)) / s_y)
    _, z_y = scale_zp(outs[0])
    return [finish(mbqm(acc, mult, shift) + z_y, outs[0], act_range(a))]
