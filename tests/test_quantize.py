"""Quantization of the PyTorch test models: affine int8 (TFLite scheme) and SeeDot int8/int16,
calibrated on structured images; accuracy floors; the compile output and its report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import tvc
from tvc_models.synthetic import mask_images
from tvc_models.zoo import MODEL_NAMES

from compiler.errors import UsageError
from compiler.frontend.onnx import load_onnx
from compiler.ir.text import parse_graph, print_graph
from compiler.ir.verify import verify
from compiler.passes.manager import run_passes
from compiler.quant.accuracy import evaluate
from compiler.quant.affine import quantize_affine
from compiler.quant.calibrate import load_samples, observe_ranges
from compiler.quant.seedot import quantize_seedot, search_seedot


@pytest.fixture(scope="module")
def data() -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    x, _ = mask_images(96, seed=11)
    calib = [{"x": x[i : i + 1]} for i in range(32)]
    val = [{"x": x[i : i + 1]} for i in range(32, 96)]
    return calib, val


@pytest.fixture(scope="module")
def results(exported, data):  # type: ignore[no-untyped-def]
    """Per model: float graph, affine, seedot8, seedot16 graphs and their accuracy."""
    calib, val = data
    out = {}
    for name in MODEL_NAMES:
        g = run_passes(load_onnx(exported(name)), "layout")
        qa = quantize_affine(g, observe_ranges(g, calib))
        q8, d8 = search_seedot(g, calib, val[:16], "8")
        q16, d16 = search_seedot(g, calib, val[:16], "16")
        out[name] = {
            "graph": g,
            "affine": (qa, evaluate(g, qa, val)),
            "seedot8": (q8, evaluate(g, q8, val)),
            "seedot16": (q16, evaluate(g, q16, val)),
        }
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_affine_int8_meets_the_floors(results, name: str) -> None:
    q, acc = results[name]["affine"]
    verify(q, "quantize")
    assert acc["sqnr_db"] >= 25.0, acc
    if acc["top1_agreement"] is not None:  # the detector regresses boxes: no top-1
        assert acc["top1_agreement"] >= 0.95, acc
    for t in q.tensors.values():
        if not t.is_const:
            assert t.dtype == "i8" and t.qparams is not None and t.qparams.exp is None


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_seedot_int16_beats_affine_int8_by_15_db(results, name: str) -> None:
    _, affine = results[name]["affine"]
    q16, s16 = results[name]["seedot16"]
    _, s8 = results[name]["seedot8"]
    verify(q16, "quantize")
    assert s16["sqnr_db"] >= affine["sqnr_db"] + 15.0, (s16, affine)
    assert s8["sqnr_db"] is not None and s8["sqnr_db"] > 20.0  # reported beside them
    for t in q16.tensors.values():
        if not t.is_const:
            assert t.dtype == "i16" and t.qparams is not None and t.qparams.exp is not None


def test_tflite_constraints_hold(results) -> None:
    q, _ = results["shufflenet_v2"]["affine"]
    for n in q.nodes:
        if n.op in ("max_pool2d", "concat", "split", "permute_channels", "reshape"):
            params = {
                q.tensors[t].qparams for t in [*n.inputs, *n.outputs] if not q.tensors[t].is_const
            }
            assert len(params) == 1, (n.op, params)
    qd, _ = results["detector"]["affine"]
    soft = next(n for n in qd.nodes if n.op == "softmax")
    qp = qd.tensors[soft.outputs[0]].qparams
    assert qp.scale == (1 / 256,) and qp.zero_point == (-128,)
    conv = next(n for n in qd.nodes if n.op == "conv2d")
    w, b = qd.tensors[conv.inputs[1]], qd.tensors[conv.inputs[2]]
    assert w.dtype == "i8" and w.qparams.axis == 0 and int(np.abs(w.data).max()) == 127
    assert b.dtype == "i32"
    s_in = qd.tensors[conv.inputs[0]].qparams.scale[0]
    assert np.allclose(b.qparams.scale, [np.float32(s_in * s) for s in w.qparams.scale])


def test_quantized_graphs_round_trip_through_text(results) -> None:
    for key in ("affine", "seedot16"):
        q, _ = results["resnet9"][key]
        assert parse_graph(print_graph(q)).same_as(q)


def test_report_points_at_layers(results) -> None:
    _, acc = results["mobilenet_v1_025"]["affine"]
    per = acc["per_tensor_sqnr_db"]
    assert len(per) > 20 and all(v is None or v > 10 for v in per.values())


def test_calibration_data_is_required_or_random_on_request(exported) -> None:
    g = run_passes(load_onnx(exported("resnet9")), "layout")
    with pytest.raises(UsageError, match="needs calibration data"):
        load_samples(g, None)
    assert len(load_samples(g, "random")) == 32
    with pytest.raises(UsageError, match=r"\[3, 32, 32\].*\[3, 64, 64\]"):
        bad = Path(__file__).parent / "_bad_calib.npy"
        np.save(bad, np.zeros((4, 3, 32, 32), np.float32))
        try:
            load_samples(g, str(bad))
        finally:
            bad.unlink()


def test_image_folder_calibration_and_percentile(tmp_path, exported) -> None:
    from PIL import Image

    x, _ = mask_images(6, seed=2)
    for i, img in enumerate(x):
        Image.fromarray(((img.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)).resize(
            (80, 80)
        ).save(tmp_path / f"{i}.png")
    g = run_passes(load_onnx(exported("resnet9")), "layout")
    samples = load_samples(g, str(tmp_path), mean=[0.5] * 3, std=[0.5] * 3)
    assert len(samples) == 6 and samples[0]["x"].shape == (1, 3, 64, 64)
    # resized back to 64x64, normalized to [-1, 1], NCHW: close to the source but for edges
    assert np.abs(samples[0]["x"] - x[:1]).mean() < 0.03
    full = observe_ranges(g, samples)
    clipped = observe_ranges(g, samples, percentile=99.0)
    some = next(k for k in full if full[k].hi > 0)
    assert clipped[some].hi <= full[some].hi


def test_seedot_global_shift_trades_headroom(exported, data) -> None:
    calib, val = data
    g = run_passes(load_onnx(exported("mobilenet_v1_025")), "layout")
    r = observe_ranges(g, calib)
    base = evaluate(g, quantize_seedot(g, r, 8, 0), val[:8])["sqnr_db"]
    cramped = evaluate(g, quantize_seedot(g, r, 8, 3), val[:8])["sqnr_db"]  # saturates
    assert base > cramped


def test_compile_writes_the_output_directory_and_int_engine_runs_it(tmp_path) -> None:
    x, _ = mask_images(40, seed=4)
    np.save(tmp_path / "calib.npy", x[:32])
    np.save(tmp_path / "val.npy", x[32:])
    np.save(tmp_path / "one.npy", x[32:33])
    out = tmp_path / "build"
    model = Path(__file__).resolve().parent.parent / "examples" / "mask_cnn.onnx"
    r = tvc(
        "compile",
        model,
        "--target",
        "stm32f439",
        "--ram",
        "192k",
        "--calib",
        tmp_path / "calib.npy",
        "--val",
        tmp_path / "val.npy",
        "--out",
        out,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "top-1 agreement" in r.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "stm32f439" and report["quant"] == "affine"
    assert report["ram"]["budget_bytes"] == 192 * 1024
    assert report["accuracy"]["top1_agreement"] >= 0.95 and report["accuracy"]["sqnr_db"] >= 25
    assert all(
        {"name", "op", "macs", "output_bytes", "sqnr_db"} <= set(row) for row in report["layers"]
    )
    r = tvc(
        "run",
        out,
        "--input",
        tmp_path / "one.npy",
        "--engine",
        "int",
        "--output",
        tmp_path / "y.npy",
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    r = tvc("run", out, "--input", tmp_path / "one.npy")
    assert r.returncode == 2 and "--engine int" in r.stderr


def test_compile_failure_leaves_no_directory(tmp_path) -> None:
    out = tmp_path / "build"
    model = Path(__file__).resolve().parent.parent / "examples" / "mask_cnn.onnx"
    r = tvc("compile", model, "--target", "stm32f439", "--out", out, timeout=300)
    assert r.returncode == 2 and "calibration data" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
    r = tvc("compile", model, "--target", "esp32", "--calib", "random", "--out", out, timeout=300)
    assert r.returncode == 2 and "unknown board 'esp32'" in r.stderr and not out.exists()


def test_compile_never_replaces_a_directory_it_did_not_write(tmp_path) -> None:
    """tvc replaces its whole output directory: one holding anything else is refused."""
    model = Path(__file__).resolve().parent.parent / "examples" / "mask_cnn.onnx"
    out = tmp_path / "mine"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"precious")
    r = tvc("compile", model, "--target", "stm32f439", "--calib", "random", "--out", out)
    assert r.returncode == 2 and "refusing to replace" in r.stderr and "Traceback" not in r.stderr
    assert (out / "model.onnx").read_bytes() == b"precious"
    ours = tmp_path / "ours"
    for _ in range(2):  # a new directory, then its own output again: replaced
        r = tvc("compile", model, "--target", "stm32f439", "--calib", "random", "--out", ours)
        assert r.returncode == 0, r.stderr
    assert (ours / "report.json").is_file()
