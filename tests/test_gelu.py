"""GELU: ONNX Gelu (opset 20, both `approximate` modes), the Erf pattern nn.GELU exports before
opset 20 (folded to one op), TFLite GELU; float vs onnxruntime, int8/int16 tables bit-exact
host ↔ QEMU ↔ interpreter, and the TFLite forms bit-exact with tf.lite's reference kernels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from c_oracles import assert_c_bit_exact, assert_tflite_bit_exact, compile_for_tests
from helpers import ort_run, rel_err, tvc_float
from onnx import helper
from onnx_builder import model, save
from tvc_models.export import export
from tvc_models.keras_zoo import full_int8

from compiler.frontend.loader import load_model
from compiler.ir.ops.activation import gelu_f32
from compiler.passes.manager import run_passes


def _gelu_onnx(tmp: Path, approximate: str) -> Path:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Gelu", ["c"], ["g"], approximate=approximate),
        helper.make_node("Conv", ["g", "w2"], ["y"]),
    ]
    inits = {
        "w1": rng.normal(0, 0.6, (6, 3, 3, 3)).astype(np.float32),
        "b1": rng.normal(0, 0.5, 6).astype(np.float32),
        "w2": rng.normal(0, 0.5, (4, 6, 1, 1)).astype(np.float32),
    }
    m = model(nodes, {"x": [1, 3, 10, 12]}, ["y"], inits, opset=20)
    return save(m, tmp / f"gelu_{approximate}.onnx")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_onnx_gelu_matches_onnxruntime(tmp_path: Path, approximate: str) -> None:
    path = _gelu_onnx(tmp_path, approximate)
    x = np.random.default_rng(1).normal(0, 1.5, (1, 3, 10, 12)).astype(np.float32)
    ref = ort_run(path, {"x": x})[0]
    for stage in ("frontend", "layout"):
        g = run_passes(load_model(path), stage)
        assert [n.op for n in g.nodes].count("gelu") == 1
        assert rel_err(tvc_float(g, {"x": x})[0], ref) <= 1e-5


def test_gelu_float_function_is_gelu() -> None:
    """Both forms against float64 math, over the range where int8 tables sample it."""
    from math import erf, pi, sqrt, tanh

    v = np.linspace(-8, 8, 4001).astype(np.float32)
    exact = np.array([0.5 * t * (1 + erf(t / sqrt(2))) for t in v.astype(np.float64)])
    approx = np.array(
        [0.5 * t * (1 + tanh(sqrt(2 / pi) * (t + 0.044715 * t**3))) for t in v.astype(np.float64)]
    )
    assert np.abs(gelu_f32(v, "none") - exact).max() <= 1e-6
    assert np.abs(gelu_f32(v, "tanh") - approx).max() <= 1e-6
    assert np.abs(gelu_f32(v, "none") - approx).max() > 1e-4  # the two forms differ


class TorchGelu(torch.nn.Module):
    def __init__(self, approximate: str) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act = torch.nn.GELU(approximate=approximate)
        self.c2 = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.act(self.c1(x)))


def test_erf_pattern_of_older_opsets_folds_to_one_op(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = export(TorchGelu("none"), (1, 3, 12, 12), tmp_path / "g17.onnx", "torchscript", 17)
    frontend = load_model(path)
    assert "erf" in [n.op for n in frontend.nodes]  # the exporter wrote the pattern
    g = run_passes(frontend, "canonicalize")
    ops = [n.op for n in g.nodes]
    assert ops.count("gelu") == 1 and "erf" not in ops and "mul" not in ops, ops
    x = np.random.default_rng(2).normal(0, 1, (1, 3, 12, 12)).astype(np.float32)
    assert rel_err(tvc_float(g, {"x": x})[0], ort_run(path, {"x": x})[0]) <= 1e-5


@pytest.mark.parametrize(("approximate", "quant", "bits"), [
    ("none", "affine", "8"), ("tanh", "affine", "8"), ("none", "seedot", "16"),
])  # fmt: skip
def test_gelu_c_is_bit_exact_host_qemu_interpreter(
    tmp_path: Path, approximate: str, quant: str, bits: str
) -> None:
    path = _gelu_onnx(tmp_path, approximate)
    out = compile_for_tests(path, tmp_path / "out", quant=quant, bits=bits)
    graph = assert_c_bit_exact(out)
    # one gelu per layer (and per band, where the first layers run band by band)
    bands = max(1, [n.op for n in graph.nodes].count("row_concat") and _bands(graph))
    assert [n.op for n in graph.nodes].count("gelu") == bands
    assert "erf" not in {n.op for n in graph.nodes}


def _bands(graph) -> int:  # type: ignore[no-untyped-def]
    """Bands of the stage that holds the gelu (its row_concat's inputs)."""
    return len(next(n for n in graph.nodes if n.op == "row_concat").inputs)


def _keras_gelu(approximate: bool) -> bytes:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same")(inp)
    x = keras.layers.Activation(lambda t: keras.activations.gelu(t, approximate=approximate))(x)
    m = keras.Model(inp, keras.layers.Conv2D(4, 1)(x))
    return full_int8(m, seed=0, calib=32)


@pytest.mark.parametrize("approximate", [False, True])
def test_tflite_gelu_is_bit_exact_with_tflite(tmp_path: Path, approximate: bool) -> None:
    blob = _keras_gelu(approximate)
    path = tmp_path / "gelu.tflite"
    path.write_bytes(blob)
    out = compile_for_tests(path, tmp_path / "out", calib=None)
    graph = assert_c_bit_exact(out, qemu=False)
    gelus = [n for n in graph.nodes if n.op == "gelu"]
    assert {n.attrs["approximate"] for n in gelus} == {"tanh" if approximate else "none"}
    assert len(gelus) == max(1, [n.op for n in graph.nodes].count("row_concat") and _bands(graph))
    assert_tflite_bit_exact(blob, graph, 32, 11)
