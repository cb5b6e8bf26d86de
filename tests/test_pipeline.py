"""The declared pipeline: `tvc ir --after` every stage, and each stage's own verifier refusing
what it exists to catch (a layout-sensitive op left on NCHW data, a float activation after
quantize, an op without a lowering, two live buffers sharing bytes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers import tvc

from compiler.compile import STAGES, CompileOptions, run_pipeline
from compiler.errors import IRError
from compiler.ir.lowering import CodegenError
from compiler.ir.registry import make_node
from compiler.ir.text import parse_graph
from compiler.ir.verify import verify_layout, verify_lowerable, verify_quantized
from compiler.passes.plan import verify_plan

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mask_cnn.onnx"


def test_ir_prints_every_stage(tmp_path: Path) -> None:
    for stage in STAGES:
        r = tvc("ir", EXAMPLE, "--after", stage, "--calib", "random", "--full")
        assert r.returncode == 0, (stage, r.stderr)
        graph = parse_graph(r.stdout)  # the plan's comment lines parse away
        quantized = STAGES.index(stage) >= STAGES.index("quantize")
        assert (graph.tensors[graph.inputs[0]].dtype == "i8") == quantized
        assert ("// plan: arena" in r.stdout) == (stage == "plan")


def test_quantize_stages_need_calibration_data() -> None:
    r = tvc("ir", EXAMPLE, "--after", "schedule")
    assert r.returncode == 2 and "--calib" in r.stderr and "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def planned():  # type: ignore[no-untyped-def]
    return run_pipeline(CompileOptions(model=str(EXAMPLE), target="", calib="random"))


def test_layout_verifier_refuses_nchw_spatial_ops(planned) -> None:  # type: ignore[no-untyped-def]
    g = planned.graph.copy()
    verify_layout(g)
    conv = next(n for n in g.nodes if n.op == "conv2d")
    conv.attrs = {**conv.attrs, "layout": "NCHW"}
    with pytest.raises(IRError, match="still runs on NCHW"):
        verify_layout(g)


def test_quantize_verifier_refuses_float_activations(planned) -> None:  # type: ignore[no-untyped-def]
    g = planned.graph.copy()
    verify_quantized(g)
    t = g.nodes[0].outputs[0]
    g.tensors[t] = g.tensors[t].copy(dtype="f32", qparams=None)
    with pytest.raises(IRError, match=f"activation {t} is f32"):
        verify_quantized(g)


def test_lowering_verifier_names_the_node_without_a_kernel(planned) -> None:  # type: ignore[no-untyped-def]
    g = planned.graph.copy()
    verify_lowerable(g, "portable")
    x = g.nodes[-1].outputs[0]  # a softmax over the batch axis: no C kernel does that
    g.nodes.append(make_node("softmax", [x], ["extra"], "odd_softmax", axis=0))
    g.tensors["extra"] = g.tensors[x].copy(name="extra")
    with pytest.raises(CodegenError, match="odd_softmax.*softmax.*no C kernel"):
        verify_lowerable(g, "portable")


def test_plan_verifier_refuses_overlapping_live_buffers(planned) -> None:  # type: ignore[no-untyped-def]
    plan = planned.plan
    verify_plan(planned.graph, plan)
    # two buffers live at the same step, moved onto the same bytes
    whole = {b: fl for b, fl in plan.lives.items() if len(plan.pieces_of(b)) == 1}
    step = max(range(-1, len(planned.graph.nodes)), key=lambda s: sum(
        f <= s <= z for f, z in whole.values()
    ))  # fmt: skip
    live = [b for b, (f, z) in whole.items() if f <= step <= z]
    assert len(live) >= 2
    offsets = dict(plan.offsets)
    offsets[live[1]] = offsets[live[0]]
    bad = dataclasses.replace(plan, offsets=offsets)
    with pytest.raises(IRError, match="overlap while both are live"):
        verify_plan(planned.graph, bad)
