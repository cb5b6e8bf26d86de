"""plan: a place in one arena for every activation, from liveness over the schedule.

Greedy first-fit, largest tensors first: a tensor may share bytes with any tensor whose life
does not overlap its own (a node's inputs and outputs overlap: kernels are not in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.errors import IRError
from compiler.ir.graph import Graph
from compiler.ir.registry import get_op

ALIGN = 16


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    size: int
    lower_bound: int  # max over steps of the bytes that must be live
    naive: int  # every activation in its own buffer
    aliases: dict[str, str] = field(default_factory=dict)  # tensor -> the tensor whose bytes it is
    lives: dict[str, tuple[int, int]] = field(default_factory=dict)  # buffer -> first, last step
    # buffers moved out of the main arena: tensor -> (region index >= 1, offset in its arena)
    placed_in: dict[str, int] = field(default_factory=dict)
    region_sizes: tuple[int, ...] = ()  # arena size of each extra region
    sizes: dict[str, int] = field(default_factory=dict)  # buffer -> bytes reserved (aligned)


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


def aliases(graph: Graph, arena_inputs: bool = False) -> dict[str, str]:
    """Outputs that live in an input's bytes (not across the caller's buffers): aliasing ops
    always (same bytes), in-place ops when that input dies here and has the output's size, and
    ops whose overwrite proof holds (a patch-wise RNNPool over the frame it consumes row by
    row). All three are op facts (registry.OpDef). With `arena_inputs` the graph inputs are
    arena buffers like any other."""
    io = set(graph.outputs) | (set() if arena_inputs else set(graph.inputs))
    last_use: dict[str, int] = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            last_use[i] = k
    out: dict[str, str] = {}
    taken: set[str] = set()  # a buffer is overwritten in place by one output only
    for k, n in enumerate(graph.nodes):
        proof = get_op(n.op).overwrite_proof
        x = n.inputs[0] if proof is not None and proof(graph, n) else None
        if x is not None and x not in io and last_use[x] == k and n.outputs[0] not in io:
            root = out.get(x, x)
            if root not in taken:
                taken.add(root)
                out[n.outputs[0]] = root
                continue
        y = n.outputs[0]
        if y in io or len(n.outputs) != 1:
            continue
        memory = get_op(n.op).memory  # "alias": same bytes, other shape; "in_place": see OpDef
        if memory == "alias" and len(n.inputs) == 1 and n.inputs[0] not in io:
            out[y] = out.get(n.inputs[0], n.inputs[0])
            continue
        if memory != "in_place":
            continue
        for x in n.inputs:
            t = graph.tensors[x]
            fits = t.shape == graph.tensors[y].shape and t.dtype == graph.tensors[y].dtype
            if x in io or t.is_const or last_use[x] != k or n.inputs.count(x) != 1 or not fits:
                continue
            root = out.get(x, x)
            if root not in taken:
                taken.add(root)
                out[y] = root
                break
    return out


def _first_fit(
    names: list[str], life: dict[str, tuple[int, int]], size_of: dict[str, int]
) -> tuple[dict[str, int], int]:
    order = sorted(names, key=lambda k: (-size_of[k], life[k][0], k))
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
    return offsets, max((o + size_of[k] for k, o in offsets.items()), default=0)


def io_bytes(graph: Graph, plan: Plan) -> int:
    """The caller's buffers: outputs, and inputs unless they live in the arena."""
    names = [*(i for i in graph.inputs if i not in plan.offsets), *graph.outputs]
    return sum(graph.tensors[t].nbytes for t in names)


def scratch_name(step: int) -> str:
    return f"__scratch_{step}"


