"""Oracles and comparisons the tests share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from compiler.ir.boundary import from_graph_layout, to_graph_layout
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph

TVC = str(Path(sys.executable).parent / "tvc")


def tvc(
    *args: str | Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as users run it: exit codes and stderr are the contract."""
    return subprocess.run(
        [TVC, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def compile_example(out: Path, target: str, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    """`tvc compile` on the bundled example as demo.sh runs it (its calibration and validation
    images, their normalization) for `target`, into `out`."""
    return tvc(
        "compile",
        EXAMPLES / "mask_cnn.onnx",
        "--target",
        target,
        "--calib",
        EXAMPLES / "mask_calib",
        "--val",
        EXAMPLES / "mask_val",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.5,0.5,0.5",
        "--out",
        out,
        *extra,
    )


def ort_run(path: Path | str | bytes, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    src = path if isinstance(path, bytes) else str(path)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def tvc_float(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run the graph with model-layout arrays in and out, as `tvc run` does."""
    outs = from_graph_layout(graph, run_graph(graph, to_graph_layout(graph, feeds)))
    return [outs[o] for o in graph.outputs]


def rel_err(ours: np.ndarray, ref: np.ndarray) -> float:
    """Max abs difference relative to the reference output's max magnitude."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(ours.astype(np.float64) - ref).max() / scale)
