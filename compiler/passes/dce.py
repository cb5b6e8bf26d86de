"""Dead-code elimination: drop nodes whose outputs nothing reads, then unused tensors."""

from __future__ import annotations

from compiler.ir.graph import Graph


def dce(graph: Graph) -> Graph:
    g = graph.copy()
    live = set(g.outputs)
    kept = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs):
            kept.append(n)
            live.update(n.inputs)
    g.nodes = kept[::-1]
    g.prune_tensors()
    return g
