"""patch: the first layers of a CNN run band by band, so no early feature map exists whole.

A stage is a prefix of the schedule whose every op runs by rows (registry.RowRule: windows,
element-wise ops, channel concat) and that leaves one tensor to the rest of the graph. Its
output is cut into `bands` horizontal bands; for each band, the rows every tensor of the stage
must hold are found backwards from the band (a window reads its rows plus the halo above and
below), and the stage's nodes are repeated on just those rows. Halo rows are computed again by
the next band: that is the recompute the search caps (`max_recompute`).

Everything stays in the graph: band tensors are ordinary tensors of fewer rows, a node that
reads only part of a band gets a `row_view` of it, and the stage output is the `row_concat` of
its bands (compiler/ir/ops/rows.py). Neither moves data: the planner puts a band of the input
frame where those rows are, and each band of the output in its final place, so the frame's
consumed rows die and the output's bands come alive one by one (plan.plan_arena's pieces).

Full-width bands are what batch-1 NHWC makes contiguous; they also keep every band's layer one
kernel call on a smaller map, with no new kernel.

A stage may instead be streamed (`stream_stage`): no row is computed twice, and each tensor
inside the stage lives in a line buffer of the rows its consumers read in the current band
(`row_shift` keeps them, moved to the front of the same bytes). A streamed stage may end in a
global average, taken over int32 running sums of the bands (`row_sum`, `pool_finish`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.ops.pool import reduces_rows
from compiler.ir.registry import TType, get_op, get_row_rule, make_node
from compiler.ir.tensor import Tensor
from compiler.passes.plan import lifetimes

Rows = tuple[int, int]


@dataclass(frozen=True)
class Stage:
    """What a patch-based stage is: nodes [start, end) of the schedule run in `bands` bands."""

    start: int
    end: int
    output: str  # the one tensor the stage leaves to the rest of the graph
    bands: int
    macs: int  # the stage's multiply-accumulates layer by layer
    extra_macs: int  # what the bands compute twice (halo rows)
    extra_work: int  # the same in node_work units (element-wise ops' halo rows too)
    mode: str = "tile"  # tile: halos recomputed per band; stream: line buffers, no recompute


def node_macs(graph: Graph, node: Node) -> int:
    d = get_op(node.op)
    if d.macs is None:
        return 0
    ins = [TType(graph.tensors[i].shape, graph.tensors[i].dtype) for i in node.inputs]
    outs = [TType(graph.tensors[o].shape, graph.tensors[o].dtype) for o in node.outputs]
    return int(d.macs(node, ins, outs))


ELEMENT_WORK = 16  # an element of an op without MACs (add, mul, concat) costs ~ this many MACs


def node_work(graph: Graph, node: Node) -> int:
    """What a node costs, in MACs: its MACs, or its output elements for element-wise ops and
    data movement, whose recomputed halo rows cost instructions as well (measured on the M4
    twin: an int8 mul or a channel concat takes several instructions per element)."""
    macs = node_macs(graph, node)
    if macs:
        return macs
    return ELEMENT_WORK * sum(graph.tensors[o].numel for o in node.outputs)


def _rows(graph: Graph, node: Node, a: int, b: int) -> list[Rows | None] | None:
    rule = get_row_rule(node.op)
    return None if rule is None else rule.needs(graph, node, a, b)


def _runs_by_rows(graph: Graph, node: Node) -> bool:
    """The node can run on a band: its row rule applies, its output is a batch-1 integer NHWC
    map, and it reads whole only constants."""
    y = graph.tensors[node.outputs[0]]
    if len(node.outputs) != 1 or y.dtype not in ("i8", "i16") or len(y.shape) != 4:
        return False
    needs = _rows(graph, node, 0, y.shape[1])
    if needs is None:
        return False
    rule = get_row_rule(node.op)
    assert rule is not None
    pairs = zip(node.inputs, needs, strict=True)
    return all(need is not None or graph.tensors[i].is_const or rule.source for i, need in pairs)


def stage_ranges(graph: Graph, after: int = 0) -> list[tuple[int, int]]:
    """The [start, end) ranges of the schedule (from `after` on) that can run band by band:
    every node runs by rows, takes its activations from the stage or from before it (whole
    maps, read by band), and the stage leaves exactly one tensor, its last node's."""
    nodes = graph.nodes
    last_use = {t: last for t, (_, last) in lifetimes(graph).items()}
    ok = [
        k >= after and (_runs_by_rows(graph, n) or reduces_rows(graph, n) is not None)
        for k, n in enumerate(nodes)
    ]
    out = []
    for start in range(after, len(nodes)):
        made: list[str] = []
        for end in range(start + 1, len(nodes) + 1):
            if not ok[end - 1]:
                break
            made.append(nodes[end - 1].outputs[0])
            leaving = [o for o in made if last_use.get(o, -1) >= end]
            last = nodes[end - 1]
            if reduces_rows(graph, last) is not None and (
                end - start < 2 or last.inputs[0] != nodes[end - 2].outputs[0]
            ):
                continue  # an average ends a stage that makes the map it averages
            if leaving == [made[-1]]:
                out.append((start, end))
    return out


