"""A convolution and the RNNPool that alone reads it, fused by the scheduler into one patch-wise
step: the convolution computes only the `band_rows` rows of its output that the next row of
patches adds (into a band of work memory), RNNPool reads its patches by stride from that band.
The full convolution output never exists (docs/rnnpool.md, "Patch-wise").

Inputs: the convolution's (x, weights[, bias]) then RNNPool's eight weights. Attributes: the
convolution's prefixed `conv_`, RNNPool's as they are, and the quantization of the convolution
output that no tensor holds any more (`mid_*`). Created after quantization, on NHWC int8/int16
graphs only; its integer semantics are exactly those of the two ops in sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered
from compiler.ir.ops._util import band_padding, nhwc_4d, window_span
from compiler.ir.ops.conv import (
    CONV_ATTRS,
    ConvParams,
    check_bias,
    conv_out_hw,
    conv_params,
    conv_struct,
)
from compiler.ir.ops.rnnpool import (
    RNNPOOL_ATTRS,
    RnnpoolFormats,
    rnnpool_formats,
    rnnpool_scratch_bytes,
    rnnpool_struct,
)
from compiler.ir.registry import (
    CALIBRATED,
    AttrSpec,
    RowRule,
    TType,
    get_op,
    int_ref,
    lowering,
    op,
    params,
    row_rule,
)
from compiler.ir.tensor import QParams, Tensor

SCRATCH_ALIGN = 16  # the parts of the fused step's work buffer start 16-byte aligned

ATTRS = {
    **{f"conv_{k}": v for k, v in CONV_ATTRS.items()},
    **RNNPOOL_ATTRS,
    "band_rows": AttrSpec("int"),
    "mid_dtype": AttrSpec("str", "i8", ("i8", "i16")),
    "mid_scale": AttrSpec("float", None),
    "mid_zp": AttrSpec("int", 0),
    "mid_exp": AttrSpec("int", None),
}


def split_nodes(node: Node) -> tuple[Node, Node]:
    """The convolution and the RNNPool the node stands for (the middle tensor named `mid`)."""
    a = node.attrs
    conv_attrs = {k[5:]: v for k, v in a.items() if k.startswith("conv_")}
    conv_attrs["layout"] = a["layout"]
    pool_attrs = {k: a[k] for k in (*RNNPOOL_ATTRS, "layout") if k in a}
    n_conv = len(node.inputs) - 8
    conv = Node("conv2d", node.inputs[:n_conv], ["mid"], conv_attrs, node.name)
    pool = Node("rnnpool", ["mid", *node.inputs[n_conv:]], node.outputs, pool_attrs, node.name)
    return conv, pool


def _mid(node: Node, ins: list[Tensor]) -> Tensor:
    """The convolution output, as the quantizer described it (no graph tensor holds it)."""
    a = node.attrs
    conv, _ = split_nodes(node)
    n, h, w, _ = ins[0].shape
    oh, ow = conv_out_hw(conv, h, w)
    exp = a.get("mid_exp")
    q = (
        QParams(exp=int(exp))  # type: ignore[call-overload]
        if exp is not None
        else QParams((float(a["mid_scale"]),), (int(a["mid_zp"]),))  # type: ignore[arg-type, call-overload]
    )
    return Tensor("mid", (n, oh, ow, ins[1].shape[0]), str(a["mid_dtype"]), "NHWC", None, q)


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    if len(t) not in (10, 11) or len(t[0].shape) != 4:
        raise IRError(
            f"conv_rnnpool {node.label}: takes x, conv weights[, bias] and 8 RNNPool weights"
        )
    conv, pool = split_nodes(node)
    return get_op("rnnpool").infer(pool, [_infer_mid(conv, t), *t[-8:]], [None, *v[-8:]])  # type: ignore[return-value]


def _macs(node: Node, ins: list[TType], outs: list[TType]) -> int:
    conv, pool = split_nodes(node)
    mid = _infer_mid(conv, ins)
    conv_macs = get_op("conv2d").macs(conv, ins[:-8], [mid])  # type: ignore[misc]
    return conv_macs + get_op("rnnpool").macs(pool, [mid, *ins[-8:]], outs)  # type: ignore[misc]


def _infer_mid(conv: Node, ins: list[TType]) -> TType:
    """The type of the convolution output the fused step never materializes."""
    mid = get_op("conv2d").infer(conv, ins[:-8], [None] * (len(ins) - 8))
    assert mid is not None
    return mid[0]


def overwrite_is_safe(graph: Graph, node: Node) -> bool:
    """May the output rows overwrite the convolution's input from its first byte on? Output row
    oy is written once the band holds convolution rows up to hi(oy); every input row the
    remaining convolution rows read must still lie past the bytes written so far."""
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    if x.dtype != y.dtype or x.shape[0] != 1:
        return False
    a = node.attrs
    conv, _ = split_nodes(node)
    _, in_h, in_w, in_c = x.shape
    conv_h, _ = conv_out_hw(conv, in_h, in_w)
    _, out_h, out_w, out_c = y.shape
    sh, ph = int(a["stride"][0]), int(a["patch"][0])  # type: ignore[index]
    s_conv, pad_t = int(a["conv_stride"][0]), int(a["conv_pad"][0])  # type: ignore[index]
    for oy in range(out_h):
        hi = min(oy * sh + ph, conv_h)  # conv rows computed once row oy is written
        first_needed = in_h if hi >= conv_h else max(0, min(in_h, hi * s_conv - pad_t))
        if (oy + 1) * out_w * out_c > first_needed * in_w * in_c:
            return False
    return True


@op(
    "conv_rnnpool",
    attrs=ATTRS,
    inputs=(10, 11),
    infer=_infer,
    dtypes=("f32", "i8", "i16"),
    macs=_macs,
    layout="spatial",
    memory="own",
    quant=CALIBRATED,  # created after quantization by the scheduler
    kernels=("tvc_conv.c", "tvc_rnnpool.c"),
    overwrite_proof=overwrite_is_safe,
)
def conv_rnnpool(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """The convolution, then RNNPool over its whole output (the float meaning of the pair)."""
    conv, pool = split_nodes(node)
    n_conv = len(x) - 8
    mid = get_op("conv2d").run(conv, x[:n_conv])
    return get_op("rnnpool").run(pool, [mid[0], *x[n_conv:]])


@dataclass(frozen=True)
class ConvRnnpoolParams:
    """The fused step's integers: exactly its convolution's and its RNNPool's."""

    conv: ConvParams
    pool: RnnpoolFormats


