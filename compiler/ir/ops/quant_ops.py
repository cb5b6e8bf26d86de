"""The edges of a quantized graph: float → integer codes and back."""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered
from compiler.ir.ops._qutil import finish, scale_zp
from compiler.ir.ops._util import same_rows
from compiler.ir.ops.activation import RequantParams, requant_int, requant_params, requant_portable
from compiler.ir.registry import (
    CALIBRATED,
    AttrSpec,
    RowRule,
    TType,
    int_ref,
    lowering,
    op,
    params,
    row_rule,
)
from compiler.ir.tensor import QUANTIZED_DTYPES, Tensor
from compiler.numerics.fixedpoint import round_half_away_f32


@op(
    "quantize",
    attrs={"to": AttrSpec("str", "i8", ("i8", "i16", "u8"))},
    infer=lambda n, t, v: [TType(t[0].shape, str(n.attrs["to"]))],
    layout="logical",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def quantize(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """In a float run the edge is transparent; the integer reference does the real work."""
    return [x[0]]


@int_ref("quantize")
def quantize_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite AffineQuantize: round(x / scale) (float32 division, half away) + zero point;
    from integers, TFLite Requantize: one multiplier s_in / s_out."""
    if ins[0].dtype in QUANTIZED_DTYPES:
        return [requant_int(requant_params(ins, outs, None), x[0], outs[0])]
    s, zp = scale_zp(outs[0])
    q = round_half_away_f32(x[0].astype(np.float32) / np.float32(s)) + zp
    return [finish(q, outs[0])]


@op(
    "dequantize",
    infer=lambda n, t, v: [TType(t[0].shape, "f32")],
    dtypes=QUANTIZED_DTYPES,
    layout="logical",
    memory="own",
    quant=CALIBRATED,
    kernels=(),
)
def dequantize(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [x[0].astype(np.float32)]


@int_ref("dequantize")
def dequantize_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite Dequantize: scale * (q - zero point) in double, rounded to float."""
    s, zp = scale_zp(ins[0])
    return [(s * (x[0].astype(np.float64) - zp)).astype(np.float32)]


@params("quantize")
def quantize_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> RequantParams:
    """Between integer types: TFLite Requantize (float inputs are quantized by the caller)."""
    return requant_params(ins, outs, None)


def _u8_edge(graph: Graph, node: Node) -> bool:
    """uint8 in or out (a TFLite model with uint8 input/output): uint8 <-> int8."""
    a, y = graph.tensors[node.inputs[0]].dtype, graph.tensors[node.outputs[0]].dtype
    return {a, y} == {"u8", "i8"}


@lowering("quantize", "portable", applies=_u8_edge)
def quantize_u8_edge(ctx: LowerCtx, node: Node) -> Lowered:
    """TFLite's QUANTIZE between uint8 and int8 at a model's edges: the same requantization as
    between int8 tensors (usually the identity on the real value: x - 128), on uint8 codes on
    one side. The C API then takes or returns uint8_t."""
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    p = quantize_params(node, [x], [y])
    kernel = "requant_u8_s8" if x.dtype == "u8" else "requant_s8_u8"
    return requant_portable(ctx, node, p, kernel)


@lowering("quantize", "portable", applies=lambda g, n: g.tensors[n.inputs[0]].dtype in SUFFIX)
def quantize_portable(ctx: LowerCtx, node: Node) -> Lowered:
    ins = [ctx.graph.tensors[node.inputs[0]]]
    return requant_portable(
        ctx, node, quantize_params(node, ins, [ctx.graph.tensors[node.outputs[0]]])
    )


# requantizing integer codes is element by element (the float edge never runs by rows)
row_rule(
    "quantize",
    RowRule(
        needs=lambda g, n, a, b: (
            same_rows(g, n, a, b) if g.tensors[n.inputs[0]].dtype != "f32" else None
        )
    ),
)
