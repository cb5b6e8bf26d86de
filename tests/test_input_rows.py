"""--input-rows (compiler/passes/input_rows.py): the caller hands the input over row by row
through a reader, and a streamed stage asks each band for just its new rows, so the frame is
never whole in RAM. A conv -> RNNPool detector stem (the face detector's shape) streams from
the reader through the fused conv_rnnpool (its row rule) into the layers after it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import tvc
from test_patch import assert_plan_keeps_values, build_cnn, int8_inputs, run_all, scheduled
from test_rnnpool import _perturb

from compiler.codegen.lower import scratch_needs
from compiler.compile import CompileOptions, compile_model
from compiler.errors import IRError
from compiler.frontend.loader import load_model
from compiler.frontend.torch import RNNPool, export_onnx
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph
from compiler.passes.input_rows import read_inputs_by_rows
from compiler.passes.patch import stage_height, stage_ranges, stream_stage, tile_stage
from compiler.passes.plan import io_bytes, plan_arena, verify_plan
from compiler.tools.boards import get_board
from compiler.tools.host import STRICT, build_host, run_host
from compiler.tools.qemu import run_qemu


@pytest.fixture(scope="module")
def stem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conv 3x3/2 -> RNNPool 8x8/4 -> conv 3x3/2 -> 1x1 head, on a 64x96 grey frame."""
    torch.manual_seed(3)
    pool = RNNPool(4, (8, 8), (4, 4), 8, 8)
    _perturb(pool)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, 2, 1),
        torch.nn.ReLU(),
        pool,
        torch.nn.Conv2d(32, 8, 3, 2, 1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 6, 1),
    )
    path = tmp_path_factory.mktemp("stem") / "stem.onnx"
    return export_onnx(m, torch.zeros(1, 1, 64, 96), path)


def _compile(path: Path, out: Path, **kw: Any) -> tuple[Path, dict]:
    opts = CompileOptions(model=str(path), target="mps2-an386", out=str(out), calib="random", **kw)
    return compile_model(opts)


def _asked_rows(graph: Graph) -> list[tuple[Any, Any]]:
    """The rows each input_rows node asks the reader for, in schedule order."""
    return [(n.attrs["lo"], n.attrs["hi"]) for n in graph.nodes if n.op == "input_rows"]


def test_stem_streams_from_the_reader_bit_exact_with_less_ram(stem: Path, tmp_path: Path) -> None:
    out, report = _compile(stem, tmp_path / "rows", input_rows=True, max_recompute=1.0)
    ram = report["ram"]
    assert ram["input_rows"] == ["x"]
    graph = load_model(out)
    assert ram["io_bytes"] == graph.tensors["y"].nbytes  # the frame is nobody's buffer
    patch = ram["patch"]
    assert [s["mode"] for s in patch["stages"]][:1] == ["stream"], patch
    ops = [n.op for n in graph.nodes]
    assert ops.count("conv_rnnpool") > 1, "the fused stem runs band by band"
    # each row asked for once, in order, and every row the stem reads
    asked = _asked_rows(graph)
    assert len(asked) > 1 and asked[0][0] == 0
    assert all(a[1] <= b[0] for a, b in zip(asked, asked[1:], strict=False)), asked
    # the whole frame in the arena instead (what --input-in-arena gives): more RAM
    _, whole = _compile(stem, tmp_path / "arena", input_in_arena=True, max_recompute=1.0)
    assert ram["peak_bytes"] < whole["ram"]["peak_bytes"], (ram, whole["ram"])
    # the C (its runner's reader refuses rows asked out of order) against the integer
    # interpreter on the layer-by-layer schedule, also with every freed byte poisoned
    layerwise = scheduled(stem)
    samples = int8_inputs(graph, 3, seed=4)
    for defines in ((), ("TVC_POISON_FREED",)):
        host = run_host(build_host(out, graph, defines=defines), graph, samples)
        for s, h in zip(samples, host, strict=True):
            np.testing.assert_array_equal(h["y"], run_graph(layerwise, s)["y"], str(defines))
    on_m4, _ = run_qemu(out, graph, get_board("mps2-an386"), samples[:2])
    for s, q in zip(samples, on_m4, strict=False):
        np.testing.assert_array_equal(q["y"], run_graph(layerwise, s)["y"])
    plan = plan_arena(graph, scratch=scratch_needs(graph, "portable"))
    assert plan.size == ram["arena_bytes"]
    assert plan.size + io_bytes(graph, plan) == patch["peak_bytes"]
    verify_plan(graph, plan)
    assert_plan_keeps_values(graph, plan, samples[0])
    header = (out / "stem.h").read_text()
    assert "typedef int (*stem_read_rows_fn)" in header and "const stem_rows *x" in header


