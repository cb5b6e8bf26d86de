"""The `tvc` command as users run it: exit codes, one-line errors naming file/node/op, no
traceback, no partial output."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import ort_run, tvc
from onnx import helper
from onnx_builder import model, save


def assert_clean_error(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    assert r.stderr.startswith("tvc: error: ")
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture()
def relu_model(tmp_path: Path) -> Path:
    return save(
        model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": [1, 3, 4, 4]}, ["y"]),
        tmp_path / "relu.onnx",
    )


def test_truncated_file(tmp_path: Path, exported) -> None:
    data = exported("detector").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    assert_clean_error(tvc("ir", bad), 3, str(bad), "not a valid ONNX model")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a model\n")
    assert_clean_error(tvc("ir", bad), 3, str(bad), "ONNX model")


def test_custom_domain_op(tmp_path: Path) -> None:
    node = helper.make_node("FancyPool", ["x"], ["y"], name="pool7", domain="com.acme")
    path = save(
        model([node], {"x": [1, 3, 4, 4]}, ["y"], domains={"com.acme": 1}), tmp_path / "custom.onnx"
    )
    assert_clean_error(tvc("ir", path), 3, str(path), "'pool7'", "com.acme::FancyPool", "custom op")


def test_unsupported_standard_op(tmp_path: Path) -> None:
    node = helper.make_node("NonMaxSuppression", ["x", "s"], ["y"], name="nms")
    path = save(model([node], {"x": [1, 4, 4], "s": [1, 1, 4]}, ["y"]), tmp_path / "nms.onnx")
    r = tvc("ir", path)
    assert_clean_error(
        r,
        3,
        str(path),
        "'nms'",
        "(NonMaxSuppression) is not supported",
        "supported ONNX ops:",
        "Conv",
    )


def test_dynamic_spatial_shape_needs_input_shape(tmp_path: Path) -> None:
    path = save(
        model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3, "H", "W"]}, ["y"]),
        tmp_path / "dyn.onnx",
    )
    assert_clean_error(
        tvc("ir", path),
        3,
        str(path),
        "'x'",
        "dynamic dimension 'H' at axis 2",
        "--input-shape x=1,3,N,N",
    )
    r = tvc("ir", path, "--input-shape", "x=1,3,32,48")
    assert r.returncode == 0 and "f32[1,32,48,3] NHWC" in r.stdout


@pytest.mark.parametrize("opset", [9, 22])
def test_unsupported_opset(tmp_path: Path, opset: int) -> None:
    path = save(
        model([helper.make_node("Relu", ["x"], ["y"])], {"x": [1, 3, 4, 4]}, ["y"], opset=opset),
        tmp_path / "old.onnx",
    )
    assert_clean_error(
        tvc("ir", path),
        3,
        str(path),
        f"opset {opset} is not supported",
        "11-21",
        "opset_version=17",
    )


def test_undefined_tensor(tmp_path: Path) -> None:
    path = save(
        model([helper.make_node("Add", ["x", "ghost"], ["y"], name="add1")], {"x": [1, 3]}, ["y"]),
        tmp_path / "ghost.onnx",
    )
    assert_clean_error(tvc("ir", path), 3, "'add1'", "'ghost'")


def test_missing_file_and_bad_usage(tmp_path: Path, relu_model: Path) -> None:
    assert_clean_error(tvc("ir", tmp_path / "nope.onnx"), 2, "no such file")
    bad_x = tmp_path / "x.npy"
    np.save(bad_x, np.zeros((1, 3, 5, 5), np.float32))
    assert_clean_error(
        tvc("run", relu_model, "--input", bad_x), 2, "shape [1, 3, 5, 5]", "[1, 3, 4, 4]"
    )
    r = tvc("run", relu_model)
    assert r.returncode == 2 and "--input" in r.stderr


def test_bad_command_line_values_are_usage_errors(tmp_path: Path, relu_model: Path) -> None:
    """A negative budget, a text file where arrays belong and a device file as the model are
    plain usage errors (exit 2) that say what is wrong, not a budget overrun or numpy's pickle
    message."""
    text = tmp_path / "notes.txt"
    text.write_text("not an array\n")
    for ram in ("-5", "0"):
        out = tmp_path / f"o{ram}"
        r = tvc("compile", relu_model, "--target", "stm32f439", "--ram", ram, "--calib", "random",
                "--out", out)  # fmt: skip
        assert_clean_error(r, 2, f"size '{ram}'", "positive")
        assert not out.exists()
    r = tvc("compile", relu_model, "--target", "stm32f439", "--calib", text, "--out", tmp_path)
    assert_clean_error(r, 2, "notes.txt: not a .npy/.npz file")
    assert "pickle" not in r.stderr
    assert_clean_error(tvc("run", relu_model, "--input", text), 2, "not a .npy/.npz file")
    assert_clean_error(tvc("ir", "/dev/null"), 2, "/dev/null: not a regular file")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert_clean_error(tvc("ir", empty), 2, "is empty")


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "notes.onnx"
    bad.write_text("nope")
    r = tvc("--debug", "ir", bad)
    assert r.returncode == 3 and "Traceback" in r.stderr


def test_run_returns_model_layout_outputs(tmp_path: Path, exported) -> None:
    path = exported("detector")
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = tvc(
        "run",
        path,
        "--input",
        tmp_path / "x.npy",
        "--output",
        tmp_path / "y.npz",
        "--engine",
        "float",
    )
    assert r.returncode == 0, r.stderr
    ours = np.load(tmp_path / "y.npz")
    for name, ref in zip(("y0", "y1"), ort_run(path, {"x": x}), strict=True):
        np.testing.assert_allclose(ours[name], ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    r = tvc("run", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_clean_error(r, 2, "2 outputs", ".npz")


def test_ir_after_each_stage_and_text_input(tmp_path: Path, exported) -> None:
    path = exported("shufflenet_v2")
    front = tvc("ir", path, "--after", "frontend").stdout
    assert " = shape(" in front and " = gather(" in front
    canon = tvc("ir", path, "--after", "canonicalize").stdout
    assert " = shape(" not in canon and " = transpose(" in canon
    full = tmp_path / "g.tvcir"
    assert tvc("ir", path, "--full", "-o", full).returncode == 0
    again = tvc("ir", full, "--full", "--after", "frontend")
    assert again.returncode == 0 and again.stdout == full.read_text()
