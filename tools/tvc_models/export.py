"""Export a PyTorch model to ONNX with either exporter of torch 2.13, batch dim dynamic."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

EXPORTERS = ("torchscript", "dynamo")


def export(
    model: torch.nn.Module,
    shape: tuple[int, ...],
    path: Path,
    exporter: str = "torchscript",
    opset: int | None = None,
    dynamic_batch: bool = True,
) -> Path:
    """Write `path`; names the input `x` and outputs `y` (or `y0`, `y1`, ... for several)."""
    model = model.eval()
    with torch.no_grad():
        out = model(torch.zeros(shape))
    n_out = len(out) if isinstance(out, (tuple, list)) else 1
    out_names = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            axes = (
                {"x": {0: "batch"}, **{o: {0: "batch"} for o in out_names}}
                if dynamic_batch
                else None
            )
            torch.onnx.export(
                model,
                (torch.zeros(shape),),
                str(path),
                input_names=["x"],
                output_names=out_names,
                dynamic_axes=axes,
                opset_version=opset or 17,
                dynamo=False,
                do_constant_folding=False,  # keep BatchNorm and shape glue for our passes
            )
        elif exporter == "dynamo":
            example = torch.zeros((2, *shape[1:])) if dynamic_batch else torch.zeros(shape)
            dyn = {"x": {0: torch.export.Dim("batch", min=1, max=64)}} if dynamic_batch else None
            prog = torch.onnx.export(
                model,
                (example,),
                input_names=["x"],
                output_names=out_names,
                dynamic_shapes=dyn,
                opset_version=opset,
                dynamo=True,
                verbose=False,
                report=False,
            )
            prog.save(str(path))
        else:
            raise ValueError(f"unknown exporter {exporter!r}")
    return path
