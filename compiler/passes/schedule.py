"""schedule: an operator order with a low memory peak on branching graphs, and the patch-wise
regions the planner and the code generator share.

Greedy list scheduling: among the nodes whose inputs are ready, run the one that leaves the
fewest bytes live (it frees the most, or allocates the least), ties by the original order.
Chains are unaffected; the new order is kept only if its peak of live bytes is lower.

Patch-wise: a convolution whose only reader is the RNNPool right after it never materializes
its output. `fuse_patchwise` makes the pair one `conv_rnnpool` node (compiler/ir/ops/
conv_rnnpool.py) that runs patch row by patch row: the conv computes just the rows the next
patch row adds into a band of `patch_h` rows, RNNPool reads its patches by stride from that band.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import make_node


@dataclass(frozen=True)
class PatchRegion:
    conv: int  # node index of the producer convolution
    pool: int  # node index of the RNNPool that reads it (conv + 1)
    band_rows: int  # conv output rows held at once


def patch_regions(graph: Graph) -> list[PatchRegion]:
    """Conv → RNNPool pairs that can run patch-wise (quantized NHWC graphs, dense convolutions
    whose only reader is the RNNPool right after them)."""
    consumers = graph.consumers()
    out = []
    for k, n in enumerate(graph.nodes[:-1]):
        nxt = graph.nodes[k + 1]
        y = n.outputs[0]
        t = graph.tensors[y]
        if (
            n.op == "conv2d"
            and n.attrs["groups"] == 1
            and nxt.op == "rnnpool"
            and nxt.inputs[0] == y
            and len(consumers.get(y, [])) == 1
            and y not in graph.outputs
            and t.dtype in ("i8", "i16")
            and n.attrs["layout"] == "NHWC"
        ):
            rows = int(nxt.attrs["patch"][0])  # type: ignore[index]
            if rows < t.shape[1]:
                out.append(PatchRegion(k, k + 1, rows))
    return out


def fuse_patchwise(graph: Graph) -> Graph:
    """Each patch-wise pair becomes one `conv_rnnpool` node; the convolution's output tensor,
    which is never materialized whole, leaves the graph (its quantization goes into the node)."""
    regions = {r.conv: r for r in patch_regions(graph)}
    if not regions:
        return graph
    g = graph.copy()
    nodes: list[Node] = []
    skip: set[int] = set()
    for k, n in enumerate(g.nodes):
        if k in skip:
            continue
        r = regions.get(k)
        if r is None:
            nodes.append(n)
            continue
        pool = g.nodes[r.pool]
        mid = g.tensors[n.outputs[0]]
        q = mid.qparams
        assert q is not None
        attrs: dict[str, object] = {f"conv_{a}": v for a, v in n.attrs.items() if a != "layout"}
        attrs.update({a: v for a, v in pool.attrs.items()})
        attrs.update(band_rows=r.band_rows, mid_dtype=mid.dtype)
        if q.exp is not None:
            attrs["mid_exp"] = q.exp
        else:
            attrs.update(mid_scale=float(q.scale[0]), mid_zp=int(q.zero_point[0]))
        nodes.append(
            make_node(
                "conv_rnnpool",
                [*n.inputs, *pool.inputs[1:]],
                list(pool.outputs),
                f"{n.label}+{pool.label}",
                **attrs,
            )
        )
        skip.add(r.pool)
    g.nodes = nodes
    g.prune_tensors()
    return g


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
