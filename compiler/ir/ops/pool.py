"""Spatial pooling (max, average, global average) and mean reduction over axes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import BYTES, SUFFIX, LowerCtx, Lowered, struct, struct_call
from compiler.ir.ops import _cmsis as cm
from compiler.ir.ops._cmsis import affine_i8
from compiler.ir.ops._qutil import finish, same_params, scale_zp
from compiler.ir.ops._util import (
    channel_map,
    from_nhwc,
    hwc_dims,
    infer_reduce,
    make_shape,
    norm_axes,
    out_size,
    permute_sorted_axes,
    to_nhwc,
    window_band,
    window_rows,
    windows,
)
from compiler.ir.registry import (
    CALIBRATED,
    SAME,
    AttrSpec,
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
from compiler.numerics.fixedpoint import QRANGE, mbqm, quantize_multiplier, trunc_div, wrap32

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
    layout="spatial",
    memory="own",
    quant=CALIBRATED,
    kernels=("tvc_pool.c",),
)
def global_avg_pool(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axes = (2, 3) if node.attrs["layout"] == "NCHW" else (1, 2)
    return [x[0].mean(axis=axes, keepdims=True, dtype=np.float64).astype(np.float32)]


@op(
    "reduce_mean",
    attrs={"axes": AttrSpec("ints"), "keepdims": AttrSpec("int", 1, (0, 1))},
    infer=infer_reduce,
    layout="axis",
    memory="own",
    quant=CALIBRATED,
    kernels=("tvc_pool.c",),
    permute_attrs=permute_sorted_axes,
)
def reduce_mean(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axes = tuple(norm_axes(node.attrs["axes"], x[0].ndim))  # type: ignore[arg-type]
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
    return [finish(avg_div(total, count), outs[0])]


def avg_div(total: np.ndarray, count: np.ndarray | int) -> np.ndarray:
    """TFLite's average: the integer sum over the count, rounded half away from zero."""
    half = np.asarray(count) // 2
    return np.where(total > 0, trunc_div(total + half, count), trunc_div(total - half, count))


@dataclass(frozen=True)
class MeanParams:
    """TFLite QuantizedMeanOrSum's integers, computed once: 1/count folded into the multiplier."""

    in_zp: int
    out_zp: int
    count: int
    mult: int
    shift: int


def _mean_axes(node: Node, rank: int) -> tuple[int, ...]:
    if node.op == "global_avg_pool":
        return (2, 3) if node.attrs["layout"] == "NCHW" else (1, 2)
    return tuple(norm_axes(node.attrs["axes"], rank))  # type: ignore[arg-type]


def mean_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> MeanParams:
    count = int(np.prod([ins[0].shape[a] for a in _mean_axes(node, len(ins[0].shape))]))
    return mean_ints(ins[0], outs[0], count)


