"""RNNPool's fixed point, shared by both quantization schemes: int16 weights and states, Q11
biases, the state formats from calibration (the largest |h| each RNN reaches)."""

from __future__ import annotations

import numpy as np

from compiler.ir.boundary import to_graph_layout
from compiler.ir.graph import Graph, Node
from compiler.ir.interpreter import run_graph
from compiler.ir.ops.rnnpool import PRE_BITS, PRE_CLAMP, rnnpool_nhwc
from compiler.ir.tensor import QParams, const_tensor
from compiler.numerics.fixedpoint import INT32_MAX
from compiler.numerics.pow2 import exp_for, quantize_pow2


def rnnpool_state_ranges(
    graph: Graph, samples: list[dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """Largest |h| of each RNNPool node's two RNNs over the samples (the int16 state formats)."""

    pools = {n.inputs[0]: n for n in graph.nodes if n.op == "rnnpool"}
    stats: dict[str, dict[str, float]] = {n.name or n.outputs[0]: {} for n in pools.values()}

    def see(name: str, v: np.ndarray) -> None:
        n = pools.get(name)
        if n is None:
            return
        x = v if n.attrs["layout"] == "NHWC" else v.transpose(0, 2, 3, 1)
        ws = [graph.tensors[i].data for i in n.inputs[1:]]
        rnnpool_nhwc(x, ws, n.attrs, stats[n.name or n.outputs[0]])  # type: ignore[arg-type]

    if pools:
        for feeds in samples:
            g_feeds = to_graph_layout(graph, feeds)
            for name, v in g_feeds.items():
                see(name, v)
            run_graph(
                graph,
                g_feeds,
                lambda n, outs: [see(o, v) for o, v in zip(n.outputs, outs, strict=True)],
            )
    return stats


def quantize_rnnpool_weights(
    g: Graph,
    n: Node,
    states: dict[str, dict[str, float]],
    x_max: int,
    in_scale: float | None = None,
) -> None:
    """int16 weights at their own exponents, Q11 int32 biases, int16 states with one bit of
    headroom over calibration, whatever the tensors around the node are (`x_max`: the largest
    |x - zero point| of the input, which bounds W1's row norms). For an affine input
    (`in_scale`) W1 absorbs the scale: W1 (x - zp) is then a power-of-two quantity, and one
    rounding shift brings it to Q11 as for every other product sum."""

    st = states.get(n.name or n.outputs[0], {})
    ins = [n.inputs[0]]
    for k, name in enumerate(n.inputs[1:]):
        w = g.tensors[name].data.astype(np.float64)  # type: ignore[union-attr]
        if k == 0 and in_scale is not None:
            w = w * in_scale
        if k in (2, 3, 6, 7):  # biases
            q = np.clip(quantize_pow2(w, -PRE_BITS, "i32"), -PRE_CLAMP, PRE_CLAMP - 1)
            e, q = -PRE_BITS, q.astype(np.int32)
        else:  # int32 accumulation must be exact: row L1 norm x input bound < 2^31
            bound = x_max if k == 0 else 32768
            e = exp_for(float(np.abs(w).max()), 16)
            q = np.clip(quantize_pow2(w, e, "i16"), -32767, 32767)
            while int(np.abs(q).sum(axis=1).max()) * bound > INT32_MAX:
                e += 1
                q = np.clip(quantize_pow2(w, e, "i16"), -32767, 32767)
            q = q.astype(np.int16)
        new = g.add_const(f"{name}/q", const_tensor("w", q))
        g.tensors[new].qparams = QParams(exp=e)
        ins.append(new)
    n.inputs = ins
    n.attrs["state_exps"] = [exp_for(st.get(k, 1.0), 16) + 1 for k in ("h1", "h2")]