@params("conv_rnnpool")
def conv_rnnpool_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> ConvRnnpoolParams:
    conv, pool = split_nodes(node)
    n_conv = len(ins) - 8
    mid = _mid(node, ins)
    return ConvRnnpoolParams(
        conv_params(conv, ins[:n_conv], [mid]), rnnpool_formats(pool, [mid, *ins[n_conv:]], outs)
    )


@int_ref("conv_rnnpool")
def conv_rnnpool_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """Exactly the integer convolution, then the integer RNNPool (the band changes where the
    rows live, not what they hold)."""
    conv, pool = split_nodes(node)
    n_conv = len(x) - 8
    mid = _mid(node, ins)
    m = get_op("conv2d").run_int(conv, x[:n_conv], ins[:n_conv], [mid])  # type: ignore[misc]
    return get_op("rnnpool").run_int(pool, [m[0], *x[n_conv:]], [mid, *ins[n_conv:]], outs)  # type: ignore[misc]


def _aligned(n: int) -> int:
    return (n + SCRATCH_ALIGN - 1) // SCRATCH_ALIGN * SCRATCH_ALIGN


def scratch_parts(graph: Graph, node: Node) -> tuple[int, int, int]:
    """Bytes of the fused step's work buffer: im2col columns (int8 DSP conv), the band of
    convolution rows, RNNPool's work area; each part aligned."""
    ins = [graph.tensors[i] for i in node.inputs]
    mid = _mid(node, ins)
    conv, _ = split_nodes(node)
    im2col = (
        _aligned(conv_params(conv, ins[: len(ins) - 8], [mid]).im2col_bytes)
        if mid.dtype == "i8"
        else 0
    )
    _, _, w, c = mid.shape
    band = _aligned(int(node.attrs["band_rows"]) * w * c * (1 if mid.dtype == "i8" else 2))  # type: ignore[call-overload]
    return im2col, band, _aligned(rnnpool_scratch_bytes(node.attrs, c))


def _special_applies(graph: Graph, node: Node) -> bool:
    """int8: --optimize speed compiles the layer's RNNPool parameters into its code."""
    return graph.tensors[node.outputs[0]].dtype == "i8"


