"""Bilinear resize: ONNX Resize mode="linear" in every coordinate mode tvc supports (float vs
onnxruntime), TFLite RESIZE_BILINEAR (int8 bit-exact with tf.lite's reference kernels), an
FPN / segmentation-style model with F.interpolate(mode="bilinear") and a Keras model with
UpSampling2D(interpolation="bilinear"); int8 and SeeDot int16 C bit-exact with the interpreter
on the host and the M4 twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from c_oracles import assert_c_bit_exact, assert_tflite_bit_exact, compile_for_tests
from helpers import ort_run, rel_err, tvc_float
from onnx import helper
from onnx_builder import model, save
from tvc_models.export import export
from tvc_models.keras_zoo import full_int8

from compiler.frontend.loader import load_model
from compiler.passes.manager import run_passes

CASES = [
    ("half_pixel", [1.0, 1.0, 2.0, 2.0], None),
    ("pytorch_half_pixel", None, [1, 3, 13, 7]),
    ("align_corners", None, [1, 3, 11, 16]),
    ("asymmetric", [1.0, 1.0, 1.5, 0.5], None),
    ("half_pixel", None, [1, 3, 4, 3]),  # downscaling
]


def _resize_onnx(tmp: Path, k: int, coord: str, scales, sizes) -> Path:  # type: ignore[no-untyped-def]
    inputs = ["x", "", "s" if scales else "", "z" if sizes else ""]
    while inputs[-1] == "":
        inputs.pop()
    inits: dict[str, np.ndarray] = {}
    if scales:
        inits["s"] = np.array(scales, np.float32)
    if sizes:
        inits["z"] = np.array(sizes, np.int64)
    node = helper.make_node(
        "Resize", inputs, ["y"], mode="linear", coordinate_transformation_mode=coord
    )
    return save(model([node], {"x": [1, 3, 6, 8]}, ["y"], inits, opset=13), tmp / f"r{k}.onnx")


@pytest.mark.parametrize(("k", "case"), list(enumerate(CASES)), ids=[c[0] for c in CASES])
def test_onnx_linear_resize_matches_onnxruntime(tmp_path: Path, k: int, case) -> None:  # type: ignore[no-untyped-def]
    path = _resize_onnx(tmp_path, k, *case)
    x = np.random.default_rng(k).normal(0, 1, (1, 3, 6, 8)).astype(np.float32)
    ref = ort_run(path, {"x": x})[0]
    for stage in ("frontend", "layout"):
        g = run_passes(load_model(path), stage)
        assert [n.op for n in g.nodes] == ["resize_bilinear"]
        ours = tvc_float(g, {"x": x})[0]
        assert ours.shape == ref.shape and rel_err(ours, ref) <= 1e-5, (stage, case)


class TinySegmenter(torch.nn.Module):
    """Encoder at 1/2 and 1/4, a top-down path with bilinear upsampling, a full-size mask."""

    def __init__(self) -> None:
        super().__init__()
        self.e1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU())
        self.e2 = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, 2, 1), torch.nn.ReLU())
        self.lat = torch.nn.Conv2d(8, 16, 1)
        self.head = torch.nn.Conv2d(16, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.e1(x)
        f2 = self.e2(f1)
        up = F.interpolate(f2, scale_factor=2, mode="bilinear", align_corners=False)
        y = self.head(torch.relu(self.lat(f1) + up))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=True)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("seg")
    return export(TinySegmenter().eval(), (1, 3, 24, 32), d / "seg.onnx")


def test_interpolate_model_matches_onnxruntime(segmenter: Path) -> None:
    x = np.random.default_rng(3).normal(0, 1, (1, 3, 24, 32)).astype(np.float32)
    g = run_passes(load_model(segmenter), "layout")
    assert [n.op for n in g.nodes].count("resize_bilinear") == 2
    assert {n.attrs["coord"] for n in g.nodes if n.op == "resize_bilinear"} >= {"align_corners"}
    assert rel_err(tvc_float(g, {"x": x})[0], ort_run(segmenter, {"x": x})[0]) <= 1e-5


@pytest.mark.parametrize(("quant", "bits"), [("affine", "8"), ("seedot", "16")])
def test_interpolate_model_c_is_bit_exact(
    segmenter: Path, tmp_path: Path, quant: str, bits: str
) -> None:
    out = compile_for_tests(segmenter, tmp_path / "out", quant=quant, bits=bits)
    graph = assert_c_bit_exact(out)
    assert [n.op for n in graph.nodes].count("resize_bilinear") == 2


def _keras_bilinear(kind: str) -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 5, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inp)
    if kind == "upsampling":
        x = keras.layers.UpSampling2D(2, interpolation="bilinear")(x)
    else:  # TFLite's other two coordinate conventions, at sizes that are not multiples
        align = kind == "align_corners"
        x = keras.layers.Lambda(
            lambda t: tf.compat.v1.image.resize_bilinear(t, (11, 8), align_corners=align)
        )(x)
    m = keras.Model(inp, keras.layers.Conv2D(2, 1)(x))
    return full_int8(m, seed=0, calib=32)


@pytest.mark.parametrize("kind", ["upsampling", "align_corners", "asymmetric"])
def test_tflite_resize_bilinear_is_bit_exact_with_tflite(tmp_path: Path, kind: str) -> None:
    blob = _keras_bilinear(kind)
    path = tmp_path / "bilinear.tflite"
    path.write_bytes(blob)
    out = compile_for_tests(path, tmp_path / "out", calib=None)
    graph = assert_c_bit_exact(out, qemu=kind == "upsampling")
    coords = [n.attrs["coord"] for n in graph.nodes if n.op == "resize_bilinear"]
    assert coords == [{"upsampling": "half_pixel"}.get(kind, kind)]
    assert_tflite_bit_exact(blob, graph, 32, 12)
