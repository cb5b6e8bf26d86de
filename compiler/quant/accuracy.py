"""How much the quantized graph loses against the float one, on validation data.

Per-layer SQNR compares every quantized tensor (dequantized) with the float tensor of the same
name, so the report points at the layer where precision goes.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.ir.boundary import quantize_inputs, to_graph_layout
from compiler.ir.graph import Graph, Node
from compiler.ir.interpreter import run_graph
from compiler.ir.ops.quant_ops import dequantize_int


def sqnr_db(signal: float, noise: float) -> float:
    if math.isnan(signal) or math.isnan(noise):
        return math.nan
    if noise == 0.0:
        return math.inf
    if math.isinf(noise):
        return -math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def _dequant(graph: Graph, name: str, v: np.ndarray) -> np.ndarray:
    t = graph.tensors[name]
    if t.dtype in ("i8", "i16") and t.qparams is not None:
        return dequantize_int(None, [v], [t], [])[0]  # type: ignore[arg-type]
    return v.astype(np.float64)


def evaluate(
    fgraph: Graph, qgraph: Graph, samples: list[dict[str, np.ndarray]]
) -> dict[str, object]:
    """top-1 agreement (classification outputs), output SQNR, per-layer SQNR, in one pass."""
    sig: dict[str, float] = {}
    noise: dict[str, float] = {}
    agree = total = 0
    fvals: dict[str, np.ndarray] = {}  # float values of the sample being compared

    def keep(node: Node, outs: list[np.ndarray]) -> None:
        fvals.update(zip(node.outputs, outs, strict=True))

    def compare(node: Node, outs: list[np.ndarray]) -> None:
        for name, v in zip(node.outputs, outs, strict=True):
            ref = fvals.get(name)
            if ref is None or ref.shape != v.shape:
                continue
            d = _dequant(qgraph, name, v)
            sig[name] = sig.get(name, 0.0) + float((ref.astype(np.float64) ** 2).sum())
            noise[name] = noise.get(name, 0.0) + float(((ref - d) ** 2).sum())

    for feeds in samples:
        g_feeds = to_graph_layout(fgraph, feeds)
        fvals.clear()
        fout = run_graph(fgraph, g_feeds, keep)
        qout = run_graph(qgraph, quantize_inputs(qgraph, g_feeds), compare)
        for o in fgraph.outputs:
            if len(fout[o].shape) == 2 and fout[o].shape[0] == 1 and fout[o].shape[1] > 1:
                total += 1
                agree += int(np.argmax(fout[o]) == np.argmax(_dequant(qgraph, o, qout[o])))
    outs_sig = sum(sig.get(o, 0.0) for o in fgraph.outputs)
    outs_noise = sum(noise.get(o, 0.0) for o in fgraph.outputs)
    return {
        "samples": len(samples),
        "top1_agreement": (agree / total) if total else None,
        "sqnr_db": _finite(sqnr_db(outs_sig, outs_noise)),
        "outputs": {
            o: _finite(sqnr_db(sig.get(o, 0.0), noise.get(o, 0.0))) for o in fgraph.outputs
        },
        "per_tensor_sqnr_db": {k: _finite(sqnr_db(sig[k], noise[k])) for k in sig},
    }


def _finite(x: float) -> float | None:
    """JSON has no infinity: a lossless tensor reports null SQNR (no noise at all)."""
    return None if math.isinf(x) else round(x, 2)
