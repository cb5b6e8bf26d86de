"""quantize (affine): TFLite's int8 scheme, so CMSIS-NN and tf.lite agree with us bit for bit.

Activations: int8, asymmetric, per tensor, from calibrated ranges (always containing 0).
Conv weights: int8 symmetric per output channel (-127..127); dense weights per tensor (the
integer-multiplier path every int8 backend shares). Bias: int32 at s_in * s_w.
TFLite's constraints: data-movement ops and max/avg pooling keep their input's parameters
(tensors they connect share one range), softmax and sigmoid output 1/256 with zero point -128,
tanh 1/128 with 0.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import ModelError
from compiler.ir.graph import Graph
from compiler.ir.registry import get_op
from compiler.ir.tensor import QParams, Tensor, const_tensor
from compiler.numerics.fixedpoint import round_half_away, round_half_away_array
from compiler.quant.calibrate import Range
from compiler.quant.rnnpool import quantize_rnnpool_weights


def _f32(x: float) -> float:
    return float(np.float32(x))


def choose_params(lo: float, hi: float, qmin: int = -128, qmax: int = 127) -> QParams:
    """Asymmetric params for [lo, hi] widened to contain 0 (zero must be exact: padding)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        hi = lo + 1e-6
    scale = _f32((hi - lo) / (qmax - qmin))
    zp = min(qmax, max(qmin, round_half_away(qmin - lo / scale)))
    return QParams((scale,), (zp,))


class _Groups:
    """Union-find over tensor names that must share quantization parameters."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def shared_groups(g: Graph) -> dict[str, list[str]]:
    """The float data tensors (not conv/dense weights and biases), grouped so that the tensors a
    data-movement op or pool connects share one set of parameters (TFLite's constraint)."""
    groups = _Groups()
    for n in g.nodes:
        if get_op(n.op).quant.output == "same":  # the float data it moves, constants included
            for t in [*(i for i in n.inputs if g.tensors[i].dtype == "f32"), *n.outputs]:
                groups.union(t, n.outputs[0])
    weights = {i for n in g.nodes if get_op(n.op).quant.weights for i in n.inputs[1:]}
    data = {t for n in g.nodes for t in [*n.inputs, *n.outputs]} | set(g.inputs) | set(g.outputs)
    members: dict[str, list[str]] = {}
    for name in sorted(data - weights):
        if g.tensors[name].dtype == "f32":
            members.setdefault(groups.find(name), []).append(name)
    return members


def _weights(w: np.ndarray, per_channel: bool) -> tuple[np.ndarray, QParams]:
    flat = (
        np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        if per_channel
        else np.array([np.abs(w).max()])
    )
    scales = np.array([_f32(m / 127.0) if m > 0 else 1.0 for m in flat], np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(
        round_half_away_array(w / (scales.reshape(shape) if per_channel else scales[0])), -127, 127
    )
    qp = QParams(tuple(float(s) for s in scales), (0,) * len(scales), 0 if per_channel else None)
    return q.astype(np.int8), qp


def quantize_affine(
    graph: Graph, ranges: dict[str, Range], states: dict[str, dict[str, float]] | None = None
) -> Graph:
    """TFLite's int8 scheme; RNNPool (not a TFLite op) keeps int8 data around int16 internals,
    its state formats from `states` (quant.rnnpool.rnnpool_state_ranges)."""
    g = graph.copy()
    unsupported = sorted({n.op for n in g.nodes if get_op(n.op).run_int is None})
    if unsupported:
        where = next(n for n in g.nodes if n.op in unsupported)
        raise ModelError(
            f"cannot quantize: no int8 kernel for {', '.join(unsupported)} "
            f"(first at node {where.label!r})",
            "keep the model float, or replace these layers",
        )
    members = shared_groups(g)
    fixed = {
        n.outputs[0]: QParams((_f32(q.fixed[0]),), (q.fixed[1],))
        for n in g.nodes
        if (q := get_op(n.op).quant).fixed is not None
    }
    params: dict[str, QParams] = {}
    for names in members.values():
        pinned = [fixed[n] for n in names if n in fixed]
        if pinned:
            qp = pinned[0]
        else:
            seen = [ranges[n] for n in names if n in ranges]
            seen += [
                Range(float(g.tensors[n].data.min()), float(g.tensors[n].data.max()))
                for n in names
                if g.tensors[n].is_const
            ]  # type: ignore[union-attr]
            if not seen:
                continue
            qp = choose_params(min(r.lo for r in seen), max(r.hi for r in seen))
        for n in names:
            params[n] = qp
    # weights and biases, then every float tensor to int8
    for n in g.nodes:
        wq = get_op(n.op).quant.weights
        if wq == "rnnpool":  # |x - zero point| <= 255 bounds W1's row sums
            s_x = float(params[n.inputs[0]].scale[0])
            quantize_rnnpool_weights(g, n, states or {}, 255, s_x)
        has_w = len(n.inputs) > 1 and g.tensors[n.inputs[1]].is_const
        if wq in ("per_channel", "per_tensor") and has_w:
            w_t = g.tensors[n.inputs[1]]
            qw, qp_w = _weights(w_t.data, per_channel=wq == "per_channel")  # type: ignore[arg-type]
            w_name = g.add_const(f"{n.inputs[1]}/q", const_tensor("w", qw))
            g.tensors[w_name].qparams = qp_w
            ins = [n.inputs[0], w_name]
            if len(n.inputs) > 2:
                s_in = params[n.inputs[0]].scale[0]
                s_b = np.array([_f32(s_in * s) for s in qp_w.scale], np.float64)
                b = g.tensors[n.inputs[2]].data.astype(np.float64)  # type: ignore[union-attr]
                qb = np.clip(round_half_away_array(b / s_b), -(2**31), 2**31 - 1).astype(np.int32)
                b_name = g.add_const(f"{n.inputs[2]}/q", const_tensor("b", qb))
                g.tensors[b_name].qparams = QParams(
                    tuple(float(s) for s in s_b), (0,) * len(s_b), 0 if len(s_b) > 1 else None
                )
                ins.append(b_name)
            n.inputs = ins
    for name, t in list(g.tensors.items()):
        if t.dtype != "f32" or name not in params:
            continue
        qp = params[name]
        if t.is_const:
            s, z = qp.scale[0], qp.zero_point[0]
            q = np.clip(round_half_away_array(t.data / s) + z, -128, 127).astype(np.int8)  # type: ignore[operator]
            g.tensors[name] = Tensor(name, t.shape, "i8", t.layout, q, qp)
            g.tensors[name].data.setflags(write=False)  # type: ignore[union-attr]
        else:
            g.tensors[name] = t.copy(dtype="i8", qparams=qp)
    g.meta["quant"] = "affine"
    g.prune_tensors()
    return g
