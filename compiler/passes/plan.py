"""plan: a place in one arena for every activation, from liveness over the schedule.

Greedy first-fit, largest tensors first: a tensor may share bytes with any tensor whose life
does not overlap its own (a node's inputs and outputs overlap: kernels are not in place).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph
from compiler.ir.ops.rows import row_sources
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
    # tensor -> (buffer, byte offset in it) for tensors in another's bytes (buffer_views),
    # also bands of the caller's input or output buffers
    views: dict[str, tuple[str, int]] = field(default_factory=dict)
    # buffers whose bytes do not all live alike: (offset, end, first step, last step) pieces
    pieces: dict[str, tuple[tuple[int, int, int, int], ...]] = field(default_factory=dict)

    def pieces_of(self, name: str) -> tuple[tuple[int, int, int, int], ...]:
        """The buffer's pieces: one for most, several for frames consumed and maps assembled
        band by band."""
        f, z = self.lives[name]
        return self.pieces.get(name) or ((0, self.sizes[name], f, z),)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def lifetimes(graph: Graph, views_read: bool = True) -> dict[str, tuple[int, int]]:
    """First and last step (node index) at which each activation holds data. Without
    `views_read`, uses by view ops do not count: they move no data, so they do not keep a
    tensor's bytes alive (the view's own readers do, for the bytes it covers)."""
    skip = (
        set()
        if views_read
        else {k for k, n in enumerate(graph.nodes) if get_op(n.op).memory == "view"}
    )
    life: dict[str, tuple[int, int]] = {i: (-1, -1) for i in graph.inputs}
    for step, n in enumerate(graph.nodes):
        for o in n.outputs:
            life[o] = (step, step)
        if step in skip:
            continue
        for i in n.inputs:
            if i in life:
                life[i] = (life[i][0], step)
    end = len(graph.nodes)
    for o in graph.outputs:
        life[o] = (life[o][0], end)
    return life


def plan_lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """The lives the planner reserves bytes for: `lifetimes` without the uses by view ops."""
    return lifetimes(graph, views_read=False)


def buffer_views(graph: Graph, arena_inputs: bool = False) -> dict[str, tuple[str, int]]:
    """Tensors that live in another tensor's bytes, as (root buffer, byte offset in it):
    - aliasing ops (reshape): the input's bytes, also a graph input in the caller's buffer;
    - view ops (row bands of patch-based stages): where op.views puts them, a band of the
      caller's input or output too;
    - in-place ops, when that input dies here and has the output's size, and ops whose
      overwrite proof holds (a patch-wise RNNPool over the frame it consumes row by row, a
      line buffer's kept rows moved to its front).
    All are op facts (registry.OpDef). A buffer is overwritten in place by one output only, and
    never one that views share or that is the caller's. With `arena_inputs` the graph inputs
    are arena buffers like any other."""
    outputs = set(graph.outputs)
    io = outputs | (set() if arena_inputs else set(graph.inputs)) | row_sources(graph)
    last_use: dict[str, int] = {}
    for k, n in enumerate(graph.nodes):
        for i in n.inputs:
            last_use[i] = k
    link: dict[str, tuple[str, int]] = {}

    def root(t: str) -> tuple[str, int]:
        d = 0
        while t in link:
            t, dd = link[t]
            d += dd
        return t, d

    # the last step any tensor in a buffer is read, per root: when it is past, the buffer's
    # bytes are free to be written over
    last_live: dict[str, int] = {}

    def join(t: str, into: str, delta: int) -> None:
        r = root(into)[0]
        here = last_live.pop(t, last_use.get(t, -1))
        last_live[r] = max(last_live.get(r, last_use.get(r, -1)), here)
        link[t] = (into, delta)

    shared: set[str] = set()  # roots that views point into: never written in place
    taken: set[str] = set()  # a buffer is overwritten in place by one output only
    # where each band will sit in the whole its view op assembles: an output written over
    # another buffer takes that buffer's past along when its band joins a whole, which only the
    # first band (at byte 0, before the whole holds anything) may do; a later band would bring
    # the past of one line buffer onto the bytes of another (a conv_rnnpool band over its frame
    # rows, in a streamed stage)
    band_at = {
        part: delta
        for n in graph.nodes
        if get_op(n.op).memory == "view"
        for part, _, delta in get_op(n.op).views(graph, n)  # type: ignore[misc]
    }
    for k, n in enumerate(graph.nodes):
        d = get_op(n.op)
        if d.memory == "view":
            assert d.views is not None
            for part, whole, delta in d.views(graph, n):
                r, off = root(part)  # a band's buffer (or the one it was written over)
                if r == root(whole)[0] or r in io:
                    raise IRError(f"node {n.label!r}: band {part!r} cannot live in {whole!r}")
                join(r, whole, delta - off)
                shared.add(root(whole)[0])
            continue
        proof = d.overwrite_proof
        x = n.inputs[0] if proof is not None and proof(graph, n) else None
        first_band = band_at.get(n.outputs[0], 0) == 0
        if (
            x is not None
            and x not in io
            and last_use[x] == k
            and n.outputs[0] not in io
            and first_band
        ):
            r, off = root(x)
            # a buffer that bands were viewed in may be written over once every tensor in it
            # is dead: a streamed stage's line buffer, band after band
            free = r not in shared or last_live.get(r, last_use.get(r, -1)) <= k
            if r not in taken and free and r not in io and off == 0:
                taken.add(r)
                join(n.outputs[0], r, 0)
                continue
        y = n.outputs[0]
        if y in io or len(n.outputs) != 1:
            continue
        if d.memory == "alias" and len(n.inputs) == 1 and n.inputs[0] not in outputs:
            join(y, n.inputs[0], 0)
            shared.add(root(y)[0])
            continue
        if d.memory != "in_place":
            continue
        for x in n.inputs:
            t = graph.tensors[x]
            fits = t.shape == graph.tensors[y].shape and t.dtype == graph.tensors[y].dtype
            if x in io or t.is_const or last_use[x] != k or n.inputs.count(x) != 1 or not fits:
                continue
            r, off = root(x)
            if r not in taken and r not in shared and r not in io and off == 0:
                taken.add(r)
                join(y, r, 0)
                break
    return {t: root(t) for t in link}


def aliases(graph: Graph, arena_inputs: bool = False) -> dict[str, str]:
    """Each tensor that lives in another's bytes -> the buffer it lives in (buffer_views)."""
    return {t: r for t, (r, _) in buffer_views(graph, arena_inputs).items()}


Piece = tuple[int, int, int, int]  # byte offset, end offset (in its buffer), first, last step


def _pieces(size: int, segments: list[tuple[int, int, tuple[int, int]]]) -> list[Piece]:
    """A buffer cut where the lives of the tensors in it change: rows of a frame that the
    first bands have consumed die early, bands of a stage output come alive band by band."""
    cuts = sorted({0, size, *(c for lo, hi, _ in segments for c in (lo, hi) if 0 < c < size)})
    out: list[Piece] = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        lives = [life for a, b, life in segments if a < hi and lo < b]
        if not lives:
            lives = [min((life for _, _, life in segments), key=lambda x: x[0])]
        f, z = min(v[0] for v in lives), max(v[1] for v in lives)
        if out and out[-1][2:] == (f, z):
            out[-1] = (out[-1][0], hi, f, z)
        else:
            out.append((lo, hi, f, z))
    return out


def _first_fit(
    names: list[str], pieces: dict[str, list[Piece]], size_of: dict[str, int]
) -> tuple[dict[str, int], int]:
    """Largest first, each at the lowest aligned offset where none of its pieces meets a
    placed piece that is live at the same time."""
    span = {k: (min(p[2] for p in pieces[k]), max(p[3] for p in pieces[k])) for k in names}
    orders = (  # largest first; then longest-lived first, and earliest first, where better
        sorted(names, key=lambda k: (-size_of[k], span[k][0], k)),
        sorted(names, key=lambda k: (span[k][0] - span[k][1], -size_of[k], k)),
        sorted(names, key=lambda k: (span[k][0], -size_of[k], k)),
    )
    best: tuple[dict[str, int], int] | None = None
    for order in orders:
        offsets, size = _place(order, pieces, size_of, span)
        if best is None or size < best[1]:
            best = (offsets, size)
    assert best is not None or not names
    return best if best is not None else ({}, 0)


def _place(
    order: list[str],
    pieces: dict[str, list[Piece]],
    size_of: dict[str, int],
    span: dict[str, tuple[int, int]],
) -> tuple[dict[str, int], int]:
    placed: list[Piece] = []  # offset, end offset, first, last (in the arena)
    offsets: dict[str, int] = {}
    for k in order:
        mine = pieces[k]
        first, last = span[k]
        busy = [p for p in placed if p[2] <= last and first <= p[3]]
        if len(mine) == 1:
            offset = 0
            for o, e, _, _ in sorted(busy):
                if offset + size_of[k] <= o:
                    break
                offset = max(offset, _aligned(e))
        else:
            cands = {0} | {
                _aligned(e - lo)
                for o, e, f, z in busy
                for lo, hi, pf, pz in mine
                if f <= pz and pf <= z and e > lo
            }
            for offset in sorted(cands):
                if not any(
                    o < offset + hi and offset + lo < e
                    for o, e, f, z in busy
                    for lo, hi, pf, pz in mine
                    if f <= pz and pf <= z
                ):
                    break
        offsets[k] = offset
        placed += [(offset + lo, offset + hi, f, z) for lo, hi, f, z in mine]
    return offsets, max((o + size_of[k] for k, o in offsets.items()), default=0)


def io_bytes(graph: Graph, plan: Plan) -> int:
    """The caller's buffers: outputs, and inputs unless they live in the arena or the caller
    hands them over row by row (input_rows: no buffer holds the whole input)."""
    sources = row_sources(graph)
    names = [
        *(i for i in graph.inputs if i not in plan.offsets and i not in sources),
        *graph.outputs,
    ]
    return sum(graph.tensors[t].nbytes for t in names)


def scratch_name(step: int) -> str:
    return f"__scratch_{step}"


@dataclass(frozen=True)
class _Buffers:
    views: dict[str, tuple[str, int]]
    raw: dict[str, tuple[int, int]]
    caller: set[str]
    sources: set[str]  # inputs handed over row by row: no buffer, no I/O bytes
    size_of: dict[str, int]
    pieces: dict[str, list[Piece]]
    live: list[int]  # bytes live at each step -1 .. len(nodes)
    lower: int


def _buffers(graph: Graph, scratch: dict[int, int] | None, arena_inputs: bool) -> _Buffers:
    """Every arena buffer cut into pieces by the lives of the tensors in it, and the lower
    bound: the most bytes live at one step."""
    views = buffer_views(graph, arena_inputs)
    raw = plan_lifetimes(graph)
    sources = row_sources(graph)  # in no buffer at all
    caller = set(graph.outputs) | (set() if arena_inputs else set(graph.inputs)) | sources
    segments: dict[str, list[tuple[int, int, tuple[int, int]]]] = {}
    for t, life in raw.items():
        r, delta = views.get(t, (t, 0))
        if r in caller:
            continue
        segments.setdefault(r, []).append((delta, delta + graph.tensors[t].nbytes, life))
    size_of = {r: _aligned(max(hi for _, hi, _ in segs)) for r, segs in segments.items()}
    pieces = {r: _pieces(size_of[r], segs) for r, segs in segments.items()}
    for step, nbytes in (scratch or {}).items():  # kernel work buffers, live during their node
        s = scratch_name(step)
        size_of[s] = _aligned(nbytes)
        pieces[s] = [(0, size_of[s], step, step)]
    live = [0] * (len(graph.nodes) + 2)
    for ps in pieces.values():
        for lo, hi, f, z in ps:
            for s in range(f + 1, z + 2):
                live[s] += hi - lo
    return _Buffers(views, raw, caller, sources, size_of, pieces, live, max(live, default=0))


def peak_estimate(
    graph: Graph, scratch: dict[int, int] | None = None, arena_inputs: bool = False
) -> tuple[int, list[int]]:
    """Arena lower bound + the caller's buffers, what a plan of the graph needs at least (first
    fit usually reaches it), cheap enough to rank many candidate schedules; and the steps at
    which the live bytes come within 5% of that bound (where a change of schedule can help)."""
    b = _buffers(graph, scratch, arena_inputs)
    io = [*(i for i in graph.inputs if i in b.caller and i not in b.sources), *graph.outputs]
    hot = [
        s - 1 for s, v in enumerate(b.live) if v >= 0.95 * b.lower and 1 <= s <= len(graph.nodes)
    ]
    return b.lower + sum(graph.tensors[t].nbytes for t in io), hot


def plan_arena(
    graph: Graph,
    main_capacity: int | None = None,
    extra: tuple[int, ...] = (),
    scratch: dict[int, int] | None = None,
    arena_inputs: bool = False,
) -> Plan:
    """Graph inputs and outputs live in the caller's buffers (the API's pointers), not here;
    a tensor that lives in another's bytes (buffer_views) makes that buffer live as long as
    either, for the bytes it covers. With `main_capacity` and `extra` region sizes: while the
    main arena is over capacity, the largest buffer live at its peak step moves to the first
    extra region it fits in."""
    b = _buffers(graph, scratch, arena_inputs)
    views, raw, caller, size_of, pieces = b.views, b.raw, b.caller, b.size_of, b.pieces
    life = {k: (min(p[2] for p in ps), max(p[3] for p in ps)) for k, ps in pieces.items()}
    steps = range(-1, len(graph.nodes) + 1)

    def live_bytes(s: int, names: list[str]) -> int:
        return sum(hi - lo for k in names for lo, hi, f, z in pieces[k] if f <= s <= z)

    lower = b.lower
    region = {k: 0 for k in life}
    offsets, size = _first_fit(list(life), pieces, size_of)
    extra_offsets: list[dict[str, int]] = [{} for _ in extra]
    extra_sizes = [0 for _ in extra]
    while main_capacity is not None and size > main_capacity:
        main = [k for k in life if region[k] == 0]
        peak_step = max(steps, key=lambda s: live_bytes(s, main))
        candidates = sorted(
            (k for k in main if life[k][0] <= peak_step <= life[k][1]),
            key=lambda k: (-size_of[k], k),
        )
        moved = False
        for k in candidates:
            for r, cap in enumerate(extra):
                trial = [n for n in life if region[n] == r + 1] + [k]
                offs, sz = _first_fit(trial, pieces, size_of)
                if sz <= cap:
                    region[k] = r + 1
                    extra_offsets[r], extra_sizes[r] = offs, sz
                    moved = True
                    break
            if moved:
                break
        if not moved:
            break
        offsets, size = _first_fit([k for k in life if region[k] == 0], pieces, size_of)
    placed_in: dict[str, int] = {}
    for r, offs in enumerate(extra_offsets):
        for k, o in offs.items():
            offsets[k] = o
            placed_in[k] = r + 1
    for k, (root, delta) in views.items():
        if root in offsets:
            offsets[k] = offsets[root] + delta
            if root in placed_in:
                placed_in[k] = placed_in[root]
    internal = [k for k in raw if k not in caller]
    naive = sum(_aligned(graph.tensors[k].nbytes) for k in internal)
    return Plan(
        dict(sorted(offsets.items())),
        size,
        lower,
        naive,
        {t: r for t, (r, _) in views.items()},
        life,
        dict(sorted(placed_in.items())),
        tuple(extra_sizes),
        dict(sorted(size_of.items())),
        {t: v for t, v in sorted(views.items())},
        {k: tuple(ps) for k, ps in sorted(pieces.items()) if len(ps) > 1},
    )


def verify_plan(graph: Graph, plan: Plan) -> None:
    """After planning: no two buffers that are live at the same step share a byte (tensors in
    another's bytes are checked through that buffer, piece by piece), and every view lies
    inside its buffer."""
    spans = []
    for name in plan.lives:
        off = plan.offsets.get(name)
        if off is None:
            raise IRError(f"plan check failed: buffer {name} has no offset")
        for lo, hi, first, last in plan.pieces_of(name):
            spans.append((plan.placed_in.get(name, 0), off + lo, off + hi, first, last, name))
    spans.sort()
    for i, (r, o, e, f, z, n) in enumerate(spans):
        capacity = plan.size if r == 0 else plan.region_sizes[r - 1]
        if e > capacity:
            raise IRError(f"plan check failed: {n} ends at {e}, past its arena of {capacity} B")
        for r2, o2, e2, f2, z2, n2 in spans[i + 1 :]:
            if r2 != r or o2 >= e:
                break
            if f <= z2 and f2 <= z and n != n2:
                raise IRError(
                    f"plan check failed: {n} [{o}, {e}) and {n2} [{o2}, {e2}) overlap while "
                    f"both are live (steps {max(f, f2)}..{min(z, z2)})"
                )
    for t, (root, delta) in plan.views.items():
        whole = plan.sizes.get(root, graph.tensors[root].nbytes if root in graph.tensors else 0)
        if delta < 0 or delta + graph.tensors[t].nbytes > whole:
            raise IRError(f"plan check failed: {t} at +{delta} lies outside {root}")
    # every tensor's bytes stay reserved for its whole life, by the pieces of its buffer
    for t, (first, last) in plan_lifetimes(graph).items():
        root, delta = plan.views.get(t, (t, 0))
        if root not in plan.lives:
            continue  # the caller's buffers
        lo, hi = delta, delta + graph.tensors[t].nbytes
        for a, b, f, z in plan.pieces_of(root):
            if a < hi and lo < b and not (f <= first and last <= z):
                raise IRError(
                    f"plan check failed: bytes [{a}, {b}) of {root} live steps {f}..{z}, but "
                    f"{t} needs them over steps {first}..{last}"
                )
    check_ownership(graph, plan)


Segment = tuple[str, int, int, int]  # (tensor that wrote the bytes, offset in it, length, offset)


def _slice(segs: list[Segment], lo: int, n: int) -> list[Segment]:
    """Bytes [lo, lo + n) of a tensor made of `segs`, as segments from offset 0."""
    out = []
    for who, at, length, off in segs:
        a, b = max(off, lo), min(off + length, lo + n)
        if a < b:
            out.append((who, at + a - off, b - a, a - lo))
    return out


def check_ownership(graph: Graph, plan: Plan) -> None:
    """Run the schedule over the planned arena with, for every byte, which tensor wrote it
    (and which of its bytes) instead of a value: every byte a node reads must still be the
    one its producer wrote. A view (a band, an assembled map, an aliased reshape) reads the
    bytes of the tensors it is made of. This is what the plan promises the kernels, checked
    on every compile independently of how buffer_views and first fit arrived at it (a band's
    output written over another line buffer's bytes, say)."""
    sizes = [plan.size, *plan.region_sizes]
    who = [np.full(max(s, 1), -1, np.int32) for s in sizes]
    at = [np.zeros(max(s, 1), np.int64) for s in sizes]
    ids: dict[str, int] = {}
    made: dict[str, list[Segment]] = {}  # tensor -> the writes its bytes are

    def place(t: str) -> tuple[int, int] | None:
        off = plan.offsets.get(t)
        return None if off is None else (plan.placed_in.get(t, 0), off)

    def write(t: str, n: int) -> None:
        p = place(t)
        if p is not None:
            r, off = p
            who[r][off : off + n] = ids.setdefault(t, len(ids))
            at[r][off : off + n] = np.arange(n)

    def read(t: str, step: int, label: str) -> None:
        p = place(t)
        if p is None or graph.tensors[t].is_const:
            return
        r, off = p
        for src, a, n, o in made[t]:
            w, x = who[r][off + o : off + o + n], at[r][off + o : off + o + n]
            wrong = (w != ids.get(src, -2)) | (x != np.arange(a, a + n))
            if wrong.any():
                bad = int(np.argmax(wrong))
                names = {v: k for k, v in ids.items()}
                raise IRError(
                    f"plan check failed: step {step} ({label}) reads {t!r}, but byte "
                    f"{o + bad} of it holds {names.get(int(w[bad]), 'nothing')!r}, not "
                    f"{src!r} (the plan lets a write land on bytes still to be read)"
                )

    for i in graph.inputs:
        made[i] = [(i, 0, graph.tensors[i].nbytes, 0)]
        write(i, graph.tensors[i].nbytes)
    for k, n in enumerate(graph.nodes):
        d = get_op(n.op)
        if d.memory == "view":
            assert d.views is not None
            rel = d.views(graph, n)
            for part, whole, delta in rel:
                if whole in made:  # a band of a map that exists: its bytes
                    made[part] = _slice(made[whole], delta, graph.tensors[part].nbytes)
            for whole in {w for _, w, _ in rel if w not in made}:  # a map made of its bands
                made[whole] = [
                    (src, a, ln, o + delta)
                    for part, w, delta in rel
                    if w == whole
                    for src, a, ln, o in made[part]
                ]
            continue
        y = n.outputs[0]
        if d.memory == "alias" and place(y) is not None and place(y) == place(n.inputs[0]):
            made[y] = made[n.inputs[0]]  # a reshape in its input's bytes
            continue
        for i in n.inputs:
            read(i, k, n.label)
        scratch = scratch_name(k)
        if scratch in plan.offsets:
            write(scratch, plan.sizes[scratch])
        for o in n.outputs:
            made[o] = [(o, 0, graph.tensors[o].nbytes, 0)]
            write(o, graph.tensors[o].nbytes)


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
    for name, (root, delta) in sorted(plan.views.items()):
        at = f" from byte {delta}" if delta else ""
        lines.append(f"//   %{name}: the bytes of %{root}{at}")
    return "\n".join(lines) + "\n"
