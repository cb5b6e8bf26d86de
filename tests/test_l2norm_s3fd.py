"""S3FD-style detection heads as EdgeML's RNNPool face detectors have them: L2Norm (x / (||x|| +
eps) * a learned per-channel scale; the Pow / ReduceSum / Sqrt / Add / Div / Mul pattern,
ReduceL2 and LpNormalization each folded to one op; TFLite L2_NORMALIZATION) and max-out
background classes (ReduceMax over a channel slice, then Concat). Float vs onnxruntime, int8
and SeeDot C bit-exact host ↔ QEMU ↔ interpreter, the TFLite forms bit-exact with tf.lite, and a
face detector with these heads compiled for the F439 within 192 KB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from c_oracles import assert_c_bit_exact, assert_tflite_bit_exact, compile_for_tests
from helpers import ort_run, rel_err, tvc, tvc_float
from onnx import helper
from onnx_builder import model, save
from tvc_models.export import export
from tvc_models.face import L2Norm, S3FDFaceDetector, face_images
from tvc_models.keras_zoo import full_int8

from compiler.frontend.loader import load_model
from compiler.frontend.torch import export_onnx
from compiler.passes.manager import run_passes


class Normed(torch.nn.Module):
    """conv → L2Norm (EdgeML's module) → a max-out head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = L2Norm(8, 10.0)
        with torch.no_grad():
            self.norm.weight.copy_(torch.linspace(4.0, 12.0, 8))
        self.head = torch.nn.Conv2d(8, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.head(self.norm(self.conv(x)))
        bg, _ = torch.max(c[:, 0:3], dim=1, keepdim=True)
        return torch.cat((bg, c[:, 3:]), dim=1)


@pytest.fixture(scope="module")
def normed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return export(Normed().eval(), (1, 3, 10, 12), tmp_path_factory.mktemp("l2") / "n.onnx")


def test_edgeml_pattern_folds_to_one_op_and_matches_onnxruntime(normed: Path) -> None:
    frontend = load_model(normed)
    ops = [n.op for n in frontend.nodes]
    assert {"pow", "reduce_sum", "sqrt", "div"} <= set(ops)  # the exporter's pattern
    x = np.random.default_rng(0).normal(0, 1, (1, 3, 10, 12)).astype(np.float32)
    ref = ort_run(normed, {"x": x})[0]
    for stage in ("canonicalize", "layout"):
        g = run_passes(frontend, stage)
        ops = [n.op for n in g.nodes]
        assert ops.count("l2_norm") == 1 and not {"pow", "sqrt", "div"} & set(ops), ops
        assert "reduce_max" in ops
        assert rel_err(tvc_float(g, {"x": x})[0], ref) <= 1e-5


@pytest.mark.parametrize("form", ["reduce_l2", "lp_normalization"])
def test_other_onnx_forms_fold_too(tmp_path: Path, form: str) -> None:
    w = np.linspace(0.5, 2.0, 6).astype(np.float32).reshape(1, 6, 1, 1)
    if form == "reduce_l2":
        nodes = [
            helper.make_node("ReduceL2", ["x"], ["n"], axes=[1], keepdims=1),
            helper.make_node("Add", ["n", "eps"], ["ne"]),
            helper.make_node("Div", ["x", "ne"], ["d"]),
            helper.make_node("Mul", ["d", "w"], ["y"]),
        ]
        inits = {"eps": np.array(1e-10, np.float32), "w": w}
    else:
        nodes = [helper.make_node("LpNormalization", ["x"], ["y"], axis=1, p=2)]
        inits = {}
    path = save(model(nodes, {"x": [1, 6, 4, 5]}, ["y"], inits), tmp_path / f"{form}.onnx")
    g = run_passes(load_model(path), "layout")
    assert [n.op for n in g.nodes] == ["l2_norm"]
    assert len(g.nodes[0].inputs) == (2 if form == "reduce_l2" else 1)
    x = np.random.default_rng(1).normal(0, 1, (1, 6, 4, 5)).astype(np.float32)
    assert rel_err(tvc_float(g, {"x": x})[0], ort_run(path, {"x": x})[0]) <= 1e-5


@pytest.mark.parametrize(("quant", "bits"), [("affine", "8"), ("seedot", "8"), ("seedot", "16")])
def test_l2norm_and_maxout_c_is_bit_exact(
    normed: Path, tmp_path: Path, quant: str, bits: str
) -> None:
    out = compile_for_tests(normed, tmp_path / "out", quant=quant, bits=bits)
    graph = assert_c_bit_exact(out)
    assert {"l2_norm", "reduce_max"} <= {n.op for n in graph.nodes}


def _keras_l2norm() -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(x)
    top = keras.layers.Lambda(lambda t: tf.reduce_max(t, axis=-1, keepdims=True))(x)
    m = keras.Model(inp, keras.layers.Concatenate()([top, x]))
    return full_int8(m, seed=0, calib=32)


def test_tflite_l2_normalization_is_bit_exact_with_tflite(tmp_path: Path) -> None:
    blob = _keras_l2norm()
    path = tmp_path / "l2.tflite"
    path.write_bytes(blob)
    out = compile_for_tests(path, tmp_path / "out", calib=None)
    graph = assert_c_bit_exact(out)
    assert {"l2_norm", "reduce_max"} <= {n.op for n in graph.nodes}
    assert_tflite_bit_exact(blob, graph, 32, 4)


def test_s3fd_face_detector_fits_the_f439_and_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = S3FDFaceDetector().eval()
    with torch.no_grad():
        m.norm1.weight.copy_(torch.linspace(6, 14, 32))
    path = export_onnx(m, torch.zeros(1, 1, 240, 320), tmp_path / "s3fd.onnx")
    x, _ = face_images(9, seed=3)
    np.save(tmp_path / "calib.npy", x[:8])
    g = run_passes(load_model(path), "layout")
    ref = ort_run(path, {g.inputs[0]: x[8:]})
    for ours, theirs in zip(tvc_float(g, {g.inputs[0]: x[8:]}), ref, strict=True):
        assert rel_err(ours, theirs) <= 1e-5
    out = tmp_path / "out"
    r = tvc("compile", path, "--target", "stm32f439", "--ram", "192k",
            "--calib", tmp_path / "calib.npy", "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    graph = assert_c_bit_exact(out, n=2)
    assert {"l2_norm", "reduce_max", "conv_rnnpool"} <= {n.op for n in graph.nodes}


def test_a_pow_outside_the_pattern_is_a_clear_error(tmp_path: Path) -> None:
    nodes = [helper.make_node("Pow", ["x", "e"], ["y"])]
    path = save(
        model(nodes, {"x": [1, 2, 3, 3]}, ["y"], {"e": np.array(3.0, np.float32)}),
        tmp_path / "pow.onnx",
    )
    r = tvc("compile", path, "--target", "stm32f439", "--calib", "random", "--out", tmp_path / "o")
    assert r.returncode == 3, r.stderr
    assert "pow" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()
