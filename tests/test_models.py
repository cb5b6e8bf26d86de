"""The model families our users deploy, through both exporters: float IR == onnxruntime at
every stage, glue and BatchNorm gone after canonicalize, no run-time transpose after layout."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from helpers import ort_run, rel_err, tvc_float
from tvc_models.zoo import MODEL_NAMES

from compiler.frontend.onnx import load_onnx
from compiler.ir.text import parse_graph, print_graph
from compiler.passes.manager import STAGES, run_passes

EXPORTERS = ("torchscript", "dynamo")
GLUE = {"shape", "gather", "constant_of_shape", "expand", "range", "cast"}
GONE_AFTER_CANON = GLUE | {"batch_norm", "dropout", "identity"}


def _inputs(shape: tuple[int, ...], n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_float_matches_onnxruntime_at_every_stage(exported, name: str, exporter: str) -> None:
    path = exported(name, exporter)
    graph = load_onnx(path)
    for stage in STAGES:
        g = run_passes(graph, stage)  # verifies the IR after every pass
        for x in _inputs(graph.tensors["x"].shape):
            refs = ort_run(path, {"x": x})
            ours = tvc_float(g, {"x": x})
            for o, r in zip(ours, refs, strict=True):
                assert rel_err(o, r) <= 1e-4, f"{stage}: {rel_err(o, r)}"


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_canonicalize_and_layout_leave_only_compute(exported, name: str, exporter: str) -> None:
    graph = load_onnx(exported(name, exporter))
    before = Counter(graph.ops())
    canon = run_passes(graph, "canonicalize")
    assert not GONE_AFTER_CANON & set(canon.ops()), Counter(canon.ops())
    assert not any(n.op == "reshape" and len(n.inputs) == 2 for n in canon.nodes)
    nhwc = run_passes(graph, "layout")
    assert "transpose" not in nhwc.ops(), Counter(nhwc.ops())
    for name_, t in nhwc.tensors.items():
        if len(t.shape) == 4 and not t.is_const:
            assert t.layout == "NHWC", name_
    # the raw TorchScript export really had the things canonicalize must remove
    if exporter == "torchscript":
        assert before["batch_norm"] > 0
        if name in ("shufflenet_v2", "detector"):
            assert before["shape"] > 0 and before["gather"] > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_text_form_round_trips_at_every_stage(exported, name: str) -> None:
    graph = load_onnx(exported(name, "torchscript"))
    for stage in STAGES:
        g = run_passes(graph, stage)
        text = print_graph(g)
        back = parse_graph(text)
        assert back.same_as(g), stage
        assert print_graph(back) == text


def test_flatten_into_linear_permutes_weights_not_data(exported) -> None:
    """The classic PyTorch→TFLite bug: NHWC bytes flattened into an NCHW-trained Linear."""
    g = run_passes(load_onnx(exported("resnet9_flatten", "torchscript")), "layout")
    dense = next(n for n in g.nodes if n.op == "dense")
    flat = next(n for n in g.nodes if n.outputs[0] == dense.inputs[0])
    assert flat.op == "reshape" and g.tensors[flat.inputs[0]].layout == "NHWC"
    assert g.tensors[dense.inputs[0]].shape == (1, 64 * 4 * 4)


def test_channel_shuffle_becomes_permutation_and_folds_where_it_can(exported) -> None:
    g0 = load_onnx(exported("shufflenet_v2", "torchscript"))
    shuffles = sum(1 for n in run_passes(g0, "canonicalize").nodes if n.op == "transpose")
    g = run_passes(g0, "layout")
    perms = [n for n in g.nodes if n.op == "permute_channels"]
    assert shuffles == 6
    # the last shuffle feeds conv5 (a 1x1 conv) and folds into its weights
    assert len(perms) == shuffles - 1


def test_passes_do_not_mutate_their_input(exported) -> None:
    graph = load_onnx(exported("detector", "torchscript"))
    text = print_graph(graph)
    run_passes(graph, "layout")
    assert print_graph(graph) == text


@pytest.mark.slow
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_older_opsets(exported, name: str, opset: int) -> None:
    """Attribute-vs-input variants (Clip, Split, Squeeze/Unsqueeze, ReduceMean) of older opsets."""
    path = exported(name, "torchscript", opset)
    graph = load_onnx(path)
    g = run_passes(graph, "layout")
    assert "transpose" not in g.ops()
    (x,) = _inputs(graph.tensors["x"].shape, 1)
    for o, r in zip(tvc_float(g, {"x": x}), ort_run(path, {"x": x}), strict=True):
        assert rel_err(o, r) <= 1e-4
