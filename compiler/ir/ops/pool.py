"""Spatial pooling (max, average, global average) and mean reduction over axes."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._qutil import finish, same_params, scale_zp
from compiler.ir.ops._util import (
    from_nhwc,
    hwc_dims,
    make_shape,
    out_size,
    permute_sorted_axes,
    to_nhwc,
    windows,
)
from compiler.ir.registry import CALIBRATED, SAME, AttrSpec, TType, int_ref, op
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import mbqm, quantize_multiplier, trunc_div, wrap32

POOL_ATTRS = {
    "kernel": AttrSpec("ints"),
    "stride": AttrSpec("ints", [1, 1]),
    "pad": AttrSpec("ints", [0, 0, 0, 0]),  # top, left, bottom, right
    "ceil_mode": AttrSpec("int", 0, (0, 1)),
}


def pool_out_hw(node: Node, h: int, w: int) -> tuple[int, int]:
    a = node.attrs
    k, s, p, ceil = a["kernel"], a["stride"], a["pad"], bool(a["ceil_mode"])
    d = a.get("dilation", [1, 1])
    return (
        out_size(h, k[0], s[0], d[0], p[0], p[2], ceil),  # type: ignore[index]
        out_size(w, k[1], s[1], d[1], p[1], p[3], ceil),  # type: ignore[index]
    )


def _infer_pool(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    layout = str(node.attrs["layout"])
    if len(t[0].shape) != 4:
        raise IRError(f"{node.op} {node.label}: input must be 4-D, got {list(t[0].shape)}")
    n, h, w, c = hwc_dims(t[0].shape, layout)
    oh, ow = pool_out_hw(node, h, w)
    if oh <= 0 or ow <= 0:
        raise IRError(f"{node.op} {node.label}: empty output {oh}x{ow}")
    return [TType(make_shape(n, oh, ow, c, layout), t[0].dtype)]


def _padded(x: np.ndarray, node: Node, fill: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad NHWC input by the explicit pads plus whatever ceil mode's last window needs."""
    pt, pl, pb, pr = node.attrs["pad"]  # type: ignore[misc]
    k, s = node.attrs["kernel"], node.attrs["stride"]
    d = node.attrs.get("dilation", [1, 1])
    _, h, w, _ = x.shape
    oh, ow = pool_out_hw(node, h, w)
    extra_b = max(0, (oh - 1) * s[0] + (k[0] - 1) * d[0] + 1 - (h + pt + pb))  # type: ignore
    extra_r = max(0, (ow - 1) * s[1] + (k[1] - 1) * d[1] + 1 - (w + pl + pr))  # type: ignore
    padded = np.pad(
        x, ((0, 0), (pt, pb + extra_b), (pl, pr + extra_r), (0, 0)), constant_values=fill
    )
    return padded, (oh, ow)


