"""schedule: an operator order with a low memory peak on branching graphs.

Greedy list scheduling: among the nodes whose inputs are ready, run the one that leaves the
fewest bytes live (it frees the most, or allocates the least), ties by the original order.
Chains are unaffected; the new order is kept only if its peak of live bytes is lower.
"""

from __future__ import annotations

from compiler.ir.graph import Graph, Node


def _peak(graph: Graph, order: list[Node]) -> int:
    last_use: dict[str, int] = {}
    for k, n in enumerate(order):
        for i in n.inputs:
            last_use[i] = k
    for o in graph.outputs:
        last_use[o] = len(order)
    live = {i: graph.tensors[i].nbytes for i in graph.inputs}
    peak = sum(live.values())
    for k, n in enumerate(order):
        for o in n.outputs:
            live[o] = graph.tensors[o].nbytes
        peak = max(peak, sum(live.values()))
        for t in list(live):
            if last_use.get(t, -1) <= k and t not in graph.outputs:
                del live[t]
    return peak


def schedule(graph: Graph) -> Graph:
    g = graph.copy()
    consumers = g.consumers()
    remaining_uses = {t: len(c) for t, c in consumers.items()}
    ready_tensors = set(g.inputs) | {t for t, v in g.tensors.items() if v.is_const}
    pending = list(g.nodes)
    index = {id(n): k for k, n in enumerate(g.nodes)}
    order: list[Node] = []
    while pending:
        ready = [n for n in pending if all(i in ready_tensors for i in n.inputs)]

        def delta(n: Node) -> tuple[int, int]:
            alloc = sum(g.tensors[o].nbytes for o in n.outputs)
            freed = sum(
                g.tensors[i].nbytes
                for i in set(n.inputs)
                if not g.tensors[i].is_const
                and i not in g.outputs
                and remaining_uses.get(i, 0) == n.inputs.count(i)
            )
            return alloc - freed, index[id(n)]

        best = min(ready, key=delta)
        pending.remove(best)
        order.append(best)
        ready_tensors.update(best.outputs)
        for i in best.inputs:
            remaining_uses[i] = remaining_uses.get(i, 0) - 1
    if _peak(g, order) < _peak(g, g.nodes):
        g.nodes = order
    return g
