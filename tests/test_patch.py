"""Patch-based stages (passes/patch.py): the first layers of a CNN run band by band.

Checked three ways: on random small CNNs (hypothesis), every stage and band count computes
exactly what the layer-by-layer graph computes, and the planner keeps no two live pieces in one
byte; compiled to C, a poisoned build (every piece of a buffer overwritten before it is written
and once it is dead) stays bit-exact; and the arena the plan promises is the arena the C uses,
measured by running the model on an arena of canaries.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import tvc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper
from onnx_builder import model, save

from compiler.codegen.lower import scratch_needs
from compiler.compile import CompileOptions, compile_model, run_pipeline
from compiler.errors import IRError
from compiler.frontend.loader import load_model
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph
from compiler.ir.registry import get_op
from compiler.ir.tensor import DTYPES
from compiler.passes.patch import stage_height, stage_ranges, stream_stage, tile_stage
from compiler.passes.plan import ALIGN, io_bytes, plan_arena, verify_plan
from compiler.tools.host import STRICT, build_host, run_host

# --- random small CNNs -------------------------------------------------------------------------

LAYER = st.one_of(
    st.tuples(
        st.just("conv"),
        st.sampled_from([1, 3, 5]),  # kernel
        st.sampled_from([1, 2]),  # stride
        st.booleans(),  # padded
        st.sampled_from([4, 8]),  # output channels
        st.sampled_from(["", "Relu", "Clip"]),
    ),
    st.tuples(st.just("dw"), st.sampled_from([3, 5]), st.sampled_from([1, 2]), st.booleans()),
    st.tuples(st.just("maxpool"), st.sampled_from([2, 3]), st.sampled_from([1, 2]), st.booleans()),
    st.tuples(st.just("avgpool"), st.sampled_from([2, 3]), st.sampled_from([1, 2]), st.booleans()),
    st.tuples(st.just("res")),  # relu(conv3x3(x) + x)
    st.tuples(st.just("cat")),  # concat(conv1x1(x), relu(x)) on channels
)
CNN = st.tuples(
    st.integers(6, 20),  # height
    st.integers(3, 10),  # width
    st.sampled_from([1, 3, 4]),  # channels
    st.lists(LAYER, min_size=2, max_size=6),
    st.integers(0, 2**16),  # weight seed
)


def build_cnn(spec: tuple, path: Path) -> Path:  # type: ignore[type-arg]
    """The ONNX model a spec describes (layers that would empty the map are skipped), ending in
    global pooling and a classifier so that the stage is followed by layers that do not run by
    rows."""
    h, w, c, layers, seed = spec
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: dict[str, np.ndarray] = {}
    x = "x"

    def fresh(base: str) -> str:
        return f"{base}{len(nodes)}"

    def conv(x: str, cin: int, cout: int, k: int, s: int, p: int, groups: int = 1) -> str:
        wn, bn, y = fresh("w"), fresh("b"), fresh("conv")
        inits[wn] = (rng.standard_normal((cout, cin // groups, k, k)) * 0.4).astype(np.float32)
        inits[bn] = (rng.standard_normal(cout) * 0.2).astype(np.float32)
        nodes.append(
            helper.make_node(
                "Conv",
                [x, wn, bn],
                [y],
                kernel_shape=[k, k],
                strides=[s, s],
                pads=[p, p, p, p],
                group=groups,
            )
        )
        return y

    def act(x: str, kind: str) -> str:
        if not kind:
            return x
        y = fresh(kind.lower())
        if kind == "Clip":
            lo, hi = fresh("lo"), fresh("hi")
            inits[lo], inits[hi] = np.float32(0), np.float32(6)
            nodes.append(helper.make_node("Clip", [x, lo, hi], [y]))
        else:
            nodes.append(helper.make_node(kind, [x], [y]))
        return y

    def out_size(n: int, k: int, s: int, p: int) -> int:
        return (n + 2 * p - k) // s + 1

    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            _, k, s, padded, cout, a = layer
            p = k // 2 if padded else 0
            if min(out_size(h, k, s, p), out_size(w, k, s, p)) < 1:
                continue
            x = act(conv(x, c, cout, k, s, p), a)
            h, w, c = out_size(h, k, s, p), out_size(w, k, s, p), cout
        elif kind == "dw":
            _, k, s, padded = layer
            p = k // 2 if padded else 0
            if min(out_size(h, k, s, p), out_size(w, k, s, p)) < 1:
                continue
            x = act(conv(x, c, c, k, s, p, groups=c), "Relu")
            h, w = out_size(h, k, s, p), out_size(w, k, s, p)
        elif kind in ("maxpool", "avgpool"):
            _, k, s, padded = layer
            p = 1 if padded and k == 3 else 0
            if min(out_size(h, k, s, p), out_size(w, k, s, p)) < 1:
                continue
            y = fresh(kind)
            op = "MaxPool" if kind == "maxpool" else "AveragePool"
            nodes.append(
                helper.make_node(op, [x], [y], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
            )
            x, h, w = y, out_size(h, k, s, p), out_size(w, k, s, p)
        elif kind == "avgall":  # an average over the whole map (TFLite's AVERAGE_POOL_2D head)
            y = fresh("avgall")
            nodes.append(helper.make_node("AveragePool", [x], [y], kernel_shape=[h, w]))
            x, h, w = y, 1, 1
        elif kind == "res":
            y, z = conv(x, c, c, 3, 1, 1), fresh("add")
            nodes.append(helper.make_node("Add", [y, x], [z]))
            x = act(z, "Relu")
        else:
            y, r, z = conv(x, c, 4, 1, 1, 0), act(x, "Relu"), fresh("cat")
            nodes.append(helper.make_node("Concat", [y, r], [z], axis=1))
            x, c = z, c + 4
    g, f = fresh("gap"), fresh("flat")
    nodes.append(helper.make_node("GlobalAveragePool", [x], [g]))
    nodes.append(helper.make_node("Flatten", [g], [f]))
    inits["fc_w"] = (rng.standard_normal((3, c)) * 0.3).astype(np.float32)
    inits["fc_b"] = np.zeros(3, np.float32)
    nodes.append(helper.make_node("Gemm", [f, "fc_w", "fc_b"], ["y"], transB=1))
    return save(model(nodes, {"x": [1, spec[2], spec[0], spec[1]]}, ["y"], inits), path)


def scheduled(path: Path) -> Graph:
    """The quantized, scheduled graph (layer by layer), calibrated on seeded noise."""
    opts = CompileOptions(model=str(path), target="", calib="random")
    return run_pipeline(opts, "schedule").graph


def int8_inputs(graph: Graph, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {i: rng.integers(-128, 128, graph.tensors[i].shape).astype(np.int8) for i in graph.inputs}
        for _ in range(n)
    ]


def run_all(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor's value (the stage output too, not only the graph's)."""
    probe = Graph(graph.name, graph.inputs, list(graph.tensors), graph.tensors, graph.nodes)
    probe.outputs = [t for t, v in graph.tensors.items() if not v.is_const]
    return run_graph(probe, feeds)


