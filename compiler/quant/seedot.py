"""quantize (seedot): SeeDot-style power-of-two fixed point, int8 or int16 everywhere.

Each tensor's exponent comes from its magnitude: the integer bits it needs, the rest
fractional. Products add exponents and sums align them in the kernels (see quant/seedot.py), so
the only free choice is how much headroom to keep: one global parameter `shift`, extra
fractional bits for every tensor (negative: more headroom), searched on validation data for the
best agreement with the float model. Data-movement ops and pools share exponents, as in affine.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import ModelError, UsageError
from compiler.ir.graph import Graph
from compiler.ir.registry import get_op
from compiler.ir.tensor import QParams, Tensor, const_tensor
from compiler.numerics.fixedpoint import round_half_away_array
from compiler.numerics.pow2 import exp_for, quantize_pow2
from compiler.quant.accuracy import evaluate
from compiler.quant.affine import shared_groups
from compiler.quant.calibrate import Range, _progress, observe_ranges
from compiler.quant.rnnpool import quantize_rnnpool_weights, rnnpool_state_ranges

SHIFTS = (-2, -1, 0, 1, 2)


def quantize_seedot(
    graph: Graph,
    ranges: dict[str, Range],
    bits: int,
    shift: int = 0,
    states: dict[str, dict[str, float]] | None = None,
) -> Graph:
    if bits not in (8, 16):
        raise UsageError(f"--bits {bits}: seedot works in 8 or 16 bits")
    dt = "i8" if bits == 8 else "i16"
    g = graph.copy()
    unsupported = sorted({n.op for n in g.nodes if get_op(n.op).run_int is None})
    if unsupported:
        raise ModelError(f"cannot quantize: no integer kernel for {', '.join(unsupported)}")
    members = shared_groups(g)
    # ops with a fixed output range (|y| <= 1) keep all bits fractional
    unit = {n.outputs[0] for n in g.nodes if get_op(n.op).quant.output == "fixed"}
    exps: dict[str, int] = {}
    for names in members.values():
        if any(n in unit for n in names):
            e = -(bits - 1)
        else:
            mags = [max(abs(ranges[n].lo), abs(ranges[n].hi)) for n in names if n in ranges]
            mags += [float(np.abs(g.tensors[n].data).max()) for n in names if g.tensors[n].is_const]  # type: ignore[arg-type]
            e = exp_for(max(mags, default=0.0), bits) - shift
        for n in names:
            exps[n] = e
    for n in g.nodes:
        wq = get_op(n.op).quant.weights
        if wq == "rnnpool":
            quantize_rnnpool_weights(g, n, states or {}, 128 if bits == 8 else 32768)
            continue
        has_w = len(n.inputs) > 1 and g.tensors[n.inputs[1]].is_const
        if wq not in ("per_channel", "per_tensor") or not has_w:
            continue
        w = g.tensors[n.inputs[1]].data.astype(np.float64)  # type: ignore[union-attr]
        e_w = exp_for(float(np.abs(w).max()), bits)
        qw = np.clip(quantize_pow2(w, e_w, dt), -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1)
        w_name = g.add_const(
            f"{n.inputs[1]}/q", const_tensor("w", qw.astype(np.int8 if bits == 8 else np.int16))
        )
        g.tensors[w_name].qparams = QParams(exp=e_w)
        ins = [n.inputs[0], w_name]
        if len(n.inputs) > 2:
            e_b = exps[n.inputs[0]] + e_w
            b = g.tensors[n.inputs[2]].data.astype(np.float64)  # type: ignore[union-attr]
            qb = round_half_away_array(b * 2.0 ** (-e_b))
            # int8 kernels accumulate in int32 (a bias past that range is saturated), int16 in int64
            qb = (
                np.clip(qb, -(2**31), 2**31 - 1).astype(np.int32)
                if bits == 8
                else qb.astype(np.int64)
            )
            b_name = g.add_const(f"{n.inputs[2]}/q", const_tensor("b", qb))
            g.tensors[b_name].qparams = QParams(exp=e_b)
            ins.append(b_name)
        n.inputs = ins
    for name, t in list(g.tensors.items()):
        if t.dtype != "f32" or name not in exps:
            continue
        qp = QParams(exp=exps[name])
        if t.is_const:
            q = quantize_pow2(t.data, exps[name], dt).astype(np.int8 if bits == 8 else np.int16)  # type: ignore[arg-type]
            g.tensors[name] = Tensor(name, t.shape, dt, t.layout, q, qp)
        else:
            g.tensors[name] = t.copy(dtype=dt, qparams=qp)
    g.meta["quant"] = f"seedot{bits}"
    g.prune_tensors()
    return g


def search_seedot(
    graph: Graph,
    samples: list[dict[str, np.ndarray]],
    val: list[dict[str, np.ndarray]],
    bits: str,
    progress: bool = False,
) -> tuple[Graph, dict[str, object]]:
    """Quantize at each global shift, keep the one with the best output SQNR on `val`."""

    n_bits = int(bits) if bits in ("8", "16") else 16
    ranges = observe_ranges(graph, samples, progress=progress)
    states = rnnpool_state_ranges(graph, samples)
    tried: dict[int, float | None] = {}
    best: tuple[float, int, Graph] | None = None
    for shift in _steps(SHIFTS, progress, f"seedot int{n_bits}: searching the global shift"):
        q = quantize_seedot(graph, ranges, n_bits, shift, states)
        sqnr = evaluate(graph, q, val)["sqnr_db"]
        tried[shift] = sqnr  # type: ignore[assignment]
        score = float("inf") if sqnr is None else float(sqnr)  # type: ignore[arg-type]
        if best is None or score > best[0]:
            best = (score, shift, q)
    assert best is not None
    details = {
        "scheme": f"seedot{n_bits}",
        "bits": n_bits,
        "global_shift": best[1],
        "search_sqnr_db": {str(k): v for k, v in tried.items()},
        "calibration_samples": len(samples),
    }
    return best[2], details


def _steps(items: tuple[int, ...], show: bool, label: str):  # type: ignore[no-untyped-def]

    return _progress(list(items), label, show)
