"""input_rows: the graph inputs arrive row by row from the caller (`tvc compile --input-rows`).

A camera that delivers lines (a DCMI line interrupt, a sensor with a FIFO such as the OV7670's
AL422B or an ArduCAM read over SPI) need not store the frame at all if the model asks for rows
in order. This pass puts one `input_rows` node in front of each input, reading all its rows, and
lets every layer read that node's output instead. Layer by layer that is the frame copied into
the arena through the caller's reader; the patch search (passes/patch) can then stream that
node with the layers after it, so each band asks for just its new rows, each row once and in
order, and the frame never exists whole in RAM.
"""

from __future__ import annotations

from compiler.errors import UsageError
from compiler.ir.graph import Graph
from compiler.ir.registry import make_node


def read_inputs_by_rows(graph: Graph) -> Graph:
    """Each graph input read through one input_rows node (a pure Graph -> Graph rewrite).
    Only batch-1 NHWC images qualify: a row is then W x C contiguous elements."""
    g = graph.copy()
    front = []
    for x in g.inputs:
        t = g.tensors[x]
        if len(t.shape) != 4 or t.shape[0] != 1 or t.layout != "NHWC":
            raise UsageError(
                f"--input-rows: input {x!r} is {t.layout} {list(t.shape)}; rows can be handed "
                "over for batch-1 images only ([1, H, W, C] after layout)",
                "drop --input-rows for this model; the caller then passes whole inputs",
            )
        if x in g.outputs:
            raise UsageError(
                f"--input-rows: input {x!r} is also a graph output, so it must exist whole",
                "drop --input-rows for this model",
            )
        rows = g.fresh_name(f"{x}.rows")
        g.tensors[rows] = t.copy(name=rows)
        for n in g.nodes:
            n.inputs = [rows if i == x else i for i in n.inputs]
        front.append(make_node("input_rows", [x], [rows], rows, lo=0, hi=t.shape[1]))
    g.nodes = front + g.nodes
    return g
