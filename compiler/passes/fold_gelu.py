"""Fold the pattern nn.GELU exports before ONNX opset 20 into one `gelu` op:

    y = (x * (erf(x / sqrt(2)) + 1)) * 0.5        (any operand order; x * 0.5 first also)

Both the TorchScript and the dynamo exporters write it this way (Div or Mul by 1/sqrt(2)). The
pattern's float arithmetic is the same function as GELU's; the single op then runs as one table
in int8/int16 instead of five layers, four of which tvc could not quantize.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import make_node
from compiler.passes.rewrite import replace_chain

TOL = 1e-5  # relative, on the pattern's constants


def _const(g: Graph, name: str) -> float | None:
    t = g.tensors[name]
    if t.data is None or t.data.size != 1:
        return None
    return float(np.asarray(t.data).reshape(-1)[0])


def _near(v: float | None, want: float) -> bool:
    return v is not None and abs(v - want) <= TOL * abs(want)


def _other(n: Node, x: str) -> str | None:
    """The other input of a binary node that reads x once."""
    if len(n.inputs) != 2 or n.inputs.count(x) != 1:
        return None
    return n.inputs[1] if n.inputs[0] == x else n.inputs[0]


def _match(g: Graph, erf: Node, producers: dict[str, Node], uses: dict[str, list[Node]]):  # type: ignore[no-untyped-def]
    """(x, the nodes of the pattern, its output) or None."""
    scale = producers.get(erf.inputs[0])
    if scale is None or len(uses.get(scale.outputs[0], [])) != 1:
        return None
    x = scale.inputs[0]
    if scale.op == "div":
        if scale.inputs[1] == x or not _near(_const(g, scale.inputs[1]), math.sqrt(2.0)):
            return None
    elif scale.op == "mul" and len(scale.inputs) == 2:
        a, b = scale.inputs
        x, c = (a, b) if g.tensors[b].is_const else (b, a)
        if not _near(_const(g, c), math.sqrt(0.5)):
            return None
    else:
        return None
    chain = [scale, erf]
    after = uses.get(erf.outputs[0], [])
    if len(after) != 1 or after[0].op != "add":
        return None
    add = after[0]
    if not _near(_const(g, _other(add, erf.outputs[0]) or erf.outputs[0]), 1.0):
        return None
    chain.append(add)
    # x * (1 + erf) and * 0.5, in either order: two muls after the add, or x * 0.5 first
    rest = uses.get(add.outputs[0], [])
    if len(rest) != 1 or rest[0].op != "mul":
        return None
    m1 = rest[0]
    other = _other(m1, add.outputs[0])
    if other is None:
        return None
    if other == x:  # x * (1 + erf), then * 0.5
        chain.append(m1)
        nxt = uses.get(m1.outputs[0], [])
        if len(nxt) != 1 or nxt[0].op != "mul" or m1.outputs[0] in g.outputs:
            return None
        m2 = nxt[0]
        if not _near(_const(g, _other(m2, m1.outputs[0]) or m1.outputs[0]), 0.5):
            return None
        chain.append(m2)
        return x, chain, m2.outputs[0]
    half = producers.get(other)  # (x * 0.5) * (1 + erf)
    if half is None or half.op != "mul" or len(uses.get(other, [])) != 1:
        return None
    if _other(half, x) is None or not _near(_const(g, _other(half, x)), 0.5):  # type: ignore[arg-type]
        return None
    return x, [half, *chain, m1], m1.outputs[0]


def fold_gelu(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers()
    uses = g.consumers()
    for erf in [n for n in g.nodes if n.op == "erf"]:
        found = _match(g, erf, producers, uses)
        if found is None:
            continue
        x, chain, out = found
        inner = {o for n in chain for o in n.outputs} - {out}
        if inner & set(g.outputs):
            continue
        replace_chain(g, chain, make_node("gelu", [x], [out], chain[-1].name, approximate="none"))
    g.prune_tensors()
    return g