def _held(graph: Graph, node: Node, rows: Rows) -> list[Rows | None]:
    """The rows of each input the node reads to compute output `rows`, clipped to the input
    (None for inputs read whole)."""
    raw = _rows(graph, node, *rows)
    assert raw is not None
    held: list[Rows | None] = []
    for i, r in zip(node.inputs, raw, strict=True):
        if r is None:
            held.append(None)
            continue
        c = _clip(r, graph.tensors[i].shape[1])
        if c[0] >= c[1]:
            raise IRError(f"patch stage: {node.label!r} reads no row of {i!r} in a band")
        held.append(c)
    return held


def band_edges(rows: int, bands: int) -> list[int]:
    """Row boundaries of `bands` bands of (nearly) equal height."""
    return [round(k * rows / bands) for k in range(bands + 1)]


def _clip(r: Rows, rows: int) -> Rows:
    return max(r[0], 0), min(r[1], rows)


def _stage_setup(
    graph: Graph, stage: list[Node], bands: int, what: str
) -> tuple[list[int], int, int]:
    """A stage's checks (every op runs by rows, 2 to height bands) and what both ways of
    running it start from: the band edges of its output, its MACs and work layer by layer."""
    out = stage[-1].outputs[0]
    if any(get_row_rule(n.op) is None for n in stage):
        raise IRError(f"{what} stage ending at {out!r}: an op that does not run by rows")
    height = graph.tensors[out].shape[1]
    if not 2 <= bands <= height:
        raise IRError(f"{what} stage ending at {out!r}: {bands} bands of {height} rows")
    macs = sum(node_macs(graph, n) for n in stage)
    work = sum(node_work(graph, n) for n in stage)
    return band_edges(height, bands), macs, work


def _band_node(
    g: Graph,
    graph: Graph,
    n: Node,
    k: int,
    rows: Rows,
    held: list[Rows | None],
    holds: dict[str, tuple[str, Rows]],
    new_nodes: list[Node],
) -> Node:
    """The node that computes output `rows` of `n` in band `k`, appended to `new_nodes` with
    the `row_view`s it reads through: input i's rows `held[i]` come from the tensor
    `holds[i]` names and the rows it holds (a whole map from before the stage otherwise)."""
    ins = []
    for i, h in zip(n.inputs, held, strict=True):
        if h is None:
            ins.append(i)
            continue
        src, base = holds.get(i, (i, (0, g.tensors[i].shape[1])))
        if h == base:
            ins.append(src)
            continue
        if not base[0] <= h[0] < h[1] <= base[1]:
            raise IRError(f"patch stage: {i!r} holds rows {base}, {n.label!r} reads {h}")
        view = g.fresh_name(f"{i}.b{k}.r{h[0]}_{h[1]}")
        lo, hi = h[0] - base[0], h[1] - base[0]
        _add_tensor(g, view, g.tensors[i], (1, hi - lo, *g.tensors[i].shape[2:]))
        new_nodes.append(make_node("row_view", [src], [view], view, lo=lo, hi=hi))
        ins.append(view)
    y = n.outputs[0]
    name = g.fresh_name(f"{y}.b{k}")
    rule = get_row_rule(n.op)
    assert rule is not None
    attrs = rule.band(graph, n, *rows, held) if rule.band is not None else dict(n.attrs)
    bn = make_node(n.op, ins, [name], f"{n.label}.b{k}", **attrs)
    types = [TType(g.tensors[i].shape, g.tensors[i].dtype) for i in ins]
    inferred = get_op(n.op).infer(bn, types, [g.tensors[i].data for i in ins])
    want = (1, rows[1] - rows[0], *graph.tensors[y].shape[2:])
    if inferred is None or inferred[0].shape != want:
        raise IRError(
            f"patch stage: {n.label!r} on rows {rows} gives "
            f"{None if inferred is None else list(inferred[0].shape)}, not {list(want)}"
        )
    _add_tensor(g, name, graph.tensors[y], want)
    new_nodes.append(bn)
    return bn


