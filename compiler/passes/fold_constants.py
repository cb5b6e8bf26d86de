"""Constant folding: every node computable at compile time becomes a constant.

Shape glue (Shape, Gather, Unsqueeze, Concat, Cast, Div...) folds away because `shape` is
computable from static shapes alone; a reshape whose target became constant gets the static form.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.registry import check_attrs, get_op
from compiler.ir.tensor import const_tensor


def fold_constants(graph: Graph) -> Graph:
    g = graph.copy()
    kept = []
    for node in g.nodes:
        ins = [g.tensors[i] for i in node.inputs]
        foldable = all(t.is_const for t in ins) or node.op == "shape"
        if foldable and not any(o in g.outputs for o in node.outputs):
            arrays = [
                t.data if t.data is not None else np.broadcast_to(np.float32(0), t.shape)
                for t in ins
            ]
            outs = get_op(node.op).run(node, arrays)  # type: ignore[arg-type]
            for name, value in zip(node.outputs, outs, strict=True):
                g.tensors[name] = const_tensor(name, np.asarray(value))
            continue
        if node.op == "reshape" and len(node.inputs) == 2 and g.tensors[node.inputs[1]].is_const:
            node.attrs = check_attrs("reshape", {"shape": list(g.tensors[node.outputs[0]].shape)})
            node.inputs = node.inputs[:1]
        kept.append(node)
    g.nodes = kept
    g.prune_tensors()
    return g
