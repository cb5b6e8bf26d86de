"""schedule: an operator order with a low memory peak on branching graphs, and the patch-wise
regions the planner and the code generator share.

Greedy list scheduling: among the nodes whose inputs are ready, run the one that leaves the
fewest bytes live (it frees the most, or allocates the least), ties by the original order.
Chains are unaffected; the new order is kept only if its peak of live bytes is lower.

Patch-wise: a convolution whose only reader is the RNNPool right after it never materializes
its output. The two run patch row by patch row: the conv computes just the rows the next patch
row adds into a band of `patch_h` rows, RNNPool reads its patches by stride from that band.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ir.graph import Graph, Node


@dataclass(frozen=True)
class PatchRegion:
    conv: int  # node index of the producer convolution
    pool: int  # node index of the RNNPool that reads it (conv + 1)
    band_rows: int  # conv output rows held at once

    def band_bytes(self, graph: Graph) -> int:
        t = graph.tensors[graph.nodes[self.conv].outputs[0]]
        _, _, w, c = t.shape
        return self.band_rows * w * c * t.nbytes // t.numel


def overwrite_is_safe(graph: Graph, r: PatchRegion) -> bool:
    """May RNNPool's output rows overwrite the conv's input from its first byte on? Row oy of
    the output is written once the band holds conv rows up to hi(oy); every input row the
    remaining conv rows read must still lie past the bytes written so far."""
    conv, pool = graph.nodes[r.conv], graph.nodes[r.pool]
    x, y = graph.tensors[conv.inputs[0]], graph.tensors[pool.outputs[0]]
    if x.dtype != y.dtype or x.shape[0] != 1:
        return False
    _, in_h, in_w, in_c = x.shape
    _, conv_h, _, _ = graph.tensors[conv.outputs[0]].shape
    _, out_h, out_w, out_c = y.shape
    sh, ph = int(pool.attrs["stride"][0]), int(pool.attrs["patch"][0])  # type: ignore[index]
    s_conv, pad_t = int(conv.attrs["stride"][0]), int(conv.attrs["pad"][0])  # type: ignore[index]
    for oy in range(out_h):
        hi = min(oy * sh + ph, conv_h)  # conv rows computed once row oy is written
        first_needed = in_h if hi >= conv_h else max(0, min(in_h, hi * s_conv - pad_t))
        if (oy + 1) * out_w * out_c > first_needed * in_w * in_c:
            return False
    return True


def patch_regions(graph: Graph) -> list[PatchRegion]:
    """Conv → RNNPool pairs that run patch-wise (quantized NHWC graphs, dense convolutions)."""
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
