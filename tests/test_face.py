"""RNNPool face detection end to end (slow tier): the RNNPool_Face_M4-like detector, trained on
synthetic faces at test time, through ONNX, int8 + int16 RNNPool, patch-wise C for NUCLEO-F439ZI,
run on the Cortex-M4 twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ort_run, rel_err, tvc_float
from tvc_models import face

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.ir.boundary import (
    dequantize_outputs,
    from_graph_layout,
    quantize_inputs,
    to_graph_layout,
)
from compiler.ir.interpreter import run_graph
from compiler.passes.manager import run_passes
from compiler.tools.boards import get_board
from compiler.tools.qemu import run_qemu

pytestmark = pytest.mark.slow
KB = 1024


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(2)
    return face.build(tmp_path_factory.mktemp("face"), steps=300, seed=0, log=False)


def test_pytorch_onnxruntime_and_ir_agree(detector) -> None:
    model = face.FaceDetector()
    model.load_state_dict(torch.load(detector["torch"]))
    model.eval()
    x = np.load(detector["val"])[:2]
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x))]
    via_ort = ort_run(detector["onnx"], {"x": x})
    graph = run_passes(load_model(str(detector["onnx"]), {"x": x.shape}), "layout")
    assert [n.op for n in graph.nodes].count("rnnpool") == 1
    ours = tvc_float(graph, {"x": x})
    for r, o, i in zip(ref, via_ort, ours, strict=True):
        assert rel_err(o, r) <= 1e-4
        assert rel_err(i, r) <= 1e-4


@pytest.fixture(scope="module")
def compiled(detector, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    out = {}
    for label, arena_input, rows in (
        ("caller", False, False),
        ("arena", True, False),
        ("rows", None, True),
    ):
        opts = CompileOptions(
            model=str(detector["onnx"]),
            target="stm32f439",
            ram="192k",
            out=str(tmp_path_factory.mktemp("build") / label),
            calib=str(detector["calib"]),
            val=str(detector["val"]),
            input_in_arena=arena_input,
            input_rows=rows,
        )
        out[label] = compile_model(opts)
    return out


def test_fits_the_f439_patch_wise(compiled) -> None:
    for label, (_, report) in compiled.items():
        ram, flash = report["ram"], report["flash"]
        assert ram["peak_bytes"] <= 192 * KB, label
        assert flash["total_bytes"] <= 160 * KB, label  # the published deployment's flash
        pw = ram["patchwise"]
        assert pw["used"] and pw["arena_bytes"] < pw["layerwise_arena_bytes"] - 60 * KB, pw
    # the frame in the arena: RNNPool's output overwrites it row by row
    assert compiled["arena"][1]["ram"]["peak_bytes"] <= 128 * KB


def test_frame_handed_over_by_rows_fits_64_kb(compiled) -> None:
    """--input-rows: the camera hands rows to the reader and the stem streams them through the
    fused conv -> RNNPool into the MBConv blocks, so neither the 76,800 B frame nor RNNPool's
    72 KB output is ever whole (issue 13's goal: 64 KB peak, the stack included)."""
    out, report = compiled["rows"]
    ram = report["ram"]
    assert ram["input_rows"] == ["x"] and ram["io_bytes"] == 4560  # the four outputs only
    assert ram["peak_bytes"] <= 64 * KB, ram
    stages = ram["patch"]["stages"]
    assert stages and stages[0]["mode"] == "stream", stages
    assert ram["patch"]["extra_macs_pct"] <= 1.0  # the stem's shared conv rows, once per band
    graph = load_model(out)
    asked = [(n.attrs["lo"], n.attrs["hi"]) for n in graph.nodes if n.op == "input_rows"]
    assert asked[0][0] == 0 and asked[-1][1] <= 240 and 1 < len(asked) <= stages[0]["bands"]


@pytest.mark.parametrize("label", ["arena", "rows"])
def test_qemu_is_bit_exact_and_scores_agree_with_float(detector, compiled, label: str) -> None:
    out, _ = compiled[label]
    graph = load_model(out)
    val = np.load(detector["val"])
    samples = [quantize_inputs(graph, to_graph_layout(graph, {"x": v[None]})) for v in val]
    on_m4, _ = run_qemu(out, graph, get_board("stm32f439"), samples[:2])
    layerwise = load_model(compiled["caller"][0])
    for q, s in zip(on_m4, samples, strict=False):
        ref = run_graph(graph, s)
        for o in graph.outputs:
            np.testing.assert_array_equal(q[o], ref[o], err_msg=o)
            np.testing.assert_array_equal(q[o], run_graph(layerwise, s)[o], err_msg=o)
    ints = [
        from_graph_layout(graph, dequantize_outputs(graph, run_graph(graph, s))) for s in samples
    ]
    int_outs = [np.concatenate([d[o] for d in ints]) for o in face.OUTPUTS]
    float_outs = ort_run(detector["onnx"], {"x": val})
    agree = face.agreement(float_outs, int_outs)
    assert agree["class_score_sqnr_db"] >= 20.0, agree
    assert sum(agree["anchors_above_threshold"]) >= 10, "the detector finds no faces: undertrained"
    assert all(agree["top10_same"]), agree


@pytest.mark.browser
def test_html_report_renders(compiled, tmp_path) -> None:
    """The face detector's report: the RNNPool stem's tiles in the memory timeline, one SVG
    element per planned piece, drawn in headless Chromium without console errors."""
    import json
    import re
    import sys

    from PIL import Image

    from compiler.tools.html import write_html

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import browser

    out, report = compiled["arena"]
    page, *pngs = write_html(out, tmp_path / "face.html")
    assert [p.name for p in pngs] == ["face-memory.png", "face-budget.png", "face-layers.png"]
    pieces = {
        (k, p)
        for k, b in enumerate(json.loads((out / "report.json").read_text())["memory"]["buffers"])
        for p in range(len(b["pieces"]))
    }
    assert len(pieces) > 20
    if browser.chromium() is None:
        pytest.skip("chromium not installed: ./setup.sh --browser (./test.sh does it)")
    shown = browser.render(page, tmp_path / "face.png")
    assert shown.console == [], shown.console
    ids = {(int(a), int(b)) for a, b in re.findall(r'id="memory-buf-(\d+)-(\d+)"', shown.dom)}
    assert ids == pieces
    img = np.asarray(Image.open(shown.screenshot).convert("L"))
    assert (img < 240).mean() > 0.05
