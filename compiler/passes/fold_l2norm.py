"""Fold the ways exporters write an L2 normalization into one `l2_norm` op:

    x / (sqrt(reduce_sum(x^2, axis)) + eps) [* scale]     (Pow or x*x; the eps Add optional)
    x / (reduce_l2(x, axis) + eps) [* scale]

`scale` is a constant that varies only along the reduced axis (EdgeML's L2Norm multiplies by
weight[None, :, None, None].expand_as(x), which constant folding turns into a full tensor); it
becomes the op's per-channel scale. One op quantizes and runs as one kernel; the pattern's five
or six float-only layers could not.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import make_node
from compiler.passes.rewrite import new_const, replace_chain


def _scalar(g: Graph, name: str) -> float | None:
    t = g.tensors[name]
    if t.data is None or t.data.size != 1:
        return None
    return float(np.asarray(t.data).reshape(-1)[0])


def _single(uses: dict[str, list[Node]], name: str, op: str) -> Node | None:
    after = uses.get(name, [])
    return after[0] if len(after) == 1 and after[0].op == op else None


def _squares_of(g: Graph, n: Node | None) -> str | None:
    """x when n computes x^2 (pow by 2, or x * x)."""
    if n is None:
        return None
    if n.op == "pow" and _scalar(g, n.inputs[1]) == 2.0:
        return n.inputs[0]
    if n.op == "mul" and n.inputs[0] == n.inputs[1]:
        return n.inputs[0]
    return None


def _per_channel(g: Graph, name: str, shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """The constant as one value per channel of `axis`, or None if it varies elsewhere."""
    t = g.tensors[name]
    if t.data is None or t.data.ndim > len(shape):
        return None
    try:
        full = np.broadcast_to(t.data, shape)
    except ValueError:
        return None
    vec = full[tuple(slice(None) if a == axis else 0 for a in range(len(shape)))]
    along = vec.reshape([-1 if a == axis else 1 for a in range(len(shape))])
    if not np.array_equal(full, np.broadcast_to(along, shape)):
        return None
    return np.ascontiguousarray(vec, np.float32)


def _match(g: Graph, norm: Node, producers: dict[str, Node], uses: dict[str, list[Node]]):  # type: ignore[no-untyped-def]
    """From the node that yields ||x|| (sqrt or reduce_l2): (x, axis, eps, chain, div)."""
    chain = [norm]
    if norm.op == "sqrt":
        s = producers.get(norm.inputs[0])
        if s is None or s.op != "reduce_sum" or len(uses.get(s.outputs[0], [])) != 1:
            return None
        sq = producers.get(s.inputs[0])
        x = _squares_of(g, sq)
        if x is None or len(uses.get(s.inputs[0], [])) != 1:
            return None
        chain = [sq, s, norm]  # type: ignore[list-item]
        red = s
    else:
        x, red = norm.inputs[0], norm
    if len(red.attrs["axes"]) != 1 or not red.attrs["keepdims"]:  # type: ignore[arg-type]
        return None
    axis = int(red.attrs["axes"][0])  # type: ignore[index]
    eps, out = 0.0, norm.outputs[0]
    add = _single(uses, out, "add")
    if add is not None:
        other = add.inputs[1] if add.inputs[0] == out else add.inputs[0]
        value = _scalar(g, other)
        if value is None or value < 0:
            return None
        eps, out = value, add.outputs[0]
        chain.append(add)
    div = _single(uses, out, "div")
    if div is None or div.inputs != [x, out]:
        return None
    chain.append(div)
    return x, axis, eps, chain, div


def fold_l2norm(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers()
    uses = g.consumers()
    for norm in [n for n in g.nodes if n.op in ("sqrt", "reduce_l2")]:
        if norm not in g.nodes:
            continue
        found = _match(g, norm, producers, uses)
        if found is None:
            continue
        x, axis, eps, chain, div = found
        shape = g.tensors[x].shape
        ins, out = [x], div.outputs[0]
        mul = _single(uses, out, "mul") if out not in g.outputs else None
        if mul is not None:
            w = mul.inputs[1] if mul.inputs[0] == out else mul.inputs[0]
            vec = _per_channel(g, w, shape, axis)
            if vec is not None and g.tensors[mul.outputs[0]].shape == shape:
                ins.append(new_const(g, f"{w}/l2norm_scale", vec))
                chain.append(mul)
                out = mul.outputs[0]
        inner = {o for n in chain for o in n.outputs} - {out}
        if inner & set(g.outputs):
            continue
        replace_chain(g, chain, make_node("l2_norm", ins, [out], div.name, axis=axis, eps=eps))
        producers, uses = g.producers(), g.consumers()
    g.prune_tensors()
    return g
