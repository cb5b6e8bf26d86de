"""Resizing on H and W: nearest-neighbour by integer factors (data movement), and bilinear.

Bilinear follows ONNX Resize mode "linear" in float (coordinate modes half_pixel,
pytorch_half_pixel, align_corners, asymmetric; the source coordinate clamped to the input)
and TFLite's ResizeBilinearInteger in integers: the source coordinate in 10-bit fixed point from
a rounded scale, four int8/int16 codes weighted in Q20 and rounded once (half away from zero).
Input and output share their quantization (TFLite's constraint), so the integer kernel works on
codes directly, for affine int8 and SeeDot int8/int16 alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.lowering import BYTES, SUFFIX, LowerCtx, Lowered, struct_call
from compiler.ir.ops._qutil import same_params
from compiler.ir.ops._util import from_nhwc, hwc_dims, make_shape, to_nhwc
from compiler.ir.registry import SAME, AttrSpec, TType, get_op, int_ref, lowering, op, params
from compiler.ir.tensor import DTYPES, Tensor
from compiler.numerics.fixedpoint import trunc_div

ANY = ("f32", "i8", "i16", "i32", "i64")
COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _infer_nearest(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    layout = str(node.attrs["layout"])
    n, h, w, c = hwc_dims(t[0].shape, layout)
    fh, fw = node.attrs["scale"]  # type: ignore[misc]
    return [TType(make_shape(n, h * fh, w * fw, c, layout), t[0].dtype)]


@op(
    "resize_nearest",
    attrs={"scale": AttrSpec("ints")},  # integer upscale factors [h, w]
    infer=_infer_nearest,
    dtypes=ANY,
    layout="spatial",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
)
def resize_nearest(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Nearest-neighbour upscaling by integer factors: out[y][x] = in[y // fh][x // fw]."""
    fh, fw = node.attrs["scale"]  # type: ignore[misc]
    h_axis, w_axis = (2, 3) if node.attrs["layout"] == "NCHW" else (1, 2)
    return [np.repeat(np.repeat(x[0], fh, axis=h_axis), fw, axis=w_axis)]


