"""The vocabulary op modules lower themselves in: what a lowering rule returns (declarations,
statements, flash tables) and the context it asks for pointers and kernel calls.

Each op module registers its rules per backend with `registry.lowering(op, backend, applies=,
scratch=)`. A backend tries its own rules first, then those of the backends it builds on
(cmsis-nn falls through to portable): a rule whose `applies` is false (int16, SeeDot, a shape the
library lacks) passes the node on. The planner asks the same chosen rule for its work buffer,
so the scratch the plan reserves and the code that uses it come from one place. The codegen
package implements the context; the ops never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from compiler.errors import TvcError
from compiler.ir.graph import Graph, Node

C_TYPES = {"i8": "int8_t", "u8": "uint8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t"}
SUFFIX = {"i8": "s8", "i16": "s16"}  # kernel name suffix by element type
BYTES = {"i8": "b1", "i16": "b2"}  # data movement kernels by element size

# Backends, and the backends each falls back to, in order.
BACKENDS: dict[str, tuple[str, ...]] = {
    "portable": ("portable",),
    "cmsis-nn": ("cmsis-nn", "portable"),
}


class CodegenError(TvcError):
    exit_code = 3


@dataclass
class Const:
    """An array that goes to flash."""

    symbol: str
    ctype: str
    values: np.ndarray


@dataclass
class Lowered:
    decls: list[str] = field(default_factory=list)  # static const parameter structs / tables
    stmts: list[str] = field(default_factory=list)  # statements of the run function
    consts: list[Const] = field(default_factory=list)  # extra flash arrays (tables, multipliers)

    def table(self, name: str, ctype: str, values: np.ndarray | list[int]) -> str:
        """A flash array of kernel parameters; returns its symbol."""
        self.consts.append(Const(name, ctype, np.asarray(values)))
        return name


class LowerCtx(Protocol):
    """What a rule may ask of the backend while lowering one node."""

    graph: Graph
    index: int  # the node's step in the schedule
    name: str  # a C identifier unique to this node (prefix + step)
    optimize: str  # "speed" (per-layer specialized kernels where they pay) or "size"

    def ptr(self, tensor: str, const: bool = True) -> str:
        """A C expression for where the tensor's data lives (arena, flash or caller)."""
        ...

    def scratch_ptr(self, ctype: str) -> str:
        """The node's planned work buffer, or 0 when it has none."""
        ...

    def scratch_bytes(self) -> int: ...

    def call(self, kernel: str, *args: str) -> str:
        """A portable kernel call (its compiler/runtime sources come from the op's facts)."""
        ...

    def uses_kernels(self) -> None:
        """The emitted code calls the op's shared kernels without going through call()."""
        ...

    def replace(self, const: str) -> None:
        """The kernel reads this constant from a table of its own in another layout."""
        ...

    def feature(self, macro: str) -> None:
        """Switch on an optional kernel path in tvc_prefix.h."""
        ...

    def is_aliased(self, tensor: str) -> bool:
        """The planner gave the tensor its producer's input bytes (no copy needed)."""
        ...

    def reader(self, tensor: str) -> str:
        """The C expression of the row reader (`<name>_rows *`) the caller passes for a graph
        input it hands over row by row (input_rows)."""
        ...


def ints(values: np.ndarray | list[int]) -> str:
    return ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))


def struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    body = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{body}}};"


def struct_call(
    ctx: LowerCtx, low: Lowered, node: Node, ctype: str, fields: dict[str, object], kernel: str
) -> Lowered:
    """The usual shape of a lowering: one parameter struct named for the node, one kernel call
    on (&params, input, output)."""
    low.decls.append(struct(ctype, ctx.name, fields))
    low.stmts.append(
        ctx.call(kernel, f"&{ctx.name}", ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0], False))
    )
    return low


def dims4(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > 4:
        raise CodegenError(f"tensors of rank {len(shape)} have no C kernel (at most 4)")
    return [1] * (4 - len(shape)) + list(shape)


def strides(shape: list[int]) -> list[int]:
    out = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        out[k] = out[k + 1] * shape[k + 1]
    return out
