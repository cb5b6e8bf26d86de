"""Fuse ReLU / ReLU6 / Clip into the op that feeds them when it carries a fused activation
(conv, dense, add, sub, mul): a clamp after requantization is free in int8."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import check_attrs, get_op


def _fused(n: Node) -> dict[str, object] | None:
    if n.op == "relu":
        return {"act": "relu"}
    if n.op == "clip":
        lo, hi = float(n.attrs["min"]), float(n.attrs["max"])  # type: ignore[arg-type]
        if lo == 0.0 and hi == 6.0:
            return {"act": "relu6"}
        if lo == 0.0 and hi == float("inf"):
            return {"act": "relu"}
        return {"act": "clip", "clip": [lo, hi]}
    return None


def fuse_activation(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers()
    uses = g.consumers()
    for act in list(g.nodes):
        fused = _fused(act)
        if fused is None:
            continue
        x = act.inputs[0]
        prev = producers.get(x)
        if (
            prev is None
            or "act" not in get_op(prev.op).attrs
            or prev.attrs.get("act", "none") != "none"
            or len(uses.get(x, [])) != 1
            or x in g.outputs
            or g.tensors[x].qparams != g.tensors[act.outputs[0]].qparams
        ):
            continue
        attrs = dict(prev.attrs)
        attrs.pop("clip", None)
        attrs.update(fused)
        prev.attrs = check_attrs(prev.op, attrs)
        prev.outputs = [act.outputs[0]]
        g.nodes.remove(act)
    g.prune_tensors()
    return g
