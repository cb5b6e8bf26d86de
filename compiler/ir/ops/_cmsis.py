"""Shared pieces of the CMSIS-NN lowering rules: when CMSIS-NN computes exactly our numbers
(affine int8), its parameter structs, contexts on planned scratch, and status checks."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import LowerCtx, Lowered, struct
from compiler.ir.ops._qutil import pow2_exp


def affine_i8(graph: Graph, node: Node) -> bool:
    """CMSIS-NN's _s8 kernels are TFLite's affine int8 arithmetic, nothing else."""
    ts = [graph.tensors[t] for t in [node.inputs[0], node.outputs[0]]]
    return all(t.dtype == "i8" and pow2_exp(t) is None for t in ts)


def dims(name: str, n: int, h: int, w: int, c: int) -> str:
    return struct("cmsis_nn_dims", name, {"n": n, "h": h, "w": w, "c": c})


def tile(w: int, h: int) -> str:
    return f"{{.w = {w}, .h = {h}}}"


def context(ctx: LowerCtx, low: Lowered) -> str:
    """A cmsis_nn_context on this node's planned scratch buffer (or none)."""
    buf = ctx.scratch_ptr("")
    if buf != "0":
        low.stmts.append(f"cmsis_nn_context {ctx.name}_ctx = {{{buf}, {ctx.scratch_bytes()}}};")
    else:
        low.stmts.append(f"cmsis_nn_context {ctx.name}_ctx = {{0, 0}};")
    return f"&{ctx.name}_ctx"


def status(fn: str, *args: str) -> str:
    return f"if ({fn}({', '.join(args)}) != ARM_CMSIS_NN_SUCCESS) {{\n        return -1;\n    }}"


def scratch_check(ctx_ref: str, size_fn: str) -> str:
    """Builds with -DTVC_CHECK_SCRATCH compare the planned size with the library's own."""
    return f"TVC_CHECK_SCRATCH({ctx_ref.lstrip('&')}.size, {size_fn});"