def plan_arena(
    graph: Graph,
    main_capacity: int | None = None,
    extra: tuple[int, ...] = (),
    scratch: dict[int, int] | None = None,
    arena_inputs: bool = False,
) -> Plan:
    """Graph inputs and outputs live in the caller's buffers (the API's pointers), not here;
    an aliased output shares its input's bytes, so that buffer lives as long as either.
    With `main_capacity` and `extra` region sizes: while the main arena is over capacity, the
    largest buffer live at its peak step moves to the first extra region it fits in."""
    alias = aliases(graph, arena_inputs)
    raw = lifetimes(graph)
    internal = [
        k for k in raw if (arena_inputs or k not in graph.inputs) and k not in graph.outputs
    ]
    life: dict[str, tuple[int, int]] = {}
    for k in internal:
        f, z = raw[k]
        root = alias.get(k, k)
        f0, z0 = life.get(root, (f, z))
        life[root] = (min(f0, f), max(z0, z))
    size_of = {k: _aligned(graph.tensors[k].nbytes) for k in life}
    for k, root in alias.items():  # an overwrite in place may be smaller than its buffer
        size_of[root] = max(size_of[root], _aligned(graph.tensors[k].nbytes))
    for step, nbytes in (scratch or {}).items():  # kernel work buffers, live during their node
        life[scratch_name(step)] = (step, step)
        size_of[scratch_name(step)] = _aligned(nbytes)
    steps = range(-1, len(graph.nodes) + 1)
    lower = max(
        (sum(size_of[k] for k, (f, z) in life.items() if f <= s <= z) for s in steps), default=0
    )
    region = {k: 0 for k in life}
    offsets, size = _first_fit(list(life), life, size_of)
    extra_offsets: list[dict[str, int]] = [{} for _ in extra]
    extra_sizes = [0 for _ in extra]
    while main_capacity is not None and size > main_capacity:
        main = [k for k in life if region[k] == 0]
        peak_step = max(
            steps, key=lambda s: sum(size_of[k] for k in main if life[k][0] <= s <= life[k][1])
        )
        candidates = sorted(
            (k for k in main if life[k][0] <= peak_step <= life[k][1]),
            key=lambda k: (-size_of[k], k),
        )
        moved = False
        for k in candidates:
            for r, cap in enumerate(extra):
                trial = [n for n in life if region[n] == r + 1] + [k]
                offs, sz = _first_fit(trial, life, size_of)
                if sz <= cap:
                    region[k] = r + 1
                    extra_offsets[r], extra_sizes[r] = offs, sz
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
        offsets, size = _first_fit([k for k in life if region[k] == 0], life, size_of)
    placed_in: dict[str, int] = {}
    for r, offs in enumerate(extra_offsets):
        for k, o in offs.items():
            offsets[k] = o
            placed_in[k] = r + 1
    for k, root in alias.items():
        offsets[k] = offsets[root]
        if root in placed_in:
            placed_in[k] = placed_in[root]
    naive = sum(_aligned(graph.tensors[k].nbytes) for k in internal)
    return Plan(
        dict(sorted(offsets.items())),
        size,
        lower,
        naive,
        alias,
        life,
        dict(sorted(placed_in.items())),
        tuple(extra_sizes),
        dict(sorted(size_of.items())),
    )


def verify_plan(graph: Graph, plan: Plan) -> None:
    """After planning: no two buffers that are live at the same step share a byte (aliases
    share their root's buffer by design and are checked through it)."""
    spans = []
    for name, (first, last) in plan.lives.items():
        off = plan.offsets.get(name)
        if off is None:
            raise IRError(f"plan check failed: buffer {name} has no offset")
        size = plan.sizes.get(name, 0)
        spans.append((plan.placed_in.get(name, 0), off, off + size, first, last, name))
    spans.sort()
    for i, (r, o, e, f, z, n) in enumerate(spans):
        capacity = plan.size if r == 0 else plan.region_sizes[r - 1]
        if e > capacity:
            raise IRError(f"plan check failed: {n} ends at {e}, past its arena of {capacity} B")
        for r2, o2, e2, f2, z2, n2 in spans[i + 1 :]:
            if r2 != r or o2 >= e:
                break
            if f <= z2 and f2 <= z:
                raise IRError(
                    f"plan check failed: {n} [{o}, {e}) and {n2} [{o2}, {e2}) overlap while "
                    f"both are live (steps {max(f, f2)}..{min(z, z2)})"
                )


def plan_text(graph: Graph, plan: Plan) -> str:
    """The plan as IR-text comments (the parser skips them): every buffer's place and life."""
    lines = [
        f"// plan: arena {plan.size} B, lower bound {plan.lower_bound} B, naive {plan.naive} B"
    ]
    for name, (first, last) in sorted(plan.lives.items(), key=lambda kv: (kv[1], kv[0])):
        region = plan.placed_in.get(name, 0)
        where = f"region {region} " if region else ""
        lines.append(
            f"//   %{name}: {where}[{plan.offsets[name]}, {plan.offsets[name] + plan.sizes[name]})"
            f" live steps {first}..{last}"
        )
    for name, root in sorted(plan.aliases.items()):
        lines.append(f"//   %{name}: the bytes of %{root}")
    return "\n".join(lines) + "\n"
