"""The float pass pipeline: named stages in order, the verifier after each (and the stage's own
checks: after layout, no layout-sensitive op is left on NCHW data). The stages that follow
(quantize, schedule, plan) need calibration data and a backend: compiler.compile runs them."""

from __future__ import annotations

from collections.abc import Callable

from compiler.ir.graph import Graph
from compiler.ir.verify import verify, verify_layout
from compiler.passes.canonicalize import canonicalize
from compiler.passes.layout import to_nhwc

Pass = Callable[[Graph], Graph]

PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("canonicalize", canonicalize),
    ("layout", to_nhwc),
)
STAGES = ("frontend", *(name for name, _ in PIPELINE))
STAGE_CHECKS: dict[str, Callable[[Graph], None]] = {"layout": verify_layout}


def run_passes(graph: Graph, after: str = STAGES[-1], check: bool = True) -> Graph:
    """Run the pipeline up to and including stage `after` ("frontend" runs nothing)."""
    if after not in STAGES:
        raise ValueError(f"unknown stage {after!r}; stages: {', '.join(STAGES)}")
    if check:
        verify(graph, "frontend")
    for name, fn in PIPELINE:
        if STAGES.index(name) > STAGES.index(after):
            break
        graph = fn(graph)
        if check:
            verify(graph, name)
            STAGE_CHECKS.get(name, lambda g: None)(graph)
    return graph
