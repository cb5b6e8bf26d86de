"""Reference interpreter: runs any float graph with each op's numpy reference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.errors import UsageError
from compiler.ir.graph import Graph, Node
from compiler.ir.registry import get_op
from compiler.ir.tensor import DTYPES, QUANTIZED_DTYPES, Tensor


def is_integer_node(ins: list[Tensor], outs: list[Tensor]) -> bool:
    """Quantized nodes (int8/int16 data in or out) run their integer reference."""
    return any(t.dtype in QUANTIZED_DTYPES for t in [*ins[:1], *outs])


def check_feeds(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inputs in the graph's own shapes and dtypes, or a usage error that says what is wrong."""
    out = {}
    for name in graph.inputs:
        if name not in feeds:
            raise UsageError(f"no value for model input {name!r} (inputs: {graph.inputs})")
        t = graph.tensors[name]
        a = np.asarray(feeds[name])
        if tuple(a.shape) != t.shape:
            raise UsageError(
                f"input {name!r} has shape {list(a.shape)}, model wants {list(t.shape)}"
            )
        out[name] = a.astype(DTYPES[t.dtype], copy=False)
    return out


def run_graph(
    graph: Graph,
    feeds: dict[str, np.ndarray],
    observe: Callable[[Node, list[np.ndarray]], None] | None = None,
) -> dict[str, np.ndarray]:
    """Outputs by name; `observe(node, outputs)` sees every intermediate (calibration, SQNR)."""
    env: dict[str, np.ndarray] = {k: t.data for k, t in graph.tensors.items() if t.data is not None}
    env.update(check_feeds(graph, feeds))
    for node in graph.nodes:
        ins = [graph.tensors[i] for i in node.inputs]
        outs_t = [graph.tensors[o] for o in node.outputs]
        d = get_op(node.op)
        args = [env[i] for i in node.inputs]
        if is_integer_node(ins, outs_t):
            if d.run_int is None:
                raise UsageError(f"{node.op} node {node.label!r} has no integer implementation")
            outs = d.run_int(node, args, ins, outs_t)
        else:
            outs = d.run(node, args)
        for name, value in zip(node.outputs, outs, strict=True):
            want = graph.tensors[name]
            if tuple(value.shape) != want.shape:  # a reference bug, never a user error
                got, says = list(value.shape), list(want.shape)
                raise AssertionError(f"{node.op} {node.label}: produced {got}, IR says {says}")
            env[name] = value
        if observe is not None:
            observe(node, outs)
    return {o: env[o] for o in graph.outputs}