def assert_plan_keeps_values(graph: Graph, plan, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    """Run the schedule on a simulated arena laid out as planned: every node writes its
    output's value where the plan put it, and every value a node reads must still be there
    (a view's bytes are read by its consumers). Independent of the planner's own checks: two
    tensors of one buffer that the plan lets live at once on the same bytes are caught here."""
    values = run_all(graph, feeds)
    arena = np.zeros(plan.size, np.uint8)

    def where(t: str) -> int | None:
        root, delta = plan.views.get(t, (t, 0))
        if root not in plan.offsets or plan.placed_in.get(root, 0):
            return None  # the caller's buffers, and extra regions
        return plan.offsets[root] + delta

    def raw(t: str) -> np.ndarray:
        return np.ascontiguousarray(values[t]).view(np.uint8).reshape(-1)

    def write(t: str) -> None:
        at = where(t)
        if at is not None:
            arena[at : at + graph.tensors[t].nbytes] = raw(t)

    for i in graph.inputs:
        write(i)
    for k, n in enumerate(graph.nodes):
        if get_op(n.op).memory == "view":
            continue
        for i in n.inputs:
            at = where(i)
            if at is None or graph.tensors[i].is_const:
                continue
            held = arena[at : at + graph.tensors[i].nbytes]
            assert np.array_equal(held, raw(i)), f"step {k} {n.label}: {i} was overwritten"
        for o in n.outputs:
            write(o)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,  # a fixed set of CNNs: the suite is deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=CNN, data=st.data())
def test_patch_based_equals_layer_by_layer_and_plans_without_overlap(
    tmp_path: Path,
    spec: tuple,
    data: st.DataObject,  # type: ignore[type-arg]
) -> None:
    g = scheduled(build_cnn(spec, tmp_path / "cnn.onnx"))
    ranges = stage_ranges(g)
    assert ranges, "every random CNN has layers that run by rows"
    start, end = data.draw(st.sampled_from(ranges), label="stage")
    out = g.nodes[end - 1].outputs[0]
    height = stage_height(g, end)
    if height < 2:
        return
    bands = data.draw(st.integers(2, height), label="bands")
    make = data.draw(st.sampled_from([tile_stage, stream_stage]), label="mode")
    if g.nodes[end - 1].op == "global_avg_pool":  # only a stream averages band by band
        make = stream_stage
    tiled, stage = make(g, start, end, bands)
    if make is stream_stage:  # line buffers: every row computed at most once (rows that no
        # consumer reads, past a stride's reach, are not computed at all)
        assert stage.extra_macs <= 0 and stage.mode == "stream"
    assert tiled.tensors[out].shape == g.tensors[out].shape
    for feeds in int8_inputs(g, 2, seed=bands):
        want, got = run_all(g, feeds), run_all(tiled, feeds)
        np.testing.assert_array_equal(got[out], want[out])  # the stage output, whole
        np.testing.assert_array_equal(got["y"], want["y"])
    for arena_inputs in (False, True):
        plan = plan_arena(
            tiled, scratch=scratch_needs(tiled, "portable"), arena_inputs=arena_inputs
        )
        verify_plan(tiled, plan)  # no two live pieces share a byte
        assert_plan_keeps_values(tiled, plan, int8_inputs(g, 1, seed=5)[0])


def _map_end(g: Graph) -> int:
    """The end of the longest stage from the first node that leaves a map (not the average)."""
    return max(e for s, e in stage_ranges(g) if s == 0 and g.nodes[e - 1].op != "global_avg_pool")


def test_bands_read_their_halo_and_the_stage_output_is_assembled_in_place(tmp_path) -> None:
    """A 3x3 conv pair in 4 bands: each band reads one halo row above and below per conv, the
    bands of the output are views into it (no copy node), and the frame's rows die band by band
    (the input's buffer is cut into pieces)."""
    spec = (16, 8, 3, [("conv", 3, 1, True, 8, "Relu"), ("conv", 3, 2, True, 8, "Relu")], 5)
    g = scheduled(build_cnn(spec, tmp_path / "m.onnx"))
    tiled, stage = tile_stage(g, 0, _map_end(g), 4)
    assert stage.bands == 4 and stage.extra_macs > 0
    first = [n for n in tiled.nodes if n.op == "conv2d"][:2]
    # band 0 of the stride-2 conv makes rows 0..1 of 8, reading rows 0..3 (pad 1 on top) of a
    # first conv that makes them from input rows 0..4
    assert tiled.tensors[first[1].outputs[0]].shape[1] == 2
    assert tiled.tensors[first[0].outputs[0]].shape[1] == 4
    assert first[0].attrs["pad"][0] == 1 and first[0].attrs["pad"][2] == 0
    concat = next(n for n in tiled.nodes if n.op == "row_concat")
    plan = plan_arena(tiled, arena_inputs=True)
    assert all(plan.views[p][0] == concat.outputs[0] for p in concat.inputs)
    assert len(plan.pieces_of("x")) > 1  # rows of the frame die as bands consume them


def test_streamed_stage_keeps_rows_in_line_buffers_moved_in_place(tmp_path) -> None:
    """Three 3x3 convs streamed one output row per band: no row is computed twice, each
    conv's output lives in a line buffer of the rows the next conv reads (3, or 2 at the
    edges), the kept rows are moved to its front over the same bytes (row_shift planned in
    place), and the line buffers take less than the maps they replace."""
    spec = (16, 6, 2, [("conv", 3, 1, True, 8, "Relu")] * 3, 5)
    g = scheduled(build_cnn(spec, tmp_path / "m.onnx"))
    end = _map_end(g)
    streamed, stage = stream_stage(g, 0, end, 16)
    assert stage.extra_macs == 0 and stage.bands == 16
    convs = [n for n in streamed.nodes if n.op == "conv2d"]
    assert sum(streamed.tensors[n.outputs[0]].shape[1] for n in convs) == 3 * 16
    shifts = [n for n in streamed.nodes if n.op == "row_shift"]
    assert shifts and all(streamed.tensors[n.outputs[0]].shape[1] == 2 for n in shifts)
    plan = plan_arena(streamed, arena_inputs=True)
    verify_plan(streamed, plan)
    for n in shifts:  # the kept rows are where the line buffer starts: no second buffer
        assert plan.views[n.outputs[0]] == plan.views.get(n.inputs[0], (n.inputs[0], 0))
    layerwise = plan_arena(g, arena_inputs=True)
    assert plan.size < layerwise.size
    for feeds in int8_inputs(g, 2, seed=3):
        np.testing.assert_array_equal(run_all(streamed, feeds)["y"], run_all(g, feeds)["y"])


@pytest.mark.parametrize("bands", [3, 8, 16])
def test_streamed_residual_blocks_keep_every_value_until_read(tmp_path, bands: int) -> None:
    """Residual adds in a stream write their new rows in place over a conv's band: those bytes
    join the add's line buffer, so the kept rows must have moved before any of the band's new
    rows is computed (the simulated arena sees a clobbered value otherwise)."""
    spec = (16, 8, 4, [("conv", 3, 1, True, 8, "Relu"), ("res",), ("res",)], 3)
    g = scheduled(build_cnn(spec, tmp_path / "m.onnx"))
    streamed, _ = stream_stage(g, 0, _map_end(g), bands)
    feeds = int8_inputs(g, 1, seed=2)[0]
    for arena_inputs in (False, True):
        plan = plan_arena(streamed, arena_inputs=arena_inputs)
        verify_plan(streamed, plan)
        assert_plan_keeps_values(streamed, plan, feeds)
    np.testing.assert_array_equal(run_all(streamed, feeds)["y"], run_all(g, feeds)["y"])


def test_tile_stage_refuses_more_bands_than_rows(tmp_path) -> None:
    spec = (8, 4, 1, [("conv", 3, 2, True, 4, "Relu")], 1)
    g = scheduled(build_cnn(spec, tmp_path / "m.onnx"))
    with pytest.raises(IRError, match="bands"):
        tile_stage(g, 0, _map_end(g), 9)


# --- compiled: poisoned builds, measured arena -------------------------------------------------

CANARY_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "{name}.h"
static uint8_t big[{size} + 4096];
static {in_t} x[{in_n}];
static {out_t} y[{out_n}];
int main(void) {{
    int32_t high = 0;
    if (fread(x, 1, sizeof x, stdin) != sizeof x) return 2;
    for (int fill = 0; fill < 256; fill += 255) {{
        memset(big, fill, sizeof big);
        if ({name}_run_in(big, x, y) != 0) return 1;
        for (int32_t k = (int32_t)sizeof big - 1; k >= 0; k--) {{
            if (big[k] != (uint8_t)fill) {{ if (k + 1 > high) high = k + 1; break; }}
        }}
    }}
    printf("%d\n", (int)high);
    return 0;
}}
"""


def measured_arena(out: Path, graph: Graph) -> int:
    """The highest arena byte the C writes, over runs on arenas of two different canaries (a
    byte that both runs leave as it was is never written)."""
    (i,), (o,) = graph.inputs, graph.outputs
    ti, to = graph.tensors[i], graph.tensors[o]
    report = json.loads((out / "report.json").read_text())
    ctype = {"i8": "int8_t", "u8": "uint8_t", "i16": "int16_t"}
    main = out.parent / f"{out.name}_canary.c"
    main.write_text(
        CANARY_MAIN.format(
            name=graph.name,
            size=report["ram"]["arena_bytes"],
            in_t=ctype[ti.dtype],
            in_n=ti.numel,
            out_t=ctype[to.dtype],
            out_n=to.numel,
        )
    )
    exe = out.parent / f"{out.name}_canary"
    sources = [str(p) for p in sorted(out.glob("*.c"))]
    subprocess.run(
        ["gcc", *STRICT, "-O1", f"-I{out}", str(main), *sources, "-o", str(exe)], check=True
    )
    x = np.random.default_rng(0).integers(-128, 128, ti.shape).astype(DTYPES[ti.dtype])
    r = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, check=True)
    return int(r.stdout)


@pytest.mark.parametrize(
    "spec",
    [
        (
            24,
            12,
            3,
            [
                ("conv", 3, 2, True, 8, "Relu"),
                ("dw", 3, 1, True),
                ("conv", 1, 1, False, 8, ""),
                ("maxpool", 2, 2, False),
            ],
            3,
        ),
        (
            20,
            10,
            4,
            [("conv", 3, 1, True, 8, "Clip"), ("res",), ("cat",), ("avgpool", 3, 2, True)],
            4,
        ),
        (
            18,
            8,
            1,
            [("conv", 5, 1, True, 4, "Relu"), ("dw", 5, 2, True), ("conv", 3, 2, False, 8, "Relu")],
            6,
        ),
        (  # KWS's shape: a deep stride-1 chain at one resolution, best streamed
            20,
            5,
            1,
            [("conv", 3, 2, True, 16, "Relu")]
            + [("dw", 3, 1, True), ("conv", 1, 1, False, 16, "Relu")] * 3,
            7,
        ),
        (  # the same into an average over the whole map, as KWS ends
            20,
            5,
            1,
            [
                ("conv", 3, 2, True, 16, "Relu"),
                ("dw", 3, 1, True),
                ("conv", 1, 1, False, 16, "Relu"),
                ("avgall",),
            ],
            8,
        ),
    ],
    ids=["mobilenet-like", "residual-concat", "wide-kernels", "ds-cnn-streamed", "avg-head"],
)
@pytest.mark.parametrize("optimize", ["speed", "size"])
def test_compiled_stage_is_bit_exact_poisoned_and_uses_the_planned_arena(
    tmp_path: Path,
    spec: tuple,
    optimize: str,  # type: ignore[type-arg]
) -> None:
    path = build_cnn(spec, tmp_path / "cnn.onnx")
    opts = CompileOptions(
        model=str(path),
        target="mps2-an386",
        out=str(tmp_path / "out"),
        calib="random",
        optimize=optimize,
        max_recompute=1.0,
    )
    out, report = compile_model(opts)
    patch = report["ram"]["patch"]  # type: ignore[index]
    assert patch["used"] and patch["peak_bytes"] < patch["layerwise_peak_bytes"], patch
    if spec[3][-1][0] == "conv" and len(spec[3]) == 7:  # the DS-CNN: line buffers win there
        assert [s["mode"] for s in patch["stages"]] == ["stream"], patch
    ops = [n.op for n in load_model(out).nodes]
    if spec[3][-1][0] in ("avgall",) or len(spec[3]) == 7:  # into running sums: no map whole
        assert "row_sum" in ops and "pool_finish" in ops, ops
    graph = load_model(out)
    layerwise = scheduled(path)
    samples = int8_inputs(graph, 3, seed=1)
    for defines in ((), ("TVC_POISON_FREED",)):
        host = run_host(build_host(out, graph, defines=defines), graph, samples)
        for s, h in zip(samples, host, strict=True):
            np.testing.assert_array_equal(
                h["y"], run_graph(layerwise, s)["y"], err_msg=str(defines)
            )
    plan = plan_arena(
        graph,
        scratch=scratch_needs(graph, "portable"),
        arena_inputs=report["ram"]["input_in_arena"],
    )  # type: ignore[index]
    assert plan.size == report["ram"]["arena_bytes"]  # type: ignore[index]
    assert_plan_keeps_values(graph, plan, samples[0])
    assert plan.size + io_bytes(graph, plan) == patch["peak_bytes"]
    # the C writes no byte past the plan, and up to the end of the highest planned tensor
    # (a work buffer on top may be used in part)
    high = measured_arena(out, graph)
    top = max(
        plan.offsets[t] + graph.tensors[t].nbytes
        for t in plan.offsets
        if t in graph.tensors and plan.placed_in.get(t, 0) == 0
    )
    assert top <= high <= plan.size, (top, high, plan.size)
    assert plan.size - ALIGN < max(top, *(plan.offsets[k] + plan.sizes[k] for k in plan.sizes))


def test_cli_reports_the_stage_and_max_recompute_zero_turns_it_off(tmp_path: Path) -> None:
    spec = (
        32,
        16,
        3,
        [
            ("conv", 3, 2, True, 8, "Relu"),
            ("dw", 3, 1, True),
            ("conv", 1, 1, False, 16, "Relu"),
            ("maxpool", 2, 2, False),
        ],
        2,
    )
    path = build_cnn(spec, tmp_path / "cnn.onnx")
    r = tvc("compile", path, "--target", "mps2-an386", "--calib", "random", "--out", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert "patch-based: peak" in r.stdout and re.search(
        r"in \d+ bands, (streamed|with halo)", r.stdout
    )
    on = json.loads((tmp_path / "a" / "report.json").read_text())["ram"]
    r = tvc(
        "compile",
        path,
        "--target",
        "mps2-an386",
        "--calib",
        "random",
        "--out",
        tmp_path / "b",
        "--max-recompute",
        "0",
        "--input-in-arena",
        "no",
    )
    assert r.returncode == 0, r.stderr
    off = json.loads((tmp_path / "b" / "report.json").read_text())["ram"]
    assert on["patch"]["used"] and not off["patch"]["used"] and not off["input_in_arena"]
    assert on["patch"]["peak_bytes"] < off["patch"]["peak_bytes"]
    assert on["patch"]["extra_macs_pct"] <= 20
    bad = tvc("compile", path, "--target", "mps2-an386", "--max-recompute", "lots")
    assert bad.returncode == 2 and "share" in bad.stderr