def mean_ints(x: Tensor, y: Tensor, count: int) -> MeanParams:
    """The mean's integers for `count` cells of x (also for sums of x's codes band by band)."""
    s_x, z_x = scale_zp(x)
    s_y, z_y = scale_zp(y)
    mult, shift = quantize_multiplier(s_x / s_y)
    n_shift = min(count.bit_length() - 1, 32, 31 + shift)
    return MeanParams(z_x, z_y, count, (mult << n_shift) // count, shift - n_shift)


def _mean_int(
    node: Node, x: np.ndarray, keep: bool, ins: list[Tensor], outs: list[Tensor]
) -> np.ndarray:
    """TFLite QuantizedMeanOrSum: integer sum, one requantization that folds in 1/count."""
    p = mean_params(node, ins, outs)
    total = x.astype(np.int64).sum(axis=_mean_axes(node, x.ndim), keepdims=keep)
    return finish(mbqm(wrap32(total - p.in_zp * p.count), p.mult, p.shift) + p.out_zp, outs[0])


@int_ref("global_avg_pool")
def global_avg_pool_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    return [_mean_int(node, x[0], True, ins, outs)]


@int_ref("reduce_mean")
def reduce_mean_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    return [_mean_int(node, x[0], bool(node.attrs["keepdims"]), ins, outs)]


params("global_avg_pool")(mean_params)
params("reduce_mean")(mean_params)


# --- lowering ------------------------------------------------------------------------------


def _pool_portable(kernel: str) -> Callable[[LowerCtx, Node], Lowered]:
    def emit(ctx: LowerCtx, node: Node) -> Lowered:
        low = Lowered()
        a = node.attrs
        x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
        dt = y.dtype
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        lo, hi = QRANGE[dt]
        d = a.get("dilation", [1, 1])
        fields = {
            "in_h": h,
            "in_w": w,
            "c": c,
            "out_h": oh,
            "out_w": ow,
            "k_h": a["kernel"][0],  # type: ignore[index]
            "k_w": a["kernel"][1],  # type: ignore[index]
            "stride_h": a["stride"][0],  # type: ignore[index]
            "stride_w": a["stride"][1],  # type: ignore[index]
            "dil_h": d[0],  # type: ignore[index]
            "dil_w": d[1],  # type: ignore[index]
            "pad_t": a["pad"][0],  # type: ignore[index]
            "pad_l": a["pad"][1],  # type: ignore[index]
            "act_min": lo,
            "act_max": hi,
        }
        return struct_call(ctx, low, node, "tvc_pool_t", fields, f"{kernel}_{SUFFIX[dt]}")

    return emit


lowering("max_pool2d", "portable")(_pool_portable("max_pool"))
lowering("avg_pool2d", "portable", applies=lambda g, n: not n.attrs["count_include_pad"])(
    _pool_portable("avg_pool")
)


def _cmsis_pool(fn: str) -> Callable[[LowerCtx, Node], Lowered]:
    def emit(ctx: LowerCtx, node: Node) -> Lowered:
        low = Lowered()
        name = ctx.name
        a = node.attrs
        x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        lo, hi = QRANGE["i8"]
        low.decls += [
            struct(
                "cmsis_nn_pool_params",
                f"{name}_p",
                {
                    "stride": cm.tile(a["stride"][1], a["stride"][0]),  # type: ignore[index]
                    "padding": cm.tile(a["pad"][1], a["pad"][0]),  # type: ignore[index]
                    "activation": f"{{.min = {lo}, .max = {hi}}}",
                },
            ),
            cm.dims(f"{name}_in", 1, h, w, c),
            cm.dims(f"{name}_f", 1, a["kernel"][0], a["kernel"][1], 1),  # type: ignore[index]
            cm.dims(f"{name}_out", 1, oh, ow, c),
        ]
        cctx = cm.context(ctx, low)
        if fn == "arm_avgpool_s8":
            low.stmts.append(cm.scratch_check(cctx, f"arm_avgpool_s8_get_buffer_size({ow}, {c})"))
        low.stmts.append(
            cm.status(
                fn,
                cctx,
                f"&{name}_p",
                f"&{name}_in",
                ctx.ptr(node.inputs[0]),
                f"&{name}_f",
                f"&{name}_out",
                ctx.ptr(node.outputs[0], False),
            )
        )
        return low

    return emit


lowering(
    "max_pool2d",
    "cmsis-nn",
    applies=lambda g, n: affine_i8(g, n) and n.attrs["dilation"] == [1, 1],
)(_cmsis_pool("arm_max_pool_s8"))
lowering(
    "avg_pool2d",
    "cmsis-nn",
    applies=lambda g, n: affine_i8(g, n) and not n.attrs["count_include_pad"],
    # arm_avgpool_s8: an int32 sum per channel
    scratch=lambda g, n: g.tensors[n.inputs[0]].shape[3] * 4,
)(_cmsis_pool("arm_avgpool_s8"))


def _mean_applies(graph: Graph, node: Node) -> bool:
    x = graph.tensors[node.inputs[0]]
    return len(x.shape) == 4 and _mean_axes(node, 4) == (1, 2)


def _mean_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """The C mean reduces H and W of NHWC data."""
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    dt = y.dtype
    low = Lowered()
    n, h, w, c = x.shape
    fields = _mean_fields(mean_params(node, [x], [y]), (n, h, w, c), dt)
    return struct_call(ctx, low, node, "tvc_mean_t", fields, f"mean_hw_{SUFFIX[dt]}")


def _mean_fields(p: MeanParams, nhwc: tuple[int, int, int, int], dt: str) -> dict[str, object]:
    """tvc_mean_t: the map's shape and the mean's integers (mean_hw and pool_finish)."""
    lo, hi = QRANGE[dt]
    n, h, w, c = nhwc
    return {
        "batch": n,
        "h": h,
        "w": w,
        "c": c,
        "in_zp": p.in_zp,
        "out_zp": p.out_zp,
        "mult": p.mult,
        "shift": p.shift,
        "act_min": lo,
        "act_max": hi,
    }


lowering("global_avg_pool", "portable", applies=_mean_applies)(_mean_portable)
lowering("reduce_mean", "portable", applies=_mean_applies)(_mean_portable)


# --- reduce_max (max-out over channel slices in detection heads) -----------------------------


@op(
    "reduce_max",
    attrs={"axes": AttrSpec("ints"), "keepdims": AttrSpec("int", 1, (0, 1))},
    infer=infer_reduce,
    dtypes=("f32", "i8", "i16"),
    layout="axis",
    memory="own",
    quant=SAME,
    kernels=("tvc_reduce.c",),
    permute_attrs=permute_sorted_axes,
)
def reduce_max(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """The maximum over `axes` (S3FD's max-out background class: a ReduceMax over a slice of
    the class channels)."""
    axes = tuple(norm_axes(node.attrs["axes"], x[0].ndim))  # type: ignore[arg-type]
    return [np.max(x[0], axis=axes, keepdims=bool(node.attrs["keepdims"]))]


@int_ref("reduce_max")
def reduce_max_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """Codes compare as values when input and output share their parameters."""
    same_params(node, ins, outs)
    return reduce_max(node, x)


def _max_last_axis(graph: Graph, node: Node) -> bool:
    rank = len(graph.tensors[node.inputs[0]].shape)
    return norm_axes(node.attrs["axes"], rank) == [rank - 1]  # type: ignore[arg-type]


@lowering("reduce_max", "portable", applies=_max_last_axis)
def reduce_max_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x = ctx.graph.tensors[node.inputs[0]]
    depth = x.shape[-1]
    low.stmts.append(
        ctx.call(
            f"reduce_max_last_{BYTES[x.dtype]}",
            str(x.numel // depth),
            str(depth),
            ctx.ptr(node.inputs[0]),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


def _pool_channels(graph: Graph, node: Node) -> str | None:
    """Pools are per channel: a constant channel stays constant (checked at every pixel by
    passes/dead_channels, so padding that counts differently at the border is caught)."""
    return channel_map(graph, node) if node.attrs["layout"] == "NHWC" else None


for _pool in ("max_pool2d", "avg_pool2d", "global_avg_pool"):
    channel_rule(_pool, ChannelRule(kind=_pool_channels))

for _pool in ("max_pool2d", "avg_pool2d"):  # a band of output rows reads the band's windows
    row_rule(_pool, RowRule(needs=window_rows, band=window_band))


# --- a global average over row bands: running sums, then the average's last step -------------
# A streamed stage (passes/patch) that ends in a global average never holds the whole map: each
# band's rows are added to per-channel int32 sums (`row_sum`, in place), and `pool_finish`
# divides as the pool would. The sum of the parts is the sum of the whole, so the result is
# the pool's, bit for bit; the sums carry the pooled map's scale and zero point (codes summed).


def reduces_rows(graph: Graph, node: Node) -> str | None:
    """ "avg" (TFLite AveragePool) or "mean" (QuantizedMeanOrSum) when the node averages its whole
    batch-1 NHWC integer map to one pixel, so it can run on running sums; None otherwise."""
    if node.op not in ("global_avg_pool", "avg_pool2d") or not node.inputs:
        return None
    x = graph.tensors[node.inputs[0]]
    if len(x.shape) != 4 or x.shape[0] != 1 or x.dtype not in ("i8", "i16") or x.is_const:
        return None
    if node.attrs.get("layout") != "NHWC" or x.qparams is None or x.qparams.exp is not None:
        return None
    if node.op == "global_avg_pool":
        return "mean"
    a = node.attrs
    whole = list(a["kernel"]) == list(x.shape[1:3]) and not any(a["pad"])  # type: ignore[call-overload]
    if node.op == "avg_pool2d" and whole and not a["ceil_mode"] and not a["count_include_pad"]:
        return "avg"
    return None


def _infer_row_sum(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    x = t[-1].shape
    if len(x) != 4 or x[0] != 1:
        raise IRError(f"row_sum {node.label}: rows of a batch-1 NHWC map, not {list(x)}")
    out = TType((1, 1, 1, x[3]), "i32")
    if len(t) == 2 and (t[0].shape != out.shape or t[0].dtype != "i32"):
        raise IRError(f"row_sum {node.label}: sums {list(t[0].shape)} {t[0].dtype}")
    return [out]


@op(
    "row_sum",
    inputs=(1, 2),
    infer=_infer_row_sum,
    dtypes=("f32", "i8", "i16", "i32"),
    layout="logical",
    memory="in_place",
    quant=SAME,  # sums of codes, under the summed map's scale and zero point
    kernels=("tvc_pool.c",),
)
def row_sum(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Per channel: the sums so far (the optional first input) plus the band's cells."""
    band = x[-1].astype(np.float64).sum(axis=(1, 2), keepdims=True)[:, :1]
    prior = x[0].astype(np.float64) if len(x) == 2 else 0.0
    return [(prior + band).astype(np.float32)]


@int_ref("row_sum")
def row_sum_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """int32 sums of the codes, wrapping as the C does (and as one sum over the whole map)."""
    band = x[-1].astype(np.int64).sum(axis=(1, 2), keepdims=True)[:, :1]
    prior = x[0].astype(np.int64) if len(x) == 2 else 0
    return [wrap32(prior + band).astype(np.int32)]


def _infer_finish(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    if t[0].dtype != "i32" or len(t[0].shape) != 4:
        raise IRError(f"pool_finish {node.label}: takes int32 sums, not {t[0].dtype}")
    return [TType(t[0].shape, str(node.attrs["dtype"]))]


@op(
    "pool_finish",
    attrs={
        "kind": AttrSpec("str", choices=("avg", "mean")),
        "count": AttrSpec("int"),
        "dtype": AttrSpec("str", choices=("i8", "i16")),
    },
    infer=_infer_finish,
    dtypes=("f32", "i32"),
    layout="logical",
    memory="own",
    quant=CALIBRATED,
    kernels=("tvc_pool.c",),
)
def pool_finish(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """The average of `count` cells from their sums."""
    return [(x[0].astype(np.float64) / int(node.attrs["count"])).astype(np.float32)]  # type: ignore[call-overload]


@dataclass(frozen=True)
class FinishParams:
    """pool_finish's integers, computed once: the count, and the mean's requantization (None
    for the average, which divides)."""

    count: int
    mean: MeanParams | None


@params("pool_finish")
def finish_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> FinishParams:
    count = int(node.attrs["count"])  # type: ignore[call-overload]
    mean = mean_ints(ins[0], outs[0], count) if node.attrs["kind"] == "mean" else None
    return FinishParams(count, mean)


@int_ref("pool_finish")
def pool_finish_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """What avg_pool2d (rounded division) or global_avg_pool (one requantization) does after
    its sum: the same functions on the same integers."""
    fp = finish_params(node, ins, outs)
    total = x[0].astype(np.int64)
    if fp.mean is None:
        same_params(node, ins, outs)
        return [finish(avg_div(total, fp.count), outs[0])]
    p = fp.mean
    return [finish(mbqm(wrap32(total - p.in_zp * p.count), p.mult, p.shift) + p.out_zp, outs[0])]


@lowering("row_sum", "portable")
def row_sum_portable(ctx: LowerCtx, node: Node) -> Lowered:
    x, y = ctx.graph.tensors[node.inputs[-1]], node.outputs[0]
    _, h, w, c = x.shape
    prior = ctx.ptr(node.inputs[0]) if len(node.inputs) == 2 else "0"
    low = Lowered()
    low.stmts.append(
        ctx.call(
            f"row_sum_{SUFFIX[x.dtype]}",
            ctx.ptr(node.inputs[-1]),
            str(h * w),
            str(c),
            prior,
            ctx.ptr(y, False),
        )
    )
    return low


@lowering("pool_finish", "portable")
def pool_finish_portable(ctx: LowerCtx, node: Node) -> Lowered:
    acc, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    dt, c = y.dtype, y.shape[3]
    fp = finish_params(node, [acc], [y])
    count = fp.count
    lo, hi = QRANGE[dt]
    low = Lowered()
    if fp.mean is None:
        low.stmts.append(
            ctx.call(
                f"pool_finish_avg_{SUFFIX[dt]}",
                ctx.ptr(node.inputs[0]),
                str(c),
                str(count),
                str(lo),
                str(hi),
                ctx.ptr(node.outputs[0], False),
            )
        )
        return low
    fields = _mean_fields(fp.mean, (1, count, 1, c), dt)
    return struct_call(ctx, low, node, "tvc_mean_t", fields, f"pool_finish_mean_{SUFFIX[dt]}")