@lowering(
    "conv_rnnpool",
    "portable",
    applies=_special_applies,
    scratch=lambda g, n: sum(scratch_parts(g, n)),
)
def conv_rnnpool_special(ctx: LowerCtx, node: Node) -> Lowered:
    """The band loop of the shared kernel with the layer's own RNNPool row function, in which
    the parameter struct is a constant (compiler/runtime/tvc_special.h)."""
    if ctx.optimize != "speed":
        return conv_rnnpool_portable(ctx, node)
    low = Lowered()
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    mid = _mid(node, ins)
    conv, _ = split_nodes(node)
    n_conv = len(ins) - 8
    p = conv_rnnpool_params(node, ins, [ctx.graph.tensors[node.outputs[0]]]).conv
    conv_name, pool_name = f"{ctx.name}_conv", ctx.name
    conv_struct(ctx, low, conv_name, conv, conv.attrs, ins[0], mid, p)
    check_bias(ctx.graph, conv, "i8")
    rnnpool_struct(ctx, low, pool_name, node, mid)
    im2col, band, _ = scratch_parts(ctx.graph, node)
    ctx.feature("TVC_SPECIAL")
    row = f"{ctx.name}_row"
    low.decls.append(
        f"static TVC_NOINLINE void {row}(const int8_t *band, int32_t *scratch, int8_t *out) {{\n"
        f"    TVC_FN(rnnpool_body_s8)(&{pool_name}, band, 1, scratch, out);\n}}"
    )
    bias = ctx.ptr(node.inputs[2]) if n_conv > 2 else "0"
    ctx.uses_kernels()  # the band's convolution is the shared conv2d_s8 (tvc_conv.c)
    low.stmts.append(
        f"tvc_conv_rnnpool_s8_special(&{conv_name}, {ctx.ptr(node.inputs[0])}, "
        f"{ctx.ptr(node.inputs[1])}, {bias}, {ctx.scratch_ptr('int16_t')}, &{pool_name}, "
        f"{ctx.scratch_ptr('int8_t', im2col)}, {ctx.scratch_ptr('int32_t', im2col + band)}, "
        f"{ctx.ptr(node.outputs[0], False)}, {row});"
    )
    return low


@lowering("conv_rnnpool", "portable", scratch=lambda g, n: sum(scratch_parts(g, n)))
def conv_rnnpool_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    ins = [ctx.graph.tensors[i] for i in node.inputs]
    mid = _mid(node, ins)
    dt = mid.dtype
    conv, _ = split_nodes(node)
    n_conv = len(ins) - 8
    p = conv_rnnpool_params(node, ins, [ctx.graph.tensors[node.outputs[0]]]).conv
    conv_name, pool_name = f"{ctx.name}_conv", ctx.name
    conv_struct(ctx, low, conv_name, conv, conv.attrs, ins[0], mid, p)
    check_bias(ctx.graph, conv, dt)
    rnnpool_struct(ctx, low, pool_name, node, mid)
    im2col, band, _ = scratch_parts(ctx.graph, node)
    bias = ctx.ptr(node.inputs[2]) if n_conv > 2 else "0"
    args = [f"&{conv_name}", ctx.ptr(node.inputs[0]), ctx.ptr(node.inputs[1]), bias]
    if dt == "i8":
        args.append(ctx.scratch_ptr("int16_t"))
    ctype = "int8_t" if dt == "i8" else "int16_t"
    low.stmts.append(
        ctx.call(
            f"conv_rnnpool_{SUFFIX[dt]}",
            *args,
            f"&{pool_name}",
            ctx.scratch_ptr(ctype, im2col),
            ctx.scratch_ptr("int32_t", im2col + band),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


def _conv_span(node: Node, a: int, b: int) -> tuple[int, int]:
    """The frame rows RNNPool output rows [a, b) come from: their patches' convolution rows
    (RNNPool has no padding), and the convolution's window over those."""
    sh, ph = int(node.attrs["stride"][0]), int(node.attrs["patch"][0])  # type: ignore[index]
    return window_span(node.attrs, a * sh, (b - 1) * sh + ph, "conv_")


def _rows(graph: Graph, node: Node, a: int, b: int) -> list[tuple[int, int] | None] | None:
    """Row rule: a band of output rows reads the frame rows of its patches' convolution rows;
    the weights whole. A band is a smaller fused step (the kernel's own band loop inside)."""
    if not nhwc_4d(graph, node):
        return None
    return [_conv_span(node, a, b)] + [None] * (len(node.inputs) - 1)


def _band(
    graph: Graph, node: Node, a: int, b: int, held: list[tuple[int, int] | None]
) -> dict[str, object]:
    """The convolution pads the band where its window reaches past the frame rows held."""
    assert held[0] is not None
    return band_padding(node.attrs, _conv_span(node, a, b), held[0], "conv_")


row_rule("conv_rnnpool", RowRule(needs=_rows, band=_band))
