"""canonicalize: constant-fold, drop no-ops, fold BatchNorm, GELU and L2Norm patterns and zero
pads into convolutions, fuse activations, lower means, DCE.

The sub-passes feed each other (folding glue exposes no-op reshapes, removing Dropout exposes
conv→relu pairs), so the sequence repeats until the graph stops shrinking.
"""

from __future__ import annotations

from compiler.ir.graph import Graph
from compiler.passes.dce import dce
from compiler.passes.fold_batchnorm import fold_batchnorm
from compiler.passes.fold_constants import fold_constants
from compiler.passes.fold_gelu import fold_gelu
from compiler.passes.fold_l2norm import fold_l2norm
from compiler.passes.fold_pad import fold_pad
from compiler.passes.fuse_activation import fuse_activation
from compiler.passes.lower_reduce_mean import lower_reduce_mean
from compiler.passes.remove_noops import remove_noops

STEPS = (
    fold_constants,
    dce,
    remove_noops,
    fold_batchnorm,
    fold_gelu,
    fold_l2norm,
    fold_pad,
    fuse_activation,
    lower_reduce_mean,
    dce,
)


def canonicalize(graph: Graph) -> Graph:
    g = graph
    for _ in range(8):
        before = len(g.nodes)
        for step in STEPS:
            g = step(g)
        if len(g.nodes) == before:
            break
    return g
