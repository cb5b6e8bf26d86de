"""A zero Pad before a convolution becomes the convolution's own padding (passes/fold_pad):
no padded copy of the feature map, the same numbers in float (onnxruntime) and int8 (tf.lite's
reference kernels, and the C on the host and the Cortex-M4 twin)."""

from __future__ import annotations

import numpy as np
import torch
from c_oracles import assert_c_bit_exact, compile_for_tests
from helpers import ort_run, rel_err, tvc_float
from torch import nn
from tvc_models.export import export
from tvc_models.keras_zoo import full_int8, reference_interpreter

from compiler.frontend.loader import load_model
from compiler.ir.interpreter import run_graph
from compiler.passes.manager import run_passes


class PadConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3)
        self.b = nn.Conv2d(8, 8, 3, groups=8, padding=1)
        self.c = nn.Conv2d(10, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.a(nn.functional.pad(x, (1, 2, 0, 1))))  # asymmetric, then a conv
        x = self.b(nn.functional.pad(x, (1, 1, 1, 1)))  # adds to the conv's own padding
        return self.c(nn.functional.pad(x, (0, 0, 0, 0, 0, 2)))  # pads channels: kept


def test_pytorch_pads_fold_into_the_convolutions(tmp_path) -> None:
    torch.manual_seed(0)
    path = export(PadConv(), (1, 3, 11, 9), tmp_path / "pad.onnx")
    g = run_passes(load_model(path))
    assert [n.op for n in g.nodes].count("pad") == 1  # only the channel pad stays
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert convs[0].attrs["pad"] == [0, 1, 1, 2] and convs[1].attrs["pad"] == [2, 2, 2, 2]
    x = np.random.default_rng(1).standard_normal((1, 3, 11, 9)).astype(np.float32)
    assert rel_err(tvc_float(g, {"x": x})[0], ort_run(path, {"x": x})[0]) < 1e-5


def _keras_zero_padding():  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(5)
    L = keras.layers
    inp = keras.Input((13, 13, 4))
    x = L.ZeroPadding2D(((1, 0), (1, 0)))(inp)
    x = L.Conv2D(8, 3, strides=2, activation="relu")(x)  # MobileNet's stride-2 pattern
    x = L.ZeroPadding2D(1)(x)
    x = L.DepthwiseConv2D(3)(x)
    return keras.Model(inp, x)


def test_keras_zero_padding_folds_and_stays_bit_exact(tmp_path) -> None:
    blob = full_int8(_keras_zero_padding())
    path = tmp_path / "zp.tflite"
    path.write_bytes(blob)
    assert "pad" in [n.op for n in load_model(path).nodes]
    g = run_passes(load_model(path))
    assert "pad" not in [n.op for n in g.nodes]
    interp = reference_interpreter(blob)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rng = np.random.default_rng(2)
    for _ in range(16):
        x = rng.integers(-128, 128, inp["shape"]).astype(np.int8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ref = interp.get_tensor(out["index"])
        np.testing.assert_array_equal(run_graph(g, {g.inputs[0]: x})[g.outputs[0]], ref)
    assert_c_bit_exact(compile_for_tests(path, tmp_path / "out", calib=None), n=3)