READER_MAIN = r"""
#include <stdio.h>
#include "stem.h"
static int calls;
static int read_rows(void *ctx, int32_t first_row, int32_t rows, void *dst) {
    (void)ctx; (void)first_row;
    int8_t *d = (int8_t *)dst;
    for (int32_t i = 0; i < rows * STEM_X_ROW_SIZE; ++i) d[i] = 0;
    return ++calls == 2 ? 42 : 0;  /* the camera fails on the second band */
}
static int8_t y[STEM_Y_SIZE];
int main(void) {
    const stem_rows x = {read_rows, 0};
    const int rc = stem_run(&x, y);
    printf("%d %d\n", rc, calls);
    return 0;
}
"""


def test_a_failing_reader_ends_the_run_with_its_value(stem: Path, tmp_path: Path) -> None:
    out, _ = _compile(stem, tmp_path / "rows", input_rows=True, max_recompute=1.0)
    main = tmp_path / "main.c"
    main.write_text(READER_MAIN)
    exe = tmp_path / "reader"
    sources = [str(p) for p in sorted(out.glob("*.c"))]
    subprocess.run(["gcc", *STRICT, f"-I{out}", str(main), *sources, "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout == "42 2\n"


@pytest.mark.parametrize("seed", range(6))
def test_streams_from_the_reader_equal_layer_by_layer(tmp_path: Path, seed: int) -> None:
    """Random small CNNs read by rows: every stage from the reader that streams computes what
    the layer-by-layer graph does and plans without clobbering a value; tiles refuse it (they
    would ask for halo rows twice)."""
    rng = np.random.default_rng(seed)
    layers = [("conv", int(rng.choice([3, 5])), int(rng.integers(1, 3)), True, 4, "Relu")]
    layers += [("dw", 3, int(rng.integers(1, 3)), True), ("conv", 1, 1, False, 8, "")]
    spec = (int(rng.integers(12, 24)), int(rng.integers(6, 12)), 1 + seed % 3, layers, seed)
    g = scheduled(build_cnn(spec, tmp_path / "cnn.onnx"))
    r = read_inputs_by_rows(g)
    assert [n.op for n in r.nodes][0] == "input_rows"
    feeds = int8_inputs(g, 1, seed=seed)[0]
    want = run_all(g, feeds)["y"]
    np.testing.assert_array_equal(run_all(r, feeds)["y"], want)
    tried = 0
    for start, end in stage_ranges(r):
        if start != 0:
            continue
        height = stage_height(r, end)
        if height < 2:
            continue
        if r.nodes[end - 1].op != "global_avg_pool":  # (only streams average band by band)
            with pytest.raises(IRError, match="streamed stages only"):
                tile_stage(r, start, end, 2)
        for bands in sorted({2, height}):
            s, stage = stream_stage(r, start, end, bands)
            np.testing.assert_array_equal(run_all(s, feeds)["y"], want)
            asked = _asked_rows(s)
            assert all(a[1] <= b[0] for a, b in zip(asked, asked[1:], strict=False)), asked
            plan = plan_arena(s, scratch=scratch_needs(s, "portable"))
            verify_plan(s, plan)
            assert_plan_keeps_values(s, plan, feeds)
            assert "x" not in plan.offsets and io_bytes(s, plan) == s.tensors["y"].nbytes
            tried += 1
    assert tried


def test_bad_uses_are_clear_errors(stem: Path, tmp_path: Path) -> None:
    common = ("compile", stem, "--target", "mps2-an386", "--calib", "random")
    r = tvc(*common, "--input-rows", "--input-in-arena", "--out", tmp_path / "a")
    assert r.returncode == 2 and "never whole" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "a").exists()
    # a model whose input is not an image: rows mean nothing
    dense = build_dense(tmp_path / "dense.onnx")
    r = tvc("compile", dense, "--target", "mps2-an386", "--calib", "random", "--input-rows")
    assert r.returncode == 2 and "batch-1 images only" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def build_dense(path: Path) -> Path:
    from onnx import helper
    from onnx_builder import model, save

    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    return save(model([node], {"x": [1, 16]}, ["y"], {"w": np.ones((16, 4), np.float32)}), path)
