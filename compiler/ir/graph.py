"""Node and Graph. A graph keeps nodes in a valid topological order and tensors by name."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from compiler.ir.tensor import Tensor


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, object] = field(default_factory=dict)
    name: str = ""

    def copy(self) -> Node:
        return Node(self.op, list(self.inputs), list(self.outputs), dict(self.attrs), self.name)

    @property
    def label(self) -> str:
        """How errors name this node: the exporter's node name, else its first output."""
        return self.name or (self.outputs[0] if self.outputs else "?")


@dataclass
class Graph:
    name: str
    inputs: list[str]
    outputs: list[str]
    tensors: dict[str, Tensor]
    nodes: list[Node]
    meta: dict[str, object] = field(default_factory=dict)

    def copy(self) -> Graph:
        """Copy for a pure pass: new nodes and tensor records; constant arrays are shared."""
        return Graph(
            self.name,
            list(self.inputs),
            list(self.outputs),
            {k: t.copy() for k, t in self.tensors.items()},
            [n.copy() for n in self.nodes],
            dict(self.meta),
        )

    # --- queries -------------------------------------------------------------------------------
    def t(self, name: str) -> Tensor:
        return self.tensors[name]

    def is_const(self, name: str) -> bool:
        return self.tensors[name].data is not None

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        uses: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                uses.setdefault(i, []).append(n)
        return uses

    def constants(self) -> list[str]:
        """Constant tensor names in order of first use (stable for printing)."""
        seen: dict[str, None] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i in self.tensors and self.tensors[i].data is not None:
                    seen.setdefault(i, None)
        for o in self.outputs:
            if self.tensors[o].data is not None:
                seen.setdefault(o, None)
        return list(seen)

    def ops(self) -> list[str]:
        return [n.op for n in self.nodes]

    # --- edits (used by passes on their own copy) ---------------------------------------------
    def replace_input(self, old: str, new: str, nodes: Iterable[Node] | None = None) -> None:
        for n in self.nodes if nodes is None else nodes:
            n.inputs = [new if i == old else i for i in n.inputs]

    def rename(self, old: str, new: str) -> None:
        """Rename a tensor everywhere (definition, uses, graph I/O)."""
        t = self.tensors.pop(old)
        t.name = new
        self.tensors[new] = t
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
            n.outputs = [new if o == old else o for o in n.outputs]
        self.inputs = [new if i == old else i for i in self.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def fresh_name(self, base: str) -> str:
        if base not in self.tensors:
            return base
        k = 1
        while f"{base}_{k}" in self.tensors:
            k += 1
        return f"{base}_{k}"

    def add_const(self, base: str, tensor: Tensor) -> str:
        name = self.fresh_name(base)
        tensor.name = name
        self.tensors[name] = tensor
        return name

    def prune_tensors(self) -> None:
        """Drop tensor records nothing refers to any more."""
        used = set(self.inputs) | set(self.outputs)
        for n in self.nodes:
            used.update(n.inputs)
            used.update(n.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def same_as(self, other: Graph) -> bool:
        """Structural equality, constant contents included; tensor dict order does not matter."""
        if (self.name, self.inputs, self.outputs, self.meta) != (
            other.name,
            other.inputs,
            other.outputs,
            other.meta,
        ):
            return False
        if self.nodes != other.nodes or self.tensors.keys() != other.tensors.keys():
            return False
        return all(t.same_as(other.tensors[k]) for k, t in self.tensors.items())
