"""The cmsis-nn backend against the real CMSIS-NN (a checkout outside this repository, named by
CMSIS_NN_ROOT): bit-exact with the portable kernels and the integer interpreter, scratch
buffers at least what the library asks for. Skipped, with the reason, when it is not set."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tvc_models.keras_zoo import build_tflite
from tvc_models.synthetic import mask_images
from tvc_models.zoo import MODEL_NAMES

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.tools.boards import get_board
from compiler.tools.host import build_host, run_host
from compiler.tools.qemu import run_qemu

pytestmark = pytest.mark.skipif(
    not os.environ.get("CMSIS_NN_ROOT"),
    reason="CMSIS_NN_ROOT is not set (a CMSIS-NN checkout kept outside this repository)",
)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("calib")
    np.save(d / "calib.npy", mask_images(32, seed=41)[0])
    return d / "calib.npy"


def _both(model: Path, out: Path, calib: Path | None) -> tuple[Path, Path]:
    dirs = []
    for kernels in ("portable", "cmsis-nn"):
        opts = CompileOptions(
            model=str(model),
            target="mps2-an386",
            out=str(out / kernels),
            calib=str(calib) if calib else None,
            kernels=kernels,
        )
        dirs.append(compile_model(opts)[0])
    return dirs[0], dirs[1]


def _samples(graph, n: int) -> list[dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(12)
    return [
        {
            i: rng.integers(-128, 128, graph.tensors[i].shape).astype(
                DTYPES[graph.tensors[i].dtype]
            )
            for i in graph.inputs
        }
        for _ in range(n)
    ]


def _check(portable: Path, cmsis: Path) -> None:
    graph = load_model(cmsis)
    samples = _samples(graph, 16)
    c = run_host(build_host(cmsis, graph, defines=("TVC_CHECK_SCRATCH_SIZES",)), graph, samples)
    p = run_host(build_host(portable, load_model(portable)), graph, samples)
    for s, a, b in zip(samples, c, p, strict=True):
        for o in graph.outputs:
            np.testing.assert_array_equal(a[o], b[o])
            np.testing.assert_array_equal(a[o], run_graph(graph, s)[o])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_cmsis_nn_backend_is_bit_exact_with_portable(exported, calib, tmp_path, name: str) -> None:
    portable, cmsis = _both(exported(name), tmp_path, calib)
    assert '#include "arm_nnfunctions.h"' in (cmsis / f"{load_model(cmsis).name}.c").read_text()
    _check(portable, cmsis)


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "pools", "add_concat", "softmax_head"])
def test_cmsis_nn_backend_on_tflite_models(tmp_path, name: str) -> None:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(build_tflite(name))
    _check(*_both(path, tmp_path, None))


@pytest.mark.slow
def test_cmsis_nn_on_the_cortex_m4_twin(exported, calib, tmp_path) -> None:
    portable, cmsis = _both(exported("mobilenet_v1_025"), tmp_path, calib)
    graph = load_model(cmsis)
    samples = _samples(graph, 2)
    outs, instructions = run_qemu(cmsis, graph, get_board("mps2-an386"), samples)
    for s, q in zip(samples, outs, strict=True):
        np.testing.assert_array_equal(q[graph.outputs[0]], run_graph(graph, s)[graph.outputs[0]])
    _, ours = run_qemu(portable, load_model(portable), get_board("mps2-an386"), samples)
    assert all(i > 0 for i in instructions + ours)


def test_cmsis_nn_with_a_patchwise_rnnpool_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A fused conv + RNNPool step keeps its portable kernel under --kernels cmsis-nn while the
    convolutions around it take CMSIS-NN's (before the fused node existed, the CMSIS-NN conv
    rule swallowed the patch-wise conv and the step did not compile)."""
    import torch

    from compiler.frontend.torch import RNNPool, export_onnx

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.ReLU(), RNNPool(4, (8, 8), (4, 4), 8, 8),
        torch.nn.Conv2d(32, 6, 1),
    )  # fmt: skip
    path = export_onnx(model, torch.zeros(1, 1, 64, 96), tmp_path / "pool.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).uniform(-1, 1, (8, 1, 64, 96)).astype(np.float32))
    portable, cmsis = _both(path, tmp_path, calib)
    ops = [n.op for n in load_model(cmsis).nodes]
    assert "conv_rnnpool" in ops and "arm_convolve_wrapper_s8" in (cmsis / "pool.c").read_text()
    _check(portable, cmsis)
