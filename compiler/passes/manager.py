"""The pass pipeline: named stages in order, the verifier after each."""

from __future__ import annotations

from collections.abc import Callable

from compiler.ir.graph import Graph
from compiler.ir.verify import verify
from compiler.passes.canonicalize import canonicalize
from compiler.passes.layout import to_nhwc

Pass = Callable[[Graph], Graph]

PIPELINE: tuple[tuple[str, Pass], ...] = (
    ("canonicalize", canonicalize),
    ("layout", to_nhwc),
)
STAGES = ("frontend", *(name for name, _ in PIPELINE))


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
    return graph