@lowering("resize_nearest", "portable")
def resize_nearest_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    _, h, w, c = ctx.graph.tensors[node.inputs[0]].shape
    fh, fw = node.attrs["scale"]  # type: ignore[misc]
    low.stmts.append(
        ctx.call(
            f"resize_nearest_{BYTES[ctx.graph.tensors[node.outputs[0]].dtype]}",
            str(h),
            str(w),
            str(c),
            str(fh),
            str(fw),
            ctx.ptr(node.inputs[0]),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


@int_ref("resize_nearest")
def resize_nearest_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """On quantized data: bytes move, values do not change."""
    same_params(node, ins, outs)
    return get_op("resize_nearest").run(node, x)


# --- bilinear --------------------------------------------------------------------------------


def _infer_bilinear(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    layout = str(node.attrs["layout"])
    if len(t[0].shape) != 4:
        raise IRError(f"resize_bilinear {node.label}: input must be 4-D, got {list(t[0].shape)}")
    n, _, _, c = hwc_dims(t[0].shape, layout)
    oh, ow = node.attrs["size"]  # type: ignore[misc]
    if min(oh, ow) < 1 or min(node.attrs["scale"]) <= 0:  # type: ignore[call-overload]
        raise IRError(f"resize_bilinear {node.label}: empty output or non-positive scale")
    return [TType(make_shape(n, oh, ow, c, layout), t[0].dtype)]


def source_coords(out_size: int, in_size: int, scale: float, coord: str) -> np.ndarray:
    """ONNX Resize: the input coordinate of each output position (float64), clamped."""
    o = np.arange(out_size, dtype=np.float64)
    if coord == "align_corners":
        x = o * ((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(o)
    elif coord == "asymmetric":
        x = o / scale
    elif coord == "pytorch_half_pixel" and out_size == 1:
        x = np.zeros_like(o)
    else:  # half_pixel, pytorch_half_pixel
        x = (o + 0.5) / scale - 0.5
    return np.clip(x, 0, in_size - 1)


def _lerp_axis(x: np.ndarray, coords: np.ndarray, axis: int) -> np.ndarray:
    lo = np.floor(coords).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    frac = (coords - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    a, b = np.take(x, lo, axis=axis), np.take(x, hi, axis=axis)
    return a + (b - a) * frac


@op(
    "resize_bilinear",
    attrs={
        "size": AttrSpec("ints"),  # output [h, w]
        "scale": AttrSpec("floats"),  # [h, w] output / input, as the coordinate transform uses
        "coord": AttrSpec("str", "half_pixel", COORD_MODES),
    },
    infer=_infer_bilinear,
    macs=lambda n, i, o: 4 * int(np.prod(o[0].shape)),
    layout="spatial",
    memory="own",
    quant=SAME,
    kernels=("tvc_resize.c",),
)
def resize_bilinear(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Bilinear resize on H and W (ONNX Resize mode="linear", F.interpolate(mode="bilinear"),
    Keras UpSampling2D(interpolation="bilinear"), TFLite RESIZE_BILINEAR)."""
    a = node.attrs
    layout = str(a["layout"])
    v = to_nhwc(x[0], layout).astype(np.float64)
    (oh, ow), (sh, sw), coord = a["size"], a["scale"], str(a["coord"])  # type: ignore[misc]
    v = _lerp_axis(v, source_coords(oh, v.shape[1], sh, coord), 1)
    v = _lerp_axis(v, source_coords(ow, v.shape[2], sw, coord), 2)
    return [np.ascontiguousarray(from_nhwc(v.astype(np.float32), layout))]


@dataclass(frozen=True)
class BilinearParams:
    """TFLite ResizeBilinearInteger's integers: the input/output ratio of each axis in 10-bit
    fixed point (rounded), and whether coordinates are pixel centres."""

    scale_h: int
    scale_w: int
    half_pixel: bool


def _scale_10(in_size: int, out_size: int, scale: float, coord: str) -> int:
    if coord == "align_corners":
        return (
            ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
            if out_size > 1
            else 0
        )
    if np.float32(out_size / in_size) == np.float32(scale):  # a size ratio: TFLite's rounding
        return ((1 << 10) * in_size + out_size // 2) // out_size
    return int(np.floor((1 << 10) / scale + 0.5))


@params("resize_bilinear")
def bilinear_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> BilinearParams:
    a = node.attrs
    _, h, w, _ = ins[0].shape
    (oh, ow), (sh, sw), coord = a["size"], a["scale"], str(a["coord"])  # type: ignore[misc]
    # pytorch_half_pixel maps a single output row to input row 0: plain coordinates do that
    half = coord == "half_pixel" or (coord == "pytorch_half_pixel" and oh > 1 and ow > 1)
    if coord == "pytorch_half_pixel" and (oh == 1) != (ow == 1):
        raise IRError(
            f"resize_bilinear {node.label}: pytorch_half_pixel with one output row or column "
            "but not both has no integer kernel"
        )
    return BilinearParams(_scale_10(h, oh, sh, coord), _scale_10(w, ow, sw, coord), half)


def _integer_coords(out_size: int, in_size: int, scale_10: int, half: bool):  # type: ignore[no-untyped-def]
    """TFLite's ComputeInterpolationValuesInteger for every output position."""
    v = np.arange(out_size, dtype=np.int64)
    scaled = v * scale_10 + (scale_10 // 2 - (1 << 9) if half else 0)
    lo = np.maximum(trunc_div(scaled, 1 << 10), 0)
    hi = np.minimum(trunc_div(scaled + (1 << 10) - 1, 1 << 10), in_size - 1)
    return scaled, lo, hi


@int_ref("resize_bilinear")
def resize_bilinear_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """Four codes weighted in Q20, summed in int64, rounded half away from zero."""
    if node.attrs["layout"] != "NHWC":
        raise IRError(f"resize_bilinear {node.label}: integer resize runs on NHWC data")
    same_params(node, ins, outs)
    p = bilinear_params(node, ins, outs)
    v = x[0].astype(np.int64)
    _, h, w, _ = v.shape
    oh, ow = node.attrs["size"]  # type: ignore[misc]
    ys, y0, y1 = _integer_coords(oh, h, p.scale_h, p.half_pixel)
    xs, x0, x1 = _integer_coords(ow, w, p.scale_w, p.half_pixel)
    fy = (ys - (y0 << 10))[None, :, None, None]
    fx = (xs - (x0 << 10))[None, None, :, None]
    r0, r1 = v[:, y0], v[:, y1]
    total = (
        r0[:, :, x0] * ((1 << 10) - fy) * ((1 << 10) - fx)
        + r1[:, :, x0] * fy * ((1 << 10) - fx)
        + r0[:, :, x1] * ((1 << 10) - fy) * fx
        + r1[:, :, x1] * fy * fx
    )
    half = np.where(total > 0, 1 << 19, -(1 << 19))
    return [trunc_div(total + half, 1 << 20).astype(DTYPES[outs[0].dtype])]


@lowering("resize_bilinear", "portable")
def resize_bilinear_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    p = bilinear_params(node, [x], [y])
    _, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    fields = {
        "in_h": h,
        "in_w": w,
        "c": c,
        "out_h": oh,
        "out_w": ow,
        "scale_h": p.scale_h,
        "scale_w": p.scale_w,
        "half_pixel": int(p.half_pixel),
    }
    return struct_call(ctx, low, node, "tvc_resize_t", fields, f"resize_bilinear_{SUFFIX[y.dtype]}")
