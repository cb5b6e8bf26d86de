"""Edits passes share: dropping a node whose output is just another tensor, fresh constants."""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.tensor import const_tensor


def bypass(graph: Graph, node: Node, src: str | None = None) -> bool:
    """Remove `node`, whose single output equals `src` (default: its first input).

    A graph output keeps its name: the producer of `src` is renamed instead. Returns False
    (and leaves the node) when that cannot be done because `src` is itself graph I/O or constant.
    """
    out = node.outputs[0]
    src = node.inputs[0] if src is None else src
    if out in graph.outputs:
        if src in graph.inputs or src in graph.outputs or graph.tensors[src].is_const:
            return False
        graph.nodes.remove(node)
        del graph.tensors[out]
        graph.rename(src, out)
        return True
    graph.nodes.remove(node)
    graph.replace_input(out, src)
    return True


def replace_chain(graph: Graph, chain: list[Node], node: Node) -> None:
    """Put `node` where the first of `chain` stood and drop the chain (a folded pattern)."""
    at = min(graph.nodes.index(n) for n in chain)
    for n in chain:
        graph.nodes.remove(n)
    graph.nodes.insert(at, node)


def new_const(graph: Graph, base: str, data: np.ndarray) -> str:
    """Add a constant under a fresh name (never overwrite one that others may share)."""
    return graph.add_const(base, const_tensor(base, data))
