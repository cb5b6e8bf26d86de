"""Fold inference BatchNorm into the conv/dense before it; a lone BatchNorm becomes mul + add.

Folding is done in float64 and rounded once, so the folded model matches onnxruntime's
unfolded one to float32 precision.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.ops.norm import bn_affine
from compiler.ir.registry import make_node
from compiler.passes.rewrite import new_const


def fold_batchnorm(graph: Graph) -> Graph:
    g = graph.copy()
    producers = g.producers()
    uses = g.consumers()
    for bn in [n for n in g.nodes if n.op == "batch_norm"]:
        params = [g.tensors[i].data for i in bn.inputs[1:]]
        if any(p is None for p in params):
            continue
        mul, off = bn_affine([np.empty(0), *params], float(bn.attrs["epsilon"]))  # type: ignore[list-item, arg-type]
        x = bn.inputs[0]
        prev = producers.get(x)
        single = len(uses.get(x, [])) == 1 and x not in g.outputs
        if (
            prev is not None
            and single
            and prev.op in ("conv2d", "dense")
            and prev.attrs.get("act", "none") == "none"
            and g.tensors[prev.inputs[1]].is_const
        ):
            w = g.tensors[prev.inputs[1]].data.astype(np.float64)  # type: ignore[union-attr]
            b = (
                g.tensors[prev.inputs[2]].data.astype(np.float64)  # type: ignore[union-attr]
                if len(prev.inputs) > 2
                else np.zeros(w.shape[0])
            )
            wf = w * mul.reshape(
                (-1,) + (1,) * (w.ndim - 1)
            )  # output channels lead in OIHW/OHWI/[out,in]
            bf = b * mul + off
            prev.inputs = [
                prev.inputs[0],
                new_const(g, f"{prev.label}/w_bn", wf.astype(np.float32)),
                new_const(g, f"{prev.label}/b_bn", bf.astype(np.float32)),
            ]
            g.nodes.remove(bn)
            prev.outputs = [bn.outputs[0]]
            del g.tensors[x]
            continue
        rank = len(g.tensors[x].shape)
        axis = 1 if bn.attrs["layout"] == "NCHW" else rank - 1
        shape = [1] * (rank - axis)
        shape[0] = -1
        m = new_const(g, f"{bn.label}/scale", mul.astype(np.float32).reshape(shape))
        a = new_const(g, f"{bn.label}/shift", off.astype(np.float32).reshape(shape))
        mid = g.fresh_name(f"{bn.outputs[0]}/scaled")
        g.tensors[mid] = g.tensors[bn.outputs[0]].copy(name=mid)
        k = g.nodes.index(bn)
        g.nodes[k : k + 1] = [
            make_node("mul", [x, m], [mid], f"{bn.label}:mul"),
            make_node("add", [mid, a], [bn.outputs[0]], f"{bn.label}:add"),
        ]
    g.prune_tensors()
    return g
