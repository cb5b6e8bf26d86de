"""Fold a channel permutation into neighbouring weights where the math allows.

Forward: when every consumer is a dense or a non-grouped conv, permute their input-channel
weights. Backward: when the producer is a dense or a non-grouped conv feeding only this node,
permute its output channels (weights and bias). Otherwise it stays a cheap run-time gather.
"""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.passes.rewrite import new_const


def _mixes_channels(g: Graph, n: Node) -> bool:
    return n.op == "dense" or (
        n.op == "conv2d" and n.attrs["groups"] == 1 and n.attrs["layout"] == "NHWC"
    )


def _fold_forward(g: Graph, perm_node: Node, uses: list[Node]) -> bool:
    x = perm_node.outputs[0]
    if (
        x in g.outputs
        or not uses
        or not all(
            _mixes_channels(g, c) and c.inputs[0] == x and x not in c.inputs[1:] for c in uses
        )
    ):
        return False
    inv = np.argsort(perm_node.attrs["perm"])  # type: ignore[arg-type]
    for c in uses:
        w = g.tensors[c.inputs[1]].data
        assert w is not None
        c.inputs = [
            perm_node.inputs[0],
            new_const(g, f"{c.inputs[1]}/perm", w[..., inv]),
            *c.inputs[2:],
        ]
    g.nodes.remove(perm_node)
    return True


def _fold_backward(g: Graph, perm_node: Node, producer: Node | None, n_uses: int) -> bool:
    src = perm_node.inputs[0]
    if producer is None or not _mixes_channels(g, producer) or n_uses != 1 or src in g.outputs:
        return False
    perm = np.asarray(perm_node.attrs["perm"])
    w = g.tensors[producer.inputs[1]].data
    assert w is not None
    ins = [producer.inputs[0], new_const(g, f"{producer.inputs[1]}/perm", w[perm])]
    if len(producer.inputs) > 2:
        b = g.tensors[producer.inputs[2]].data
        assert b is not None
        ins.append(new_const(g, f"{producer.inputs[2]}/perm", b[perm]))
    producer.inputs = ins
    producer.outputs = [perm_node.outputs[0]]
    g.nodes.remove(perm_node)
    return True


def fold_permutation(graph: Graph) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        producers, uses = g.producers(), g.consumers()
        for n in g.nodes:
            if (
                n.op != "permute_channels"
                or int(n.attrs["axis"]) % len(g.tensors[n.inputs[0]].shape)
                != len(g.tensors[n.inputs[0]].shape) - 1
            ):  # type: ignore[call-overload]
                continue
            if _fold_forward(g, n, uses.get(n.outputs[0], [])) or _fold_backward(
                g, n, producers.get(n.inputs[0]), len(uses.get(n.inputs[0], []))
            ):
                changed = True
                break
    g.prune_tensors()
    return g