def tile_stage(graph: Graph, start: int, end: int, bands: int) -> tuple[Graph, Stage]:
    """The graph with nodes [start, end) run in `bands` bands of the stage output's rows (a
    pure Graph -> Graph rewrite; `stage_ranges` says which ranges qualify)."""
    stage = graph.nodes[start:end]
    out = stage[-1].outputs[0]
    edges, macs, work = _stage_setup(graph, stage, bands, "patch")
    for n in stage:
        rule = get_row_rule(n.op)
        if rule is not None and rule.source:
            raise IRError(
                f"patch stage ending at {out!r}: {n.label!r} reads the caller's rows once each, "
                "in order; tiles would read the halo rows again (streamed stages only)"
            )
    g = graph.copy()
    new_nodes: list[Node] = []
    band_macs = band_work = 0
    parts = []
    for k in range(bands):
        need: dict[str, Rows] = {out: (edges[k], edges[k + 1])}
        reads: dict[int, list[Rows | None]] = {}
        for idx in range(len(stage) - 1, -1, -1):  # which rows each tensor holds in this band
            n = stage[idx]
            if n.outputs[0] not in need:
                continue
            held = _held(graph, n, need[n.outputs[0]])
            for i, c in zip(n.inputs, held, strict=True):
                if c is not None:
                    old = need.get(i, c)
                    need[i] = (min(old[0], c[0]), max(old[1], c[1]))
            reads[idx] = held
        band_name: dict[str, tuple[str, Rows]] = {}
        for idx, n in enumerate(stage):
            if idx not in reads:
                continue
            y = n.outputs[0]
            bn = _band_node(g, graph, n, k, need[y], reads[idx], band_name, new_nodes)
            band_name[y] = (bn.outputs[0], need[y])
            band_macs += node_macs(g, bn)
            band_work += node_work(g, bn)
        parts.append(band_name[out][0])
    new_nodes.append(make_node("row_concat", parts, [out], f"{out}.bands"))
    g.nodes = g.nodes[:start] + new_nodes + g.nodes[end:]
    g.prune_tensors()
    return g, Stage(start, end, out, bands, macs, band_macs - macs, band_work - work)


