"""TFLite operator → IR node translation, one handler per builtin operator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import tflite

from compiler.ir.tensor import QParams, const_tensor

if TYPE_CHECKING:
    from compiler.frontend.tflite import TFLiteImporter

ACTS = {0: "none", 1: "relu", 2: "clip", 3: "relu6"}  # TFLite fused activation codes

Handler = Callable[["TFLiteImporter", object, str, list[int], list[str]], None]
HANDLERS: dict[str, Handler] = {}


def handles(*kinds: str) -> Callable[[Handler], Handler]:
    def reg(fn: Handler) -> Handler:
        for k in kinds:
            HANDLERS[k] = fn
        return fn

    return reg


def _act(code: int) -> dict[str, object]:
    act = ACTS.get(code)
    if act is None:
        raise ValueError(f"fused activation {code}")
    return {"act": act, "clip": [-1.0, 1.0]} if act == "clip" else {"act": act}


def _same_pads(
    size: tuple[int, int], k: tuple[int, int], s: tuple[int, int], d: tuple[int, int], same: bool
) -> list[int]:
    """TFLite padding: SAME splits the total, the extra cell at the end; VALID pads nothing."""
    if not same:
        return [0, 0, 0, 0]
    pads = [0, 0, 0, 0]
    for i in range(2):
        out = -(-size[i] // s[i])
        total = max(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - size[i])
        pads[i], pads[i + 2] = total // 2, total - total // 2
    return pads


@handles("CONV_2D", "DEPTHWISE_CONV_2D")
def _conv(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    depthwise = kind == "DEPTHWISE_CONV_2D"
    o = imp.options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    x = imp.tensor(ins[0])
    w_name = imp.tensor(ins[1])
    w = imp.const_data(ins[1], kind)
    wt = imp.graph.tensors[w_name]
    n, h, wd, c = imp.graph.tensors[x].shape
    if depthwise:  # [1, KH, KW, C*m] -> OHWI [C*m, KH, KW, 1], per-channel axis 3 -> 0
        q = wt.qparams
        w_name = imp.graph.add_const(
            f"{w_name}/ohwi", const_tensor(w_name, w.transpose(3, 1, 2, 0))
        )
        imp.graph.tensors[w_name].qparams = (
            QParams(q.scale, q.zero_point, 0 if q.axis is not None else None) if q else None
        )
        groups = c
    else:
        groups = c // w.shape[3]
    kh, kw = int(w.shape[1]), int(w.shape[2])
    stride = (o.StrideH(), o.StrideW())
    dil = (o.DilationHFactor(), o.DilationWFactor())
    pads = _same_pads((h, wd), (kh, kw), stride, dil, o.Padding() == tflite.Padding.SAME)
    node_ins = [x, w_name] + ([imp.tensor(ins[2])] if len(ins) > 2 and ins[2] >= 0 else [])
    imp.emit(
        kind,
        "conv2d",
        node_ins,
        outs,
        kernel=[kh, kw],
        stride=list(stride),
        pad=pads,
        dilation=list(dil),
        groups=groups,
        layout="NHWC",
        **_act(o.FusedActivationFunction()),
    )


@handles("FULLY_CONNECTED")
def _fc(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.FullyConnectedOptions)
    x = imp.tensor(ins[0])
    w = imp.tensor(ins[1])
    imp.const_data(ins[1], kind)
    k = imp.graph.tensors[w].shape[1]
    xt = imp.graph.tensors[x]
    if len(xt.shape) != 2 and not o.KeepNumDims():
        flat = imp.graph.fresh_name(f"{x}/flat")
        imp.graph.tensors[flat] = xt.copy(name=flat, shape=(xt.numel // k, k), layout=None)
        imp.emit(kind, "reshape", [x], [flat], shape=[xt.numel // k, k])
        x = flat
    node_ins = [x, w] + ([imp.tensor(ins[2])] if len(ins) > 2 and ins[2] >= 0 else [])
    imp.emit(kind, "dense", node_ins, outs, **_act(o.FusedActivationFunction()))


@handles("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.Pool2DOptions)
    x = imp.tensor(ins[0])
    _, h, w, _ = imp.graph.tensors[x].shape
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    pads = _same_pads((h, w), k, s, (1, 1), o.Padding() == tflite.Padding.SAME)
    raw = imp.emit_act(kind, o.FusedActivationFunction(), outs[0])
    ir_op = "max_pool2d" if kind == "MAX_POOL_2D" else "avg_pool2d"
    imp.emit(kind, ir_op, [x], [raw], kernel=list(k), stride=list(s), pad=pads, layout="NHWC")
    _flush(imp, kind)


def _flush(imp: TFLiteImporter, kind: str) -> None:
    if imp._pending is not None:
        op_, ins, outs, attrs = imp._pending
        imp._pending = None
        imp.emit(kind, op_, ins, outs, **attrs)


@handles("ADD", "SUB", "MUL")
def _binary(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[kind]
    o = imp.options(op, cls)
    imp.emit(
        kind,
        kind.lower(),
        [imp.tensor(ins[0]), imp.tensor(ins[1])],
        outs,
        **_act(o.FusedActivationFunction()),
    )


@handles("CONCATENATION")
def _concat(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.ConcatenationOptions)
    names = [imp.tensor(i) for i in ins]
    rank = len(imp.graph.tensors[outs[0]].shape)
    raw = imp.emit_act(kind, o.FusedActivationFunction(), outs[0])
    imp.emit(kind, "concat", names, [raw], axis=o.Axis() % rank)
    _flush(imp, kind)


@handles("RESHAPE")
def _reshape(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    imp.emit(
        kind, "reshape", [imp.tensor(ins[0])], outs, shape=list(imp.graph.tensors[outs[0]].shape)
    )


@handles("SOFTMAX")
def _softmax(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.SoftmaxOptions)
    x = imp.tensor(ins[0])
    imp.emit(
        kind, "softmax", [x], outs, axis=len(imp.graph.tensors[x].shape) - 1, beta=float(o.Beta())
    )


@handles("PAD")
def _pad(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    p = imp.const_data(ins[1], kind).astype(np.int64)  # [rank, 2]
    imp.emit(
        kind,
        "pad",
        [imp.tensor(ins[0])],
        outs,
        pads=[int(v) for v in p[:, 0]] + [int(v) for v in p[:, 1]],
    )


@handles("MEAN")
def _mean(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.ReducerOptions)
    x = imp.tensor(ins[0])
    rank = len(imp.graph.tensors[x].shape)
    axes = sorted(int(a) % rank for a in imp.const_data(ins[1], kind).reshape(-1))
    imp.emit(kind, "reduce_mean", [x], outs, axes=axes, keepdims=int(bool(o.KeepDims())))


@handles("RELU", "RELU6", "RELU_N1_TO_1", "LOGISTIC", "TANH")
def _activation(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    x = [imp.tensor(ins[0])]
    if kind == "RELU":
        imp.emit(kind, "relu", x, outs)
    elif kind == "RELU6":
        imp.emit(kind, "clip", x, outs, min=0.0, max=6.0)
    elif kind == "RELU_N1_TO_1":
        imp.emit(kind, "clip", x, outs, min=-1.0, max=1.0)
    else:
        imp.emit(kind, "sigmoid" if kind == "LOGISTIC" else "tanh", x, outs)


@handles("GELU")
def _gelu(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.GeluOptions)
    approximate = "tanh" if o.Approximate() else "none"
    imp.emit(kind, "gelu", [imp.tensor(ins[0])], outs, approximate=approximate)


@handles("L2_NORMALIZATION")
def _l2_norm(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.L2NormOptions)
    x = imp.tensor(ins[0])
    axis = len(imp.graph.tensors[x].shape) - 1
    out = imp.emit_act(kind, o.FusedActivationFunction(), outs[0])
    imp.emit(kind, "l2_norm", [x], [out], axis=axis, eps=1e-6)


@handles("REDUCE_MAX")
def _reduce_max(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    o = imp.options(op, tflite.ReducerOptions)
    x = imp.tensor(ins[0])
    rank = len(imp.graph.tensors[x].shape)
    axes = sorted(int(a) % rank for a in imp.const_data(ins[1], kind).reshape(-1))
    imp.emit(kind, "reduce_max", [x], outs, axes=axes, keepdims=int(bool(o.KeepDims())))


@handles("QUANTIZE")
def _quantize(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    imp.emit(kind, "quantize", [imp.tensor(ins[0])], outs, to=imp.graph.tensors[outs[0]].dtype)


@handles("DEQUANTIZE")
def _dequantize(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    imp.emit(kind, "dequantize", [imp.tensor(ins[0])], outs)


@handles("RESIZE_BILINEAR")
def _resize_bilinear(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Keras UpSampling2D(interpolation="bilinear") / tf.image.resize(method="bilinear")."""
    o = imp.options(op, tflite.ResizeBilinearOptions)
    x = imp.tensor(ins[0])
    _, h, w, _ = imp.graph.tensors[x].shape
    oh, ow = (int(v) for v in imp.const_data(ins[1], kind).reshape(-1))
    if o.AlignCorners() and o.HalfPixelCenters():
        imp.fail(kind, "sets both align_corners and half_pixel_centers")
    coord = (
        "align_corners"
        if o.AlignCorners()
        else "half_pixel"
        if o.HalfPixelCenters()
        else "asymmetric"
    )
    imp.emit(
        kind,
        "resize_bilinear",
        [x],
        outs,
        size=[oh, ow],
        scale=[float(np.float32(oh / h)), float(np.float32(ow / w))],
        coord=coord,
        layout="NHWC",
    )


@handles("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(imp: TFLiteImporter, op, kind: str, ins: list[int], outs: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Keras UpSampling2D: for integer factors both pixel-centre conventions pick in[y // f]."""
    o = imp.options(op, tflite.ResizeNearestNeighborOptions)
    if o.AlignCorners():
        imp.fail(kind, "uses align_corners=True; tvc supports the default (align_corners=False)")
    x = imp.tensor(ins[0])
    _, h, w, _ = imp.graph.tensors[x].shape
    oh, ow = (int(v) for v in imp.const_data(ins[1], kind).reshape(-1))
    if oh % h or ow % w:
        imp.fail(
            kind,
            f"resizes {h}x{w} to {oh}x{ow}; tvc supports integer upscaling factors "
            "(keras.layers.UpSampling2D(interpolation='nearest'))",
        )
    imp.emit(kind, "resize_nearest", [x], outs, scale=[oh // h, ow // w], layout="NHWC")
