"""layout: every 4-D activation becomes NHWC, with no transpose left at run time.

Each tensor carries a permutation p (physical = logical.transpose(p)); rules rewrite each node
to work on physical tensors. Transposes become free aliases that change p; a reshape is free
when some p makes its physical bytes unchanged (found by tracing element indices); a
Flatten→Dense permutes the dense weights instead; a channel shuffle becomes `permute_channels`.
Only an op without a rule gets a real transpose back to the logical layout (a fallback).
"""

from __future__ import annotations

import itertools

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.registry import check_attrs, get_op, make_node
from compiler.ir.tensor import const_tensor
from compiler.passes.dce import dce
from compiler.passes.fold_permutation import fold_permutation
from compiler.passes.remove_noops import remove_noops

NHWC = (0, 2, 3, 1)
Perm = tuple[int, ...]


def _ident(rank: int) -> Perm:
    return tuple(range(rank))


def _default(rank: int) -> Perm:
    return NHWC if rank == 4 else _ident(rank)


def _compose(p: Perm, q: Perm) -> Perm:
    """Axes r with phys_q = phys_p.transpose(r), where phys_x = logical.transpose(x)."""
    return tuple(p.index(a) for a in q)


class _Rewriter:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.logical = {k: t.shape for k, t in g.tensors.items()}
        self.perm: dict[str, Perm] = {}
        self.alias: dict[str, str] = {}  # logical tensor -> the physical tensor holding it
        self.nodes: list[Node] = []
        self.uses = g.consumers()
        self._converted: dict[tuple[str, Perm], str] = {}

    # --- tensors -------------------------------------------------------------------------------
    def name(self, logical: str) -> str:
        return self.alias.get(logical, logical)

    def lshape(self, name: str) -> tuple[int, ...]:
        """Logical shape; tensors the pass creates are born physical == logical."""
        return self.logical.get(name) or self.g.tensors[name].shape

    def perm_of(self, logical: str) -> Perm:
        return self.perm.get(logical, _ident(len(self.lshape(logical))))

    def set_out(self, logical: str, perm: Perm) -> None:
        self.perm[logical] = perm
        t = self.g.tensors[logical]
        shape = self.lshape(logical)
        t.shape = tuple(shape[a] for a in perm)
        if len(shape) == 4 and t.layout is not None:
            t.layout = "NHWC" if perm == NHWC else "NCHW" if perm == _ident(4) else None
        elif len(shape) != 4:
            t.layout = None

    def physical(self, logical: str, want: Perm) -> str:
        """Name of a tensor holding `logical` physically in `want` order (a transpose if needed)."""
        have = self.perm_of(logical)
        src = self.name(logical)
        if have == want:
            return src
        key = (logical, want)
        if key in self._converted:
            return self._converted[key]
        t = self.g.tensors[src]
        r = _compose(have, want)
        if t.is_const:
            assert t.data is not None
            out = self.g.add_const(f"{src}/t", const_tensor(src, t.data.transpose(r)))
        else:
            out = self.g.fresh_name(f"{src}/transposed")
            shape = self.lshape(logical)
            layout = (
                "NHWC"
                if want == NHWC
                else "NCHW"
                if (len(want) == 4 and want == _ident(4))
                else None
            )
            self.g.tensors[out] = t.copy(
                name=out, shape=tuple(shape[a] for a in want), layout=layout
            )
            self.nodes.append(make_node("transpose", [src], [out], f"{src}:layout", perm=list(r)))
        self._converted[key] = out
        return out

    def emit(self, node: Node) -> None:
        self.nodes.append(node)


def _retag(n: Node, rw: _Rewriter, **changes: object) -> Node:
    attrs = dict(n.attrs)
    attrs.update(changes)
    return Node(n.op, list(n.inputs), list(n.outputs), check_attrs(n.op, attrs), n.name)


def _retag_permuted(n: Node, rw: _Rewriter, p: Perm) -> Node:
    """The node with the attributes that name axes remapped by the op's own rule."""
    remap = get_op(n.op).permute_attrs
    if remap is None:
        return _retag(n, rw)
    return Node(n.op, list(n.inputs), list(n.outputs), check_attrs(n.op, remap(n.attrs, p)), n.name)


def _fallback(rw: _Rewriter, n: Node) -> None:
    n = _retag(n, rw)
    n.inputs = [rw.physical(i, _ident(len(rw.lshape(i)))) for i in n.inputs]
    for o in n.outputs:
        rw.set_out(o, _ident(len(rw.lshape(o))))
    rw.emit(n)


