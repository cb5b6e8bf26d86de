"""Open whatever the user hands `tvc`: ONNX, TFLite or IR text, by content, not by name."""

from __future__ import annotations

from pathlib import Path

from compiler.errors import UsageError
from compiler.frontend.onnx import load_onnx
from compiler.frontend.tflite import load_tflite
from compiler.ir.graph import Graph
from compiler.ir.text import parse_graph
from compiler.outdir import records_dir


def load_model(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        irs = sorted(records_dir(path).glob("*.tvcir"))
        if len(irs) != 1:
            raise UsageError(
                f"{path}: is a directory without one compiled model (*.tvcir)",
                "give a model file (.onnx, .tflite, IR text) or a tvc compile output directory",
            )
        path = irs[0]
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file; give a model file (.onnx, .tflite, IR text)")
    if path.stat().st_size == 0:
        raise UsageError(f"{path}: is empty, not a model (.onnx, .tflite or IR text)")
    with path.open("rb") as f:
        head = f.read(64)
    if head[4:8] == b"TFL3":
        return load_tflite(path)
    if head.lstrip().startswith(b"graph "):
        return parse_graph(path.read_text(), str(path))
    return load_onnx(path, input_shapes)