def stream_stage(graph: Graph, start: int, end: int, bands: int) -> tuple[Graph, Stage]:
    """The graph with nodes [start, end) streamed in `bands` bands of the stage output's rows:
    every row of every tensor is computed once. Each tensor inside the stage lives in a line
    buffer holding just the rows its consumers read in the current band: the rows still needed
    are moved to the front (`row_shift`, planned over the same bytes), the band's new rows are
    computed behind them, and the two are the band's window (`row_concat`, no copy). No halo
    is recomputed; the price is the line buffers, alive for the whole stage, and the moves.
    A pure Graph -> Graph rewrite over the ranges `stage_ranges` gives."""
    stage = graph.nodes[start:end]
    final = stage[-1].outputs[0]
    # a stage that ends in a global average streams the map it averages: each band's rows go
    # into running sums (row_sum) and the average is taken once (pool_finish), bit-exact
    kind = reduces_rows(graph, stage[-1]) if len(stage) >= 2 else None
    if kind is not None and stage[-1].inputs[0] == stage[-2].outputs[0]:
        stage = stage[:-1]
    else:
        kind = None
    out = stage[-1].outputs[0]
    edges, macs, work = _stage_setup(graph, stage, bands, "streamed")
    produced = {o for n in stage for o in n.outputs}
    g = graph.copy()
    new_nodes: list[Node] = []
    band_macs = band_work = 0
    window: dict[str, tuple[str, Rows]] = {}  # tensor -> its line buffer now, the rows it holds
    parts = []
    for k in range(bands):
        # backwards: the rows each tensor must hold (its consumers' reads) and compute anew
        compute: dict[str, Rows] = {out: (edges[k], edges[k + 1])}
        hold: dict[str, Rows] = {}
        reads: dict[int, list[Rows | None]] = {}
        for idx in range(len(stage) - 1, -1, -1):
            n = stage[idx]
            y = n.outputs[0]
            if y != out:
                if y not in hold:
                    continue
                done = window[y][1][1] if y in window else hold[y][0]
                if window.get(y, (None, (0, 0)))[1][0] > hold[y][0]:
                    raise IRError(f"streamed stage: rows of {y!r} needed again after their band")
                hold[y] = (hold[y][0], max(hold[y][1], done))  # kept rows stay in the window
                compute[y] = (max(hold[y][0], done), hold[y][1])
                if compute[y][0] >= compute[y][1]:
                    continue  # nothing new: the band reads rows the line buffer kept
            held = _held(graph, n, compute[y])
            for i, c in zip(n.inputs, held, strict=True):
                if c is not None and i in produced:
                    old = hold.get(i, c)
                    hold[i] = (min(old[0], c[0]), max(old[1], c[1]))
            reads[idx] = held
        # forwards: first every line buffer keeps the rows this band reads again, moved to its
        # front, so that no new row (nor a tensor written in place on its way there) lands on
        # bytes the previous band's window still holds; then the nodes compute the new rows
        kept_rows: dict[str, str] = {}
        for n in stage:
            y = n.outputs[0]
            if y == out or y not in hold or y not in window:
                continue
            prev, rows = window[y]
            if hold[y][0] >= rows[1]:
                continue  # nothing read again
            if hold[y][0] == rows[0]:
                kept_rows[y] = prev
                continue
            kept = g.fresh_name(f"{y}.s{k}")
            lo, hi = hold[y][0] - rows[0], rows[1] - rows[0]
            _add_tensor(g, kept, g.tensors[y], (1, hi - lo, *g.tensors[y].shape[2:]))
            new_nodes.append(make_node("row_shift", [prev], [kept], kept, lo=lo, hi=hi))
            band_work += g.tensors[kept].nbytes // SHIFT_BYTES_PER_MAC
            kept_rows[y] = kept
        for idx, n in enumerate(stage):
            y = n.outputs[0]
            if y != out and y not in hold:
                continue
            pieces = [kept_rows[y]] if y in kept_rows else []
            if idx in reads:
                bn = _band_node(g, graph, n, k, compute[y], reads[idx], window, new_nodes)
                name = bn.outputs[0]
                band_macs += node_macs(g, bn)
                band_work += node_work(g, bn)
                pieces.append(name)
            if y == out:
                if kind is None:
                    parts.append(pieces[-1])
                    continue
                acc = g.fresh_name(f"{final}.sum{k}")
                g.tensors[acc] = g.tensors[out].copy(
                    name=acc, shape=(1, 1, 1, g.tensors[out].shape[3]), dtype="i32", data=None
                )
                new_nodes.append(make_node("row_sum", [*parts, pieces[-1]], [acc], acc))
                parts = [acc]
                continue
            if len(pieces) == 1:
                whole = pieces[0]
            else:
                whole = g.fresh_name(f"{y}.w{k}")
                _add_tensor(
                    g, whole, g.tensors[y], (1, hold[y][1] - hold[y][0], *g.tensors[y].shape[2:])
                )
                new_nodes.append(make_node("row_concat", pieces, [whole], whole))
            window[y] = (whole, hold[y])
    if kind is None:
        new_nodes.append(make_node("row_concat", parts, [out], f"{out}.bands"))
    else:
        t = graph.tensors[out]
        count = t.shape[1] * t.shape[2]
        new_nodes.append(
            make_node(
                "pool_finish",
                parts,
                [final],
                graph.nodes[end - 1].label,
                kind=kind,
                count=count,
                dtype=t.dtype,
            )
        )
    g.nodes = g.nodes[:start] + new_nodes + g.nodes[end:]
    g.prune_tensors()
    return g, Stage(start, end, final, bands, macs, band_macs - macs, band_work - work, "stream")


def stage_height(graph: Graph, end: int) -> int:
    """The rows a stage ending before node `end` is cut into: its output's, or for a stage that
    ends in a global average, the averaged map's."""
    n = graph.nodes[end - 1]
    if reduces_rows(graph, n) is not None:
        return graph.tensors[n.inputs[0]].shape[1]
    return graph.tensors[n.outputs[0]].shape[1]


SHIFT_BYTES_PER_MAC = 4  # a line buffer's move: word copies, about one instruction per 4 bytes


def _add_tensor(g: Graph, name: str, like: Tensor, shape: tuple[int, ...]) -> None:
    g.tensors[name] = like.copy(name=name, shape=tuple(shape), data=None)


MAX_STAGES = 4