def _spatial(rw: _Rewriter, n: Node) -> None:
    x = n.inputs[0]
    if len(rw.lshape(x)) != 4 or n.attrs["layout"] != "NCHW":
        return _fallback(rw, n)
    m = _retag(n, rw, layout="NHWC")
    m.inputs = [rw.physical(x, NHWC)] + [rw.name(i) for i in n.inputs[1:]]
    for k, (suffix, perm) in get_op(n.op).nhwc_weights.items():
        w = rw.g.tensors[n.inputs[k]]
        assert w.data is not None
        m.inputs[k] = rw.g.add_const(
            f"{n.inputs[k]}/{suffix}", const_tensor("w", w.data.transpose(perm))
        )
    rw.set_out(n.outputs[0], NHWC)
    rw.emit(m)


def _unary(rw: _Rewriter, n: Node) -> None:
    p = rw.perm_of(n.inputs[0])
    m = _retag_permuted(n, rw, p)
    m.inputs = [rw.name(n.inputs[0])]
    rw.set_out(n.outputs[0], p)
    rw.emit(m)


def _binary(rw: _Rewriter, n: Node) -> None:
    out_rank = len(rw.lshape(n.outputs[0]))
    acts = [i for i in n.inputs if not rw.g.tensors[rw.name(i)].is_const]
    p = next((rw.perm_of(i) for i in acts if len(rw.lshape(i)) == out_rank), _ident(out_rank))
    if any(len(rw.lshape(i)) != out_rank for i in acts):
        return _fallback(rw, n)
    ins = []
    for i in n.inputs:
        t = rw.g.tensors[rw.name(i)]
        if t.is_const and p == _ident(out_rank):
            ins.append(rw.name(i))  # broadcasts as it did
        elif t.is_const:
            assert t.data is not None
            d = t.data.reshape((1,) * (out_rank - t.data.ndim) + t.data.shape)
            ins.append(rw.g.add_const(f"{i}/t", const_tensor(i, d.transpose(p))))
        else:
            ins.append(rw.physical(i, p))
    m = _retag(n, rw)
    m.inputs = ins
    rw.set_out(n.outputs[0], p)
    rw.emit(m)


def _axis_op(rw: _Rewriter, n: Node) -> None:
    """Ops whose attributes name axes (concat, split, slice, pad, reductions): the op's own
    permute_attrs remaps them to physical axes; a reduction without keepdims drops axes."""
    acts = [i for i in n.inputs if not rw.g.tensors[rw.name(i)].is_const]
    p = rw.perm_of(acts[0]) if acts else _ident(len(rw.lshape(n.inputs[0])))
    a = n.attrs
    m = _retag_permuted(n, rw, p)
    # inputs of another rank (a per-channel vector along the axis) are not laid out
    m.inputs = [rw.physical(i, p) if len(rw.lshape(i)) == len(p) else rw.name(i) for i in n.inputs]
    if "keepdims" in a and not a["keepdims"]:
        kept = [x for x in p if x not in a["axes"]]  # type: ignore[operator]
        order = sorted(kept)
        rw.set_out(n.outputs[0], tuple(order.index(x) for x in kept))
    else:
        for o in n.outputs:
            rw.set_out(o, p)
    rw.emit(m)


def _transpose(rw: _Rewriter, n: Node) -> None:
    p, q = rw.perm_of(n.inputs[0]), tuple(n.attrs["perm"])  # type: ignore[arg-type]
    out = n.outputs[0]
    rw.alias[out] = rw.name(n.inputs[0])
    rw.perm[out] = tuple(q.index(a) for a in p)


def _free_perm(in_phys_order: np.ndarray, out_shape: tuple[int, ...]) -> Perm | None:
    """A perm p_out with out_logical.transpose(p_out) flat-equal to the input's physical bytes."""
    rank = len(out_shape)
    out_logical = np.arange(in_phys_order.size).reshape(out_shape)
    if rank > 6:
        return None
    cands = [_default(rank), _ident(rank)] + list(itertools.permutations(range(rank)))
    for c in cands:
        if np.array_equal(out_logical.transpose(c).reshape(-1), in_phys_order):
            return tuple(c)
    return None


