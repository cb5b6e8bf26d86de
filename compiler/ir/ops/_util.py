"""Small helpers shared by op definitions (layout views, window extraction)."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.registry import TType


def same(types: list[TType]) -> list[TType]:
    """Output has the first input's type (unary elementwise ops)."""
    return [types[0]]


def norm_axes(axes: list[int], rank: int) -> list[int]:
    return sorted(a % rank for a in axes)


def infer_reduce(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    """The output type of a reduction over `axes` (keepdims leaves them as 1)."""
    rank = len(t[0].shape)
    axes = norm_axes(node.attrs["axes"], rank)  # type: ignore[arg-type]
    keep = bool(node.attrs["keepdims"])
    shape = [1 if i in axes else d for i, d in enumerate(t[0].shape) if keep or i not in axes]
    return [TType(tuple(shape), t[0].dtype)]


def to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    return x.transpose(0, 2, 3, 1) if layout == "NCHW" else x


def from_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    return x.transpose(0, 3, 1, 2) if layout == "NCHW" else x


def hwc_dims(shape: tuple[int, ...], layout: str) -> tuple[int, int, int, int]:
    """(N, H, W, C) of a 4-D shape in the given layout."""
    if layout == "NCHW":
        n, c, h, w = shape
    else:
        n, h, w, c = shape
    return n, h, w, c


def make_shape(n: int, h: int, w: int, c: int, layout: str) -> tuple[int, ...]:
    return (n, c, h, w) if layout == "NCHW" else (n, h, w, c)


def out_size(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool = False) -> int:
    """Output length of a sliding window; absurd geometry (a window, stride or dilation below 1,
    negative padding, padding wider than the window) is refused, never allocated."""
    if k < 1 or s < 1 or d < 1 or min(p0, p1) < 0:
        raise IRError(f"window {k}, stride {s}, dilation {d}, pads {p0}/{p1}: must be positive")
    span = (k - 1) * d + 1
    if max(p0, p1) > span:
        raise IRError(f"pads {p0}/{p1} are wider than the window ({span})")
    num = size + p0 + p1 - span
    if ceil:
        o = -(-num // s) + 1
        if (o - 1) * s >= size + p0:  # the last window must start inside the input or left pad
            o -= 1
        return o
    return num // s + 1


def windows(
    x: np.ndarray,
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Strided windows of a padded NHWC array: [N, OH, OW, C, KH, KW] (a view)."""
    kh, kw = kernel
    dh, dw = dilation
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    v = np.lib.stride_tricks.sliding_window_view(x, (span_h, span_w), axis=(1, 2))
    v = v[:, :: stride[0], :: stride[1], :, ::dh, ::dw]
    return v[:, : out_hw[0], : out_hw[1]]


# Layout rules' attribute remaps: physical = logical.transpose(p), so logical axis a is
# physical axis p.index(a).


def permute_axis(attrs: dict[str, object], p: tuple[int, ...]) -> dict[str, object]:
    """An op with one `axis` attribute (concat, split, softmax)."""
    return {**attrs, "axis": p.index(int(attrs["axis"]) % len(p))}  # type: ignore[call-overload]


def permute_axes(attrs: dict[str, object], p: tuple[int, ...]) -> dict[str, object]:
    """An op with an `axes` list (slice keeps its order, parallel to starts/ends)."""
    return {**attrs, "axes": [p.index(x) for x in attrs["axes"]]}  # type: ignore[attr-defined]


def permute_sorted_axes(attrs: dict[str, object], p: tuple[int, ...]) -> dict[str, object]:
    """A reduction's `axes` set."""
    return {**attrs, "axes": sorted(p.index(x) for x in attrs["axes"])}  # type: ignore[attr-defined]


def permute_pads(attrs: dict[str, object], p: tuple[int, ...]) -> dict[str, object]:
    """ONNX pads: all begins, then all ends, one per axis."""
    pads, r = list(attrs["pads"]), len(p)  # type: ignore[call-overload]
    return {**attrs, "pads": [pads[p[j]] for j in range(r)] + [pads[r + p[j]] for j in range(r)]}


def channel_map(graph: Graph, node: Node) -> str | None:
    """The "map" channel kind (dead-channel elimination) for ops that compute output channel k
    from channel k of each input alone: every input an int8 activation of the output's rank
    whose last axis (channels, NHWC) has the output's length."""
    y = graph.tensors[node.outputs[0]]
    if y.dtype != "i8" or len(node.outputs) != 1:
        return None
    for name in node.inputs:
        t = graph.tensors[name]
        if t.data is not None or t.dtype != "i8" or len(t.shape) != len(y.shape):
            return None
        if t.shape[-1] != y.shape[-1]:
            return None
    return "map"


def nhwc_4d(graph: Graph, node: Node) -> bool:
    y = graph.tensors[node.outputs[0]]
    return (
        len(node.outputs) == 1
        and len(y.shape) == 4
        and y.shape[0] == 1
        and node.attrs.get("layout", "NHWC") == "NHWC"
    )


def window_span(attrs: dict[str, object], a: int, b: int, prefix: str = "") -> tuple[int, int]:
    """The input rows a sliding window (attributes `kernel`, `stride`, `pad`, `dilation`, under
    `prefix`) reads for output rows [a, b): from a*stride - pad_top to the last window's bottom
    row, before clipping to the input."""
    k, s = int(attrs[prefix + "kernel"][0]), int(attrs[prefix + "stride"][0])  # type: ignore[index]
    d = int(attrs.get(prefix + "dilation", [1, 1])[0])  # type: ignore[index]
    pad_top = int(attrs[prefix + "pad"][0])  # type: ignore[index]
    return a * s - pad_top, (b - 1) * s - pad_top + (k - 1) * d + 1


def band_padding(
    attrs: dict[str, object], need: tuple[int, int], held: tuple[int, int], prefix: str = ""
) -> dict[str, object]:
    """`attrs` with the window's top and bottom padding for a band: the rows it reaches above
    and below the rows held (0 inside the map, the op's own at its edges)."""
    out = dict(attrs)
    pad = list(attrs[prefix + "pad"])  # type: ignore[call-overload]
    out[prefix + "pad"] = [held[0] - need[0], pad[1], need[1] - held[1], pad[3]]
    return out


def window_rows(graph: Graph, node: Node, a: int, b: int) -> list[tuple[int, int] | None] | None:
    """Row rule (registry.RowRule) of a sliding-window op (conv, pools): output rows [a, b)
    read the window_span of input rows; weights whole."""
    if not nhwc_4d(graph, node):
        return None
    return [window_span(node.attrs, a, b)] + [None] * (len(node.inputs) - 1)


def window_band(
    graph: Graph, node: Node, a: int, b: int, held: list[tuple[int, int] | None]
) -> dict[str, object]:
    """The attributes of a window op on output rows [a, b): band_padding (a ceil-mode pool's
    extra cells become explicit padding, which pools never count)."""
    assert held[0] is not None
    attrs = band_padding(node.attrs, window_span(node.attrs, a, b), held[0])
    if "ceil_mode" in attrs:
        attrs["ceil_mode"] = 0
    return attrs


def same_rows(graph: Graph, node: Node, a: int, b: int) -> list[tuple[int, int] | None] | None:
    """Row rule of element-wise ops: output rows [a, b) read the same rows of every input of
    the output's shape; an operand broadcast over rows (one row, or per channel) is read
    whole."""
    if not nhwc_4d(graph, node):
        return None
    y = graph.tensors[node.outputs[0]]
    out: list[tuple[int, int] | None] = []
    for name in node.inputs:
        t = graph.tensors[name]
        if t.data is not None or len(t.shape) < 3 or t.shape[-3] == 1:
            out.append(None)  # constant, or the same for every row
        elif len(t.shape) == 4 and t.shape[1:3] == y.shape[1:3]:
            out.append((a, b))
        else:
            return None
    return out
