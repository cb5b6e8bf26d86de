"""Fold a zero Pad into the convolution after it: the convolution pads by itself.

Keras' ZeroPadding2D and PyTorch's explicit F.pad before a 'valid' conv export as a Pad node
that writes a whole padded copy of the feature map. The convolution's own padding computes the
same numbers without that copy: padding with real 0 is padding with the zero point, whose
x - zp is 0, in the integer kernels too. Exact in float and int8, and one buffer less.
"""

from __future__ import annotations

from compiler.ir.graph import Graph

SPATIAL = {"NCHW": (2, 3), "NHWC": (1, 2)}


def fold_pad(graph: Graph) -> Graph:
    g = graph.copy()
    uses = g.consumers()
    producers = g.producers()
    for conv in [n for n in g.nodes if n.op == "conv2d"]:
        pad = producers.get(conv.inputs[0])
        if pad is None or pad.op != "pad" or len(pad.inputs) != 1:
            continue
        if pad.attrs["mode"] != "constant" or float(pad.attrs["value"]) != 0.0:  # type: ignore[arg-type]
            continue
        mid = pad.outputs[0]
        if mid in g.outputs or len(uses.get(mid, [])) != 1:
            continue
        pads = list(pad.attrs["pads"])  # type: ignore[call-overload]
        if len(pads) != 8:
            continue
        h, w = SPATIAL[str(conv.attrs["layout"])]
        if any(pads[i] or pads[i + 4] for i in range(4) if i not in (h, w)):
            continue  # padding of the batch or the channels: not the conv's
        pt, pl, pb, pr = conv.attrs["pad"]  # type: ignore[misc]
        conv.attrs["pad"] = [pt + pads[h], pl + pads[w], pb + pads[h + 4], pr + pads[w + 4]]
        conv.inputs[0] = pad.inputs[0]
        g.nodes.remove(pad)
        del g.tensors[mid]
    return g
