"""plan: a place in one arena for every activation, from liveness over the schedule.

Greedy first-fit, largest tensors first: a tensor may share bytes with any tensor whose life
does not overlap its own (a node's inputs and outputs overlap: kernels are not in place).
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.graph import Graph

ALIGN = 16


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    size: int
    lower_bound: int  # max over steps of the bytes that must be live
    naive: int  # every activation in its own buffer

    def __post_init__(self) -> None:
        assert self.size >= self.lower_bound


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """First and last step (node index) at which each activation holds data."""
    life: dict[str, tuple[int, int]] = {i: (-1, -1) for i in graph.inputs}
    for step, n in enumerate(graph.nodes):
        for o in n.outputs:
            life[o] = (step, step)
        for i in n.inputs:
            if i in life:
                life[i] = (life[i][0], step)
    end = len(graph.nodes)
    for o in graph.outputs:
        life[o] = (life[o][0], end)
    return life


def plan_arena(graph: Graph) -> Plan:
    """Graph inputs and outputs live in the caller's buffers (the API's pointers), not here."""
    life = {
        k: v
        for k, v in lifetimes(graph).items()
        if k not in graph.inputs and k not in graph.outputs
    }
    size_of = {k: _aligned(graph.tensors[k].nbytes) for k in life}
    order = sorted(life, key=lambda k: (-size_of[k], life[k][0], k))
    placed: list[tuple[int, int, int, int]] = []  # offset, end offset, first, last
    offsets: dict[str, int] = {}
    for k in order:
        first, last = life[k]
        busy = sorted((o, e) for o, e, f, z in placed if f <= last and first <= z)
        offset = 0
        for o, e in busy:
            if offset + size_of[k] <= o:
                break
            offset = max(offset, e)
        offsets[k] = offset
        placed.append((offset, offset + size_of[k], first, last))
    steps = range(-1, len(graph.nodes) + 1)
    lower = max(
        (sum(size_of[k] for k, (f, z) in life.items() if f <= s <= z) for s in steps), default=0
    )
    size = max((o + size_of[k] for k, o in offsets.items()), default=0)
    return Plan(dict(sorted(offsets.items())), size, lower, sum(size_of.values()))
