"""Drop nodes that compute nothing at inference: Identity, Dropout, reshapes to the same
shape, identity transposes, full slices, zero pads, single-input concat; chained reshapes merge."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import check_attrs
from compiler.passes.rewrite import bypass


def _is_noop(g: Graph, n: Node) -> bool:
    ins, outs = [g.tensors[i] for i in n.inputs], [g.tensors[o] for o in n.outputs]
    if n.op in ("identity", "dropout"):
        return True
    if n.op in ("reshape", "slice", "pad", "cast", "permute_channels", "concat", "split"):
        same = (
            len(ins) >= 1
            and len(outs) == 1
            and (ins[0].shape, ins[0].dtype)
            == (
                outs[0].shape,
                outs[0].dtype,
            )
        )
        if n.op == "permute_channels":
            return same and n.attrs["perm"] == list(range(len(n.attrs["perm"])))  # type: ignore[arg-type]
        if n.op == "concat":
            return same and len(ins) == 1
        return same and (n.op != "reshape" or len(ins) == 1)
    if n.op == "transpose":
        return n.attrs["perm"] == sorted(n.attrs["perm"])  # type: ignore[arg-type, type-var]
    return False


def remove_noops(graph: Graph) -> Graph:
    g = graph.copy()
    changed = True
    while changed:
        changed = False
        producers = g.producers()
        uses = g.consumers()
        for n in list(g.nodes):
            if _is_noop(g, n) and bypass(g, n):
                changed = True
                break
            if n.op == "reshape" and len(n.inputs) == 1:
                p = producers.get(n.inputs[0])
                if (
                    p is not None
                    and p.op == "reshape"
                    and len(p.inputs) == 1
                    and len(uses.get(p.outputs[0], [])) == 1
                    and p.outputs[0] not in g.outputs
                ):
                    n.inputs = [p.inputs[0]]  # reshape(reshape(x)) == reshape(x)
                    n.attrs = check_attrs("reshape", dict(n.attrs))
                    g.nodes.remove(p)
                    changed = True
                    break
    g.prune_tensors()
    return g