def _greedy(
    graph: Graph,
    max_recompute: float,
    estimate: Callable[[Graph], tuple[int, list[int]]],
    exact: Callable[[Graph], int],
    max_bands: int,
    finalists: int,
    modes: tuple[str, ...],
    per_mode: bool,
) -> tuple[Graph, list[Stage]]:
    """One greedy pass of `search`: stages of `modes`, one at a time; with `per_mode`, the
    best candidates of each mode reach the planner, else the best overall."""
    total = max(sum(node_work(graph, n) for n in graph.nodes), 1)
    budget = max_recompute * total
    spent = 0
    stages: list[Stage] = []
    hot = estimate(graph)[1]
    # a stage that removes one of several steps at the peak is progress: the next removes
    # the others (a 64x64 stem and a residual block later)
    current = (exact(graph), len(hot))
    for _ in range(MAX_STAGES):
        ends = ("row_concat", "pool_finish")  # a stage's last node: later stages start after it
        after = max((k + 1 for k, n in enumerate(graph.nodes) if n.op in ends), default=0)
        found: list[tuple[tuple[int, int, int, int], Graph, Stage]] = []
        for start, end in stage_ranges(graph, after):
            if not any(start <= h < end for h in hot):
                continue
            height = stage_height(graph, end)
            for make in [MAKERS[m] for m in modes]:
                worse, last = 0, None
                # halos grow with the band count, line buffers shrink: tiles from few bands
                # up, streams from one row per band down, each until the peak stops falling
                counts = band_counts(height, max_bands)
                for bands in counts if make is tile_stage else counts[::-1]:
                    try:
                        tiled, stage = make(graph, start, end, bands)
                    except IRError:
                        continue
                    if spent + stage.extra_work > budget:
                        if make is tile_stage:
                            break  # more bands only recompute more
                        continue
                    c, h = estimate(tiled)
                    found.append(((c, len(h), stage.extra_macs, len(found)), tiled, stage))
                    worse = worse + 1 if last is not None and (c, len(h)) >= last else 0
                    if worse >= 2:
                        break
                    last = (c, len(h))
        found.sort(key=lambda f: f[0])
        # the lower bound flatters line buffers (first fit packs them less tightly than
        # bands): with per_mode, the best of each mode are planned for real
        short = (
            [f for m in modes for f in [f for f in found if f[2].mode == m][:finalists]]
            if per_mode
            else found[:finalists]
        )
        best = min(
            (((exact(t), key[1]), s.extra_macs, key[3], t, s) for key, t, s in short),
            default=None,
            key=lambda b: b[:3],
        )
        if best is None or best[0] >= current:
            break
        current, _, _, graph, stage = best
        spent += stage.extra_work
        stages.append(stage)
        hot = estimate(graph)[1]
    return graph, stages


def search(
    graph: Graph,
    max_recompute: float,
    estimate: Callable[[Graph], tuple[int, list[int]]],
    exact: Callable[[Graph], int],
    max_bands: int = 64,
    finalists: int = 4,
) -> tuple[Graph, list[Stage]]:
    """Stages, one at a time, each where it lowers the peak (arena + I/O) most, within
    `max_recompute` of the graph's work for all stages together (0.2: 20% more; node_work:
    MACs, and element-wise ops' elements, whose halo rows are recomputed too; a line buffer's
    moves).

    `estimate(graph)` is the cheap peak (the planner's lower bound) and the steps at which it
    is reached: only a stage over such a step can lower it. Every stage range, mode (tiles or
    streams) and band count is estimated; the `finalists` best are planned for real (`exact`),
    and the best of those is kept if it lowers the peak, or keeps it and leaves fewer steps at
    it. One stage at a time is greedy, and which candidates reach the planner steers it, so it
    runs three ways and keeps the lowest peak (then the fewest extra MACs): the best overall
    planned, the best of each mode planned (the lower bound flatters line buffers), and tiles
    alone. Layer by layer when nothing helps (the caller also keeps layer by layer when the
    stages did not pay)."""
    runs = [
        _greedy(graph, max_recompute, estimate, exact, max_bands, finalists, modes, per_mode)
        for modes, per_mode in ((("tile", "stream"), False), (("tile", "stream"), True))
    ]
    if any(s.mode == "stream" for _, stages in runs for s in stages):
        runs.append(
            _greedy(graph, max_recompute, estimate, exact, max_bands, finalists, ("tile",), False)
        )
    return min(runs, key=lambda r: (exact(r[0]), sum(s.extra_macs for s in r[1])))


MAKERS = {"tile": tile_stage, "stream": stream_stage}


def band_counts(height: int, max_bands: int = 64) -> list[int]:
    """2, 3, 4, ... up to the output's rows: a geometric ladder past 8, so that tall maps do
    not try every count."""
    counts = sorted({int(c) for c in np.unique(np.geomspace(2, max(height, 2), 24).round())})
    return [c for c in counts if 2 <= c <= min(height, max_bands)]
