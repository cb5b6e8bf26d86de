"""Quantizing a full-width ResNet-9 (64x64, 6.6 M parameters) with 32 calibration images.

Baseline in the same run: onnxruntime running the same 32 images in float (the least any
calibration must do). Run: ./bench.sh (writes benchmarks/results/quantize.json).
"""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from tvc_models.export import export
from tvc_models.synthetic import mask_images
from tvc_models.zoo import ResNet9, _randomize_bn

from compiler.frontend.onnx import load_onnx
from compiler.passes.manager import run_passes
from compiler.quant.affine import quantize_affine
from compiler.quant.calibrate import observe_ranges
from compiler.quant.seedot import search_seedot


@pytest.fixture(scope="module")
def setup(tmp_path_factory):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = _randomize_bn(ResNet9(widths=(64, 128, 256, 512)), 0)
    path = export(model, (1, 3, 64, 64), tmp_path_factory.mktemp("b") / "resnet9_full.onnx")
    graph = run_passes(load_onnx(path), "layout")
    x, _ = mask_images(48, seed=1)
    calib = [{"x": x[i : i + 1]} for i in range(32)]
    val = [{"x": x[i : i + 1]} for i in range(32, 48)]
    return path, graph, calib, val


def test_baseline_onnxruntime_32_images(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    path, _, calib, _ = setup
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    benchmark.pedantic(lambda: [sess.run(None, s) for s in calib], rounds=3, iterations=1)


def test_affine_calibrate_and_quantize(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    _, graph, calib, _ = setup
    q = benchmark.pedantic(
        lambda: quantize_affine(graph, observe_ranges(graph, calib)), rounds=3, iterations=1
    )
    assert all(t.dtype == "i8" for t in q.tensors.values() if not t.is_const)


def test_seedot16_search(benchmark, setup) -> None:  # type: ignore[no-untyped-def]
    _, graph, calib, val = setup
    q, details = benchmark.pedantic(
        lambda: search_seedot(graph, calib, val, "16"), rounds=1, iterations=1
    )
    assert details["bits"] == 16
