"""Exact dead-channel elimination on quantized graphs.

An output channel of a convolution whose weights are all zero is a constant: bias, requantized,
clamped by the activation. Nothing needs computing for it. The constant flows on through ops
that work channel by channel (depthwise convolutions, pools, adds, element-wise activations,
concatenation, a flatten) as long as it stays the same at every pixel, and it ends in ops that
mix channels (convolutions, dense), which take it into their bias:

    bias[o] += (c_k - zp_x) * sum over taps of w[o, :, :, k]

That is exact where every tap reads the constant: 1x1 and unpadded k x k convolutions, dense
layers, and any convolution when the constant is the input's zero point (padding reads the zero
point too, and its product is 0). Elsewhere the channel is kept, so the result is bit-exact with
the graph before the pass in every case.

Which ops take part, and how, is each op's own fact (`ChannelRule`, declared beside the op);
this pass only solves which channels can go everywhere at once and asks the ops to drop them.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import ChannelRule, get_channel_rule, get_op
from compiler.ir.tensor import DTYPES, Tensor

Consts = dict[int, int]  # channel -> the int8 value it holds at every pixel
LANES = 4  # channels left per tensor: a multiple of this (the DSP kernels' four lanes)


def _kind(graph: Graph, node: Node) -> tuple[ChannelRule | None, str | None]:
    rule = get_channel_rule(node.op)
    if rule is None or any(graph.tensors[o].dtype != "i8" for o in node.outputs):
        return None, None
    return rule, rule.kind(graph, node)


def _zero_point(t: Tensor) -> int:
    q = t.qparams
    return int(q.zero_point[0]) if q is not None and q.zero_point else 0


def _evaluate(graph: Graph, node: Node, consts: dict[str, Consts]) -> np.ndarray:
    """The node's integer reference on inputs that hold their constant channels (and the zero
    point elsewhere): a channel that comes out equal at every pixel is constant for any input
    wherever the op's output channel depends on its input channel alone."""
    ins = [graph.tensors[i] for i in node.inputs]
    outs = [graph.tensors[o] for o in node.outputs]
    arrays = []
    for t in ins:
        if t.data is not None:
            arrays.append(t.data)
            continue
        a = np.full(t.shape, _zero_point(t), DTYPES[t.dtype])
        for k, c in consts.get(t.name, {}).items():
            a[..., k] = c
        arrays.append(a)
    run = get_op(node.op).run_int
    assert run is not None
    return run(node, arrays, ins, outs)[0]


def _uniform(y: np.ndarray, channels: set[int] | list[int]) -> Consts:
    flat = y.reshape(-1, y.shape[-1])
    return {int(k): int(flat[0, k]) for k in channels if np.all(flat[:, k] == flat[0, k])}


def constant_channels(graph: Graph) -> dict[str, Consts]:
    """For every activation tensor, the channels that hold one value whatever the input."""
    consts: dict[str, Consts] = {}
    for node in graph.nodes:
        rule, kind = _kind(graph, node)
        out = node.outputs[0]
        if kind == "mix" and rule is not None and rule.dead is not None:
            dead = rule.dead(graph, node)
            if dead:
                consts[out] = _uniform(_evaluate(graph, node, consts), dead)
        elif kind == "map":
            acts = [i for i in node.inputs if graph.tensors[i].data is None]
            shared = set.intersection(*(set(consts.get(i, {})) for i in acts)) if acts else set()
            if shared:
                consts[out] = _uniform(_evaluate(graph, node, consts), shared)
        elif kind == "concat":
            joined: Consts = {}
            off = 0
            for i in node.inputs:
                joined.update({off + k: v for k, v in consts.get(i, {}).items()})
                off += graph.tensors[i].shape[-1]
            consts[out] = joined
        elif kind == "flatten":
            consts[out] = dict(consts.get(node.inputs[0], {}))
    return {k: v for k, v in consts.items() if v}


def _solve(graph: Graph, consts: dict[str, Consts]) -> dict[str, set[int]]:
    """The constant channels every producer and consumer can drop together (a fixpoint: each
    op removes from the candidate sets what it cannot drop, until nothing changes)."""
    drop = {t: set(c) for t, c in consts.items() if t not in graph.outputs}
    kinds = {id(n): _kind(graph, n) for n in graph.nodes}

    def get(t: str) -> set[int]:
        return drop.get(t, set())

    def put(t: str, s: set[int]) -> bool:
        if s != get(t):
            drop[t] = s
            return True
        return False

    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            rule, kind = kinds[id(node)]
            acts = [i for i in node.inputs if graph.tensors[i].data is None]
            out = node.outputs[0]
            if kind == "mix" and rule is not None and rule.foldable is not None:
                x = node.inputs[0]
                if get(x):
                    ok = rule.foldable(graph, node, {k: consts[x][k] for k in get(x)})
                    changed |= put(x, get(x) & ok)
                changed |= put(out, get(out) & (rule.dead(graph, node) if rule.dead else set()))
                for i in acts[1:]:
                    changed |= put(i, set())
            elif kind in ("map", "flatten"):
                s = get(out)
                for i in acts:
                    s = s & get(i)
                for t in (*acts, out):
                    changed |= put(t, s)
            elif kind == "concat":
                off, joined = 0, set()
                for i in node.inputs:
                    c = graph.tensors[i].shape[-1]
                    s = get(i) & {k - off for k in get(out) if off <= k < off + c}
                    changed |= put(i, s)
                    joined |= {off + k for k in s}
                    off += c
                changed |= put(out, joined)
            else:  # a barrier: whatever it reads or writes stays whole
                for t in (*acts, *node.outputs):
                    changed |= put(t, set())
        for t, s in list(drop.items()):
            # channels left in multiples of 4 (the kernels' lanes; never none left): a few
            # constant channels stay computed, which is exact too
            left = graph.tensors[t].shape[-1] - len(s)
            keep = (-left) % LANES if left else LANES
            if s and keep:
                changed |= put(t, set(sorted(s)[: max(len(s) - keep, 0)]))
    return {t: s for t, s in drop.items() if s}


def eliminate_dead_channels(graph: Graph) -> Graph:
    """The graph without the channels that are constant and can be folded away exactly."""
    consts = constant_channels(graph)
    drop = _solve(graph, consts) if consts else {}
    g = graph.copy()
    if not drop:
        return g
    for node in g.nodes:
        rule, kind = _kind(g, node)
        out = node.outputs[0]
        if rule is not None and rule.rewrite is not None and kind in ("mix", "map"):
            x = node.inputs[0]
            d_in, d_out = drop.get(x, set()), drop.get(out, set())
            if d_in or d_out:
                folded = {k: consts[x][k] for k in d_in} if kind == "mix" else {}
                rule.rewrite(g, node, folded, d_in, d_out)
        if kind == "flatten" and "shape" in node.attrs and out in drop:
            t = g.tensors[out]
            node.attrs["shape"] = [*t.shape[:-1], t.shape[-1] - len(drop[out])]
    for t, s in drop.items():
        old = g.tensors[t]
        g.tensors[t] = old.copy(shape=(*old.shape[:-1], old.shape[-1] - len(s)))
    g.prune_tensors()
    return g
