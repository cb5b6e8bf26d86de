"""Template op module: copy to compiler/ir/ops/<op>.py, rename, fill in, and add it to
compiler/ir/ops/__init__.py. This one is a complete, working op (softsign, x / (1 + |x|)),
registered when imported; tests/test_op_facts.py::test_the_template_op_declares_every_fact
imports it in a subprocess and checks it like the real ones.

Every fact about the op lives here. Nothing in passes/, quant/ or codegen/ names an op.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.ir.graph import Node
from compiler.ir.lowering import LowerCtx, Lowered
from compiler.ir.ops._qutil import pow2_exp, scale_zp
from compiler.ir.ops._util import same
from compiler.ir.registry import CALIBRATED, int_ref, lowering, op, params
from compiler.ir.tensor import DTYPES, Tensor
from compiler.numerics.fixedpoint import lut_int8
from compiler.numerics.pow2 import TABLE_BITS, apply_table, pointwise_table

NAME = "softsign_example"  # the IR name (the real op would be "softsign")


def _f32(v: np.ndarray) -> np.ndarray:
    x = np.asarray(v, np.float32)
    return (x / (np.float32(1) + np.abs(x))).astype(np.float32)


@op(
    NAME,
    attrs={},  # typed attributes: {"alpha": AttrSpec("float", 1.0)}
    infer=lambda n, t, v: same(t),  # shape and dtype inference (raise IRError naming the node)
    layout="elementwise",  # the layout pass's rule (registry.LAYOUT_RULES)
    memory="in_place",  # may overwrite its input (reads element i before writing it)
    quant=CALIBRATED,  # output parameters from calibration ("same", "fixed", "none")
    kernels=("tvc_pointwise.c",),  # compiler/runtime sources its lowering calls
)
def softsign(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """The float reference (the interpreter, calibration and accuracy run this)."""
    return [_f32(x[0])]


@dataclass(frozen=True)
class SoftsignParams:
    """Every integer the op needs, computed once (interpreter and backends read these)."""

    table: np.ndarray  # int8: one code per input code; int16: interpolation points


@params(NAME)
def softsign_params(node: Node, ins: list[Tensor], outs: list[Tensor]) -> SoftsignParams:
    e_in, e_out = pow2_exp(ins[0]), pow2_exp(outs[0])
    if e_in is not None and e_out is not None:  # SeeDot
        return SoftsignParams(pointwise_table(_f32, e_in, e_out, outs[0].dtype))
    (si, zi), (so, zo) = scale_zp(ins[0]), scale_zp(outs[0])
    return SoftsignParams(lut_int8(si, zi, so, zo, _f32))


@int_ref(NAME)
def softsign_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """The integer semantics, bit-exact with the C (the params' table, read as the kernel does)."""
    p = softsign_params(node, ins, outs)
    return [apply_table(p.table, x[0], outs[0].dtype).astype(DTYPES[outs[0].dtype])]


@lowering(NAME, "portable")  # add applies=..., scratch=... when the rule is conditional
def softsign_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """Format the params for the kernel; compute nothing here."""
    low = Lowered()
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    p = softsign_params(node, [x], [y])
    if y.dtype == "i8":
        t = low.table(f"{ctx.name}_lut", "int8_t", p.table)
        args = [str(x.numel), t, ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0], False)]
        low.stmts.append(ctx.call("lut_s8", *args))
    else:
        t = low.table(f"{ctx.name}_table", "int32_t", p.table)
        args = [str(x.numel), t, str(TABLE_BITS), ctx.ptr(node.inputs[0])]
        low.stmts.append(ctx.call("interp_s16", *args, ctx.ptr(node.outputs[0], False)))
    return low