@op(
    "max_pool2d",
    attrs={**POOL_ATTRS, "dilation": AttrSpec("ints", [1, 1])},
    infer=_infer_pool,
    layout_sensitive=True,
    layout="spatial",
    memory="own",
    quant=SAME,
    kernels=("tvc_pool.c",),
)
def max_pool2d(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    layout = str(node.attrs["layout"])
    padded, out_hw = _padded(to_nhwc(x[0], layout), node, -np.inf)
    win = windows(
        padded, node.attrs["kernel"], node.attrs["stride"], node.attrs["dilation"], out_hw
    )  # type: ignore[arg-type]
    return [np.ascontiguousarray(from_nhwc(win.max(axis=(4, 5)), layout))]


@op(
    "avg_pool2d",
    attrs={**POOL_ATTRS, "count_include_pad": AttrSpec("int", 0, (0, 1))},
    infer=_infer_pool,
    layout_sensitive=True,
    layout="spatial",
    memory="own",
    quant=SAME,
    kernels=("tvc_pool.c",),
)
def avg_pool2d(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Average over each window; the divisor counts padding only with count_include_pad, and
    never the extra cells that ceil mode adds past the explicit padding (ONNX/PyTorch)."""
    layout = str(node.attrs["layout"])
    a = node.attrs
    xin = to_nhwc(x[0], layout)
    padded, out_hw = _padded(xin, node, 0.0)
    k, s = a["kernel"], a["stride"]
    win = windows(padded, k, s, [1, 1], out_hw)  # type: ignore[arg-type]
    total = win.sum(axis=(4, 5), dtype=np.float64)
    pt, pl, pb, pr = a["pad"]  # type: ignore[misc]
    _, h, w, _ = xin.shape
    mh = np.zeros(padded.shape[1])
    mw = np.zeros(padded.shape[2])
    if a["count_include_pad"]:
        mh[: pt + h + pb], mw[: pl + w + pr] = 1, 1
    else:
        mh[pt : pt + h], mw[pl : pl + w] = 1, 1
    mask = (mh[:, None] * mw[None, :])[None, :, :, None]
    count = windows(mask, k, s, [1, 1], out_hw).sum(axis=(4, 5))  # type: ignore[arg-type]
    y = (total / count).astype(np.float32)
    return [np.ascontiguousarray(from_nhwc(y, layout))]


def _infer_gap(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    layout = str(node.attrs["layout"])
    if len(t[0].shape) != 4:
        raise IRError(f"global_avg_pool {node.label}: input must be 4-D")
    n, _, _, c = hwc_dims(t[0].shape, layout)
    return [TType(make_shape(n, 1, 1, c, layout), t[0].dtype)]


@op(
    "global_avg_pool",
    infer=_infer_gap,
    layout_sensitive=True,
    layout="spatial",
    memory="own",
    quant=CALIBRATED,
    kernels=("tvc_pool.c",),
)
def global_avg_pool(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axes = (2, 3) if node.attrs["layout"] == "NCHW" else (1, 2)
    return [x[0].mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)]


def _norm_axes(axes: list[int], rank: int) -> list[int]:
    return sorted(a % rank for a in axes)


def _infer_mean(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    rank = len(t[0].shape)
    axes = _norm_axes(node.attrs["axes"], rank)  # type: ignore[arg-type]
    keep = bool(node.attrs["keepdims"])
    shape = [1 if i in axes else d for i, d in enumerate(t[0].shape) if keep or i not in axes]
    return [TType(tuple(shape), t[0].dtype)]


@op(
    "reduce_mean",
    attrs={"axes": AttrSpec("ints"), "keepdims": AttrSpec("int", 1, (0, 1))},
    infer=_infer_mean,
    layout="axis",
    memory="own",
    quant=CALIBRATED,
    kernels=("tvc_pool.c",),
    permute_attrs=permute_sorted_axes,
)
def reduce_mean(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axes = tuple(_norm_axes(node.attrs["axes"], x[0].ndim))  # type: ignore[arg-type]
    y = x[0].mean(axis=axes, keepdims=bool(node.attrs["keepdims"]), dtype=np.float64)
    return [np.asarray(y, np.float32)]


@int_ref("max_pool2d")
def max_pool2d_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    same_params(node, ins, outs)
    padded, out_hw = _padded(x[0].astype(np.int64), node, -(1 << 40))
    win = windows(
        padded, node.attrs["kernel"], node.attrs["stride"], node.attrs["dilation"], out_hw
    )  # type: ignore[arg-type]
    return [finish(win.max(axis=(4, 5)), outs[0])]


@int_ref("avg_pool2d")
def avg_pool2d_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite AveragePool: sum of the in-bounds cells, divided by their count, rounded half
    away from zero."""
    same_params(node, ins, outs)
    if node.attrs["count_include_pad"]:
        raise IRError(f"avg_pool2d {node.label}: count_include_pad has no integer kernel")
    a = node.attrs
    padded, out_hw = _padded(x[0].astype(np.int64), node, 0)
    total = windows(padded, a["kernel"], a["stride"], [1, 1], out_hw).sum(axis=(4, 5))  # type: ignore[arg-type]
    pt, pl, _, _ = a["pad"]  # type: ignore[misc]
    _, h, w, _ = x[0].shape
    mask = np.zeros((1, padded.shape[1], padded.shape[2], 1), np.int64)
    mask[:, pt : pt + h, pl : pl + w] = 1
    count = windows(mask, a["kernel"], a["stride"], [1, 1], out_hw).sum(axis=(4, 5))  # type: ignore[arg-type]
    half = count // 2
    avg = np.where(total > 0, trunc_div(total + half, count), trunc_div(total - half, count))
    return [finish(avg, outs[0])]


def _mean_int(
    x: np.ndarray, axes: tuple[int, ...], keep: bool, ins: list[Tensor], outs: list[Tensor]
) -> np.ndarray:
    """TFLite QuantizedMeanOrSum: integer sum, one requantization that folds in 1/count."""
    s_x, z_x = scale_zp(ins[0])
    s_y, z_y = scale_zp(outs[0])
    count = int(np.prod([x.shape[a] for a in axes]))
    total = x.astype(np.int64).sum(axis=axes, keepdims=keep)
    mult, shift = quantize_multiplier(s_x / s_y)
    n_shift = min(count.bit_length() - 1, 32, 31 + shift)
    mult = (mult << n_shift) // count
    shift -= n_shift
    return finish(mbqm(wrap32(total - z_x * count), mult, shift) + z_y, outs[0])


@int_ref("global_avg_pool")
def global_avg_pool_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    axes = (2, 3) if node.attrs["layout"] == "NCHW" else (1, 2)
    return [_mean_int(x[0], axes, True, ins, outs)]


@int_ref("reduce_mean")
def reduce_mean_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    axes = tuple(_norm_axes(node.attrs["axes"], x[0].ndim))  # type: ignore[arg-type]
    return [_mean_int(x[0], axes, bool(node.attrs["keepdims"]), ins, outs)]
