"""A mean over H and W of a 4-D map is a global average pool (what every backend has)."""

from __future__ import annotations

from compiler.ir.graph import Graph
from compiler.ir.registry import make_node


def lower_reduce_mean(graph: Graph) -> Graph:
    g = graph.copy()
    for n in list(g.nodes):
        x = g.tensors[n.inputs[0]]
        if n.op != "reduce_mean" or x.layout is None or len(x.shape) != 4:
            continue
        hw = [2, 3] if x.layout == "NCHW" else [1, 2]
        if n.attrs["axes"] != hw:
            continue
        i = g.nodes.index(n)
        if n.attrs["keepdims"]:
            g.nodes[i] = make_node("global_avg_pool", n.inputs, n.outputs, n.name, layout=x.layout)
            continue
        pooled = g.fresh_name(f"{n.outputs[0]}/pooled")
        n_, c = x.shape[0], (x.shape[1] if x.layout == "NCHW" else x.shape[3])
        shape = (n_, c, 1, 1) if x.layout == "NCHW" else (n_, 1, 1, c)
        # the pooled map holds the output's values (and quantization), before the flatten
        g.tensors[pooled] = g.tensors[n.outputs[0]].copy(name=pooled, shape=shape, layout=x.layout)
        g.nodes[i : i + 1] = [
            make_node("global_avg_pool", n.inputs, [pooled], n.name, layout=x.layout),
            make_node("reshape", [pooled], n.outputs, f"{n.label}:flatten", shape=[n_, c]),
        ]
    return g
