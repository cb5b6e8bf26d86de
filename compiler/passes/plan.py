"""plan: a place in one arena for every activation, from liveness over the schedule.

Greedy first-fit, largest tensors first: a tensor may share bytes with any tensor whose life
does not overlap its own (a node's inputs and outputs overlap: kernels are not in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.ir.graph import Graph

ALIGN = 16


ALIASING = ("reshape", "identity")  # same bytes, other shape: no copy, no buffer of its own


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    size: int
    lower_bound: int  # max over steps of the bytes that must be live
    naive: int  # every activation in its own buffer
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> the tensor whose bytes it is
    lives: dict[str, tuple[int, int]] = field(default_factory=dict)  # buffer -> first, last step

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


def aliases(graph: Graph) -> dict[str, str]:
    """Reshape outputs that can simply be their input's bytes (not across the caller's buffers)."""
    io = set(graph.inputs) | set(graph.outputs)
    out: dict[str, str] = {}
    for n in graph.nodes:
        if (
            n.op in ALIASING
            and len(n.inputs) == 1
            and n.inputs[0] not in io
            and n.outputs[0] not in io
        ):
            out[n.outputs[0]] = out.get(n.inputs[0], n.inputs[0])
    return out


def plan_arena(graph: Graph) -> Plan:
    """Graph inputs and outputs live in the caller's buffers (the API's pointers), not here;
    a reshape's output shares its input's bytes, so that buffer lives as long as either."""
    alias = aliases(graph)
    raw = lifetimes(graph)
    internal = [k for k in raw if k not in graph.inputs and k not in graph.outputs]
    life: dict[str, tuple[int, int]] = {}
    for k in internal:
        f, z = raw[k]
        root = alias.get(k, k)
        f0, z0 = life.get(root, (f, z))
        life[root] = (min(f0, f), max(z0, z))
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
    for k, root in alias.items():
        offsets[k] = offsets[root]
    naive = sum(_aligned(graph.tensors[k].nbytes) for k in internal)
    return Plan(dict(sorted(offsets.items())), size, lower, naive, alias, life)
