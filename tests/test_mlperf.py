"""The MLPerf Tiny reference int8 models (read from MLPERF_TINY_ROOT, a checkout of
mlcommons/tiny kept outside this repository): tvc's C, after every compile-time optimization,
is bit-exact with TFLite Micro's Python interpreter on 32 random inputs, on the host and on the
Cortex-M4 twin. The instruction counts live in benchmarks/bench_mlperf.py, not here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.tools.boards import get_board
from compiler.tools.host import build_host, run_host
from compiler.tools.qemu import run_qemu

ROOT = os.environ.get("MLPERF_TINY_ROOT")
pytestmark = pytest.mark.skipif(
    not ROOT, reason="MLPERF_TINY_ROOT is not set (a mlcommons/tiny checkout outside the repo)"
)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bench_mlperf import MODELS, tflm_outputs  # noqa: E402

# --input-rows: the image models streamed from a row reader (the runners' readers hand over
# the rows of each random input), peaks (arena + I/O) measured this way: issue 13's note
ROWS_PEAK = {"VWW": 26_018, "IC": 17_034, "KWS": 5_532}


@pytest.mark.parametrize(
    "name,rows",
    [(n, False) for n in sorted(MODELS)] + [(n, True) for n in sorted(ROWS_PEAK)],
)
def test_mlperf_model_is_bit_exact_with_tflite_micro(tmp_path, name: str, rows: bool) -> None:
    path = Path(ROOT or "") / MODELS[name][0]
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    out, report = compile_model(
        CompileOptions(
            model=str(path), target="mps2-an386", out=str(tmp_path / name), input_rows=rows
        )
    )
    if rows:
        ram = report["ram"]
        assert ram["input_rows"] and ram["patch"]["peak_bytes"] <= ROWS_PEAK[name], ram
        assert ram["patch"]["stages"][0]["mode"] == "stream"
    graph = load_model(out)
    x_name, y_name = graph.inputs[0], graph.outputs[0]
    rng = np.random.default_rng(32)
    xs = [rng.integers(-128, 128, graph.tensors[x_name].shape).astype(np.int8) for _ in range(32)]
    ref = tflm_outputs(path.read_bytes(), xs)
    samples = [{x_name: x} for x in xs]
    host = run_host(build_host(out, graph), graph, samples)
    twin = run_qemu(out, graph, get_board("mps2-an386"), samples)[0]
    for k, (h, q, r) in enumerate(zip(host, twin, ref, strict=True)):
        np.testing.assert_array_equal(h[y_name].reshape(r.shape), r, err_msg=f"host, input {k}")
        np.testing.assert_array_equal(q[y_name].reshape(r.shape), r, err_msg=f"twin, input {k}")