def _reshape(rw: _Rewriter, n: Node) -> None:
    x, out = n.inputs[0], n.outputs[0]
    p = rw.perm_of(x)
    if len(n.inputs) != 1 or p == _ident(len(p)):
        return _fallback(rw, n)
    in_shape, out_shape = rw.lshape(x), rw.lshape(out)
    L = np.arange(int(np.prod(in_shape))).reshape(in_shape)
    in_phys = L.transpose(p).reshape(-1)  # logical flat index held at each physical position
    free = _free_perm(in_phys, out_shape)
    src = rw.name(x)
    if free is not None:
        rw.set_out(out, free)
        phys = rw.g.tensors[out].shape
        if phys == rw.g.tensors[src].shape:
            rw.alias[out] = src
        else:
            rw.emit(make_node("reshape", [src], [out], n.name, shape=list(phys)))
        return
    consumers = rw.uses.get(out, [])
    if (
        len(out_shape) == 2
        and out_shape[0] == 1
        and consumers
        and out not in rw.g.outputs
        and all(
            c.op == "dense" and c.inputs[0] == out and rw.g.tensors[c.inputs[1]].is_const
            for c in consumers
        )
    ):
        # Flatten→Dense: feed the NHWC bytes as they are, permute the weight columns instead
        for c in consumers:
            w = rw.g.tensors[c.inputs[1]].data
            assert w is not None
            c.inputs[1] = rw.g.add_const(f"{c.inputs[1]}/nhwc", const_tensor("w", w[:, in_phys]))
        rw.set_out(out, _ident(2))
        rw.emit(make_node("reshape", [src], [out], n.name, shape=list(out_shape)))
        return
    want = _default(len(out_shape))
    pos = np.empty_like(in_phys)
    pos[in_phys] = np.arange(in_phys.size)
    gather = pos[np.arange(in_phys.size).reshape(out_shape).transpose(want)]
    c = gather.shape[-1] if gather.ndim else 0
    if c > 1:
        rows = gather.reshape(-1, c) - (np.arange(gather.size // c) * c)[:, None]
        perm = rows[0]
        if (rows == perm).all() and sorted(perm.tolist()) == list(range(c)):
            # a channel shuffle: reshape the bytes (free), then gather channels
            rw.set_out(out, want)
            phys = rw.g.tensors[out].shape
            mid = rw.g.fresh_name(f"{out}/flat")
            rw.g.tensors[mid] = rw.g.tensors[out].copy(name=mid)
            rw.emit(make_node("reshape", [src], [mid], f"{n.label}:view", shape=list(phys)))
            rw.emit(
                make_node(
                    "permute_channels", [mid], [out], n.name, perm=perm.tolist(), axis=len(phys) - 1
                )
            )
            return
    _fallback(rw, n)


RULES = {
    "spatial": _spatial,
    "elementwise": _unary,
    "broadcast": _binary,
    "axis": _axis_op,
    "transpose": _transpose,
    "reshape": _reshape,
    "logical": _fallback,
}  # by the op's declared layout rule (registry.LAYOUT_RULES)


def _to_nhwc(graph: Graph) -> Graph:
    g = graph.copy()
    # outputs keep their names; internally they are renamed so the last step can place them
    internal: dict[str, str] = {}
    for o in list(g.outputs):
        tmp = g.fresh_name(f"{o}/value")
        record = g.tensors[o].copy()
        g.rename(o, tmp)
        g.tensors[o] = record
        internal[o] = tmp
    g.outputs = list(internal)
    rw = _Rewriter(g)
    for i in g.inputs:
        if len(g.tensors[i].shape) == 4:
            rw.set_out(i, NHWC)
    for n in g.nodes:
        RULES[get_op(n.op).layout](rw, n)
    # 4-D maps leave as NHWC (the run boundary and the C API convert); others in logical order
    for o, tmp in internal.items():
        p = rw.perm_of(tmp)
        want = NHWC if (len(p) == 4 and p == NHWC) else _ident(len(p))
        rw.emit(make_node("identity", [rw.physical(tmp, want)], [o], f"{o}:output"))
        rw.set_out(o, want)
    g.nodes = rw.nodes
    g.prune_tensors()
    return g


def to_nhwc(graph: Graph) -> Graph:
    """The layout stage: rewrite to NHWC, drop the aliases it leaves, fold channel shuffles."""
    if graph.meta.get("layout") == "NHWC":
        return graph  # already laid out (TFLite imports, compiled graphs read back)
    g = dce(fold_permutation(remove_noops(_to_nhwc(graph))))
    g.meta["layout"] = "NHWC"
    return g
