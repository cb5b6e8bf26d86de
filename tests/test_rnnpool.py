"""RNNPool (docs/rnnpool.md): the PyTorch layer, its one-node ONNX export with a model-local
function, the float and integer interpreter, and the generated C (host and QEMU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import ort_run, rel_err, tvc, tvc_float

from compiler.errors import ModelError
from compiler.frontend.loader import load_model
from compiler.frontend.torch import RNNPool, export_onnx
from compiler.ir.graph import Graph
from compiler.ir.ops.conv_rnnpool import overwrite_is_safe
from compiler.ir.registry import make_node
from compiler.ir.tensor import QParams, Tensor, const_tensor
from compiler.passes import plan
from compiler.passes.manager import run_passes
from compiler.passes.schedule import fuse_patchwise, patch_regions

# (in channels, H, W, patch, stride, h1, h2)
GEOMETRIES = [
    (4, 24, 28, (8, 8), (4, 4), 16, 16),
    (3, 13, 17, (4, 6), (2, 3), 8, 12),
    (2, 9, 9, (3, 3), (3, 3), 5, 7),  # odd hidden sizes: the kernels' scalar tails
    (1, 64, 96, (8, 8), (4, 4), 8, 8),  # a detector's stem: stride-2 conv, a head after
]


def _pool_model(c: int, patch, stride, h1: int, h2: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if c == 1:  # conv 3x3/2 to 4 channels, RNNPool, a 1x1 head: RNNPool's output is internal
        layer = RNNPool(4, patch, stride, h1, h2)
        _perturb(layer)
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, 2, 1), torch.nn.ReLU(), layer, torch.nn.Conv2d(4 * h2, 6, 1)
        )
    layer = RNNPool(c, patch, stride, h1, h2)
    _perturb(layer)
    return torch.nn.Sequential(torch.nn.Conv2d(c, c, 3, 1, 1), torch.nn.ReLU(), layer)


def _perturb(layer: RNNPool) -> None:
    with torch.no_grad():  # trained-looking gates and biases, not the initial ones
        for p in (layer.zeta1, layer.nu1, layer.zeta2, layer.nu2):
            p.copy_(torch.randn(()) * 2)
        for p in (layer.bz1, layer.bh1, layer.bz2, layer.bh2):
            p.copy_(torch.randn(p.shape) * 0.5)


@pytest.fixture(scope="module")
def pools(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, torch.nn.Module, tuple]]:
    root = tmp_path_factory.mktemp("rnnpool")
    out = []
    for k, (c, h, w, patch, stride, h1, h2) in enumerate(GEOMETRIES):
        m = _pool_model(c, patch, stride, h1, h2, seed=k)
        path = export_onnx(m, torch.zeros(1, c, h, w), root / f"pool{k}.onnx")
        out.append((path, m, (c, h, w)))
    return out


def test_export_is_one_custom_node_with_a_local_function(pools) -> None:
    for path, _, _ in pools:
        m = onnx.load(str(path))
        custom = [n for n in m.graph.node if n.domain == "tvc"]
        assert [n.op_type for n in custom] == ["RNNPool"]
        assert len(custom[0].input) == 9
        assert [(f.domain, f.name) for f in m.functions] == [("tvc", "RNNPool")]
        onnx.checker.check_model(m)


def test_torch_ir_and_onnxruntime_agree(pools) -> None:
    rng = np.random.default_rng(0)
    for path, model, (c, h, w) in pools:
        x = rng.standard_normal((2, c, h, w)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        (via_ort,) = ort_run(path, {"x": x})
        graph = load_model(str(path), {"x": (2, c, h, w)})
        assert [n.op for n in graph.nodes].count("rnnpool") == 1
        nchw = tvc_float(graph, {"x": x})[0]
        nhwc = tvc_float(run_passes(graph, "layout"), {"x": x})[0]
        assert rel_err(via_ort, ref) <= 1e-4
        assert rel_err(nchw, ref) <= 1e-4
        assert rel_err(nhwc, ref) <= 1e-4
        assert rel_err(nhwc, via_ort) <= 1e-4


def test_import_without_the_function(pools, tmp_path) -> None:
    path, model, (c, h, w) = pools[0]
    m = onnx.load(str(path))
    del m.functions[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(m, str(bare))
    x = np.random.default_rng(1).standard_normal((1, c, h, w)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = tvc_float(run_passes(load_model(str(bare), {}), "layout"), {"x": x})[0]
    assert rel_err(got, ref) <= 1e-4


def test_bad_rnnpool_nodes_are_clear_errors(pools, tmp_path) -> None:
    path, _, _ = pools[0]
    m = onnx.load(str(path))
    node = next(n for n in m.graph.node if n.op_type == "RNNPool")
    next(a for a in node.attribute if a.name == "cell").s = b"LSTM"
    bad = tmp_path / "lstm.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ModelError, match=r"lstm.onnx: node .*RNNPool.*cell='LSTM'"):
        load_model(str(bad), {})
    r = tvc("compile", bad, "--target", "stm32f439", "--calib", "random", "--out", tmp_path / "o")
    assert r.returncode == 3 and "Traceback" not in r.stderr and "FastGRNN" in r.stderr
    assert not (tmp_path / "o").exists()


def test_cli_compiles_rnnpool_models_for_the_f439(pools, tmp_path) -> None:
    path, _, _ = pools[3]
    out = tmp_path / "o"
    r = tvc("compile", path, "--target", "stm32f439", "--calib", "random", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "patch-wise arena" in r.stdout and (out / "pool3.c").exists()


SCHEMES = [("affine", "8", 30.0), ("seedot", "16", 50.0), ("seedot", "8", 30.0)]


@pytest.mark.parametrize("quant, bits, floor", SCHEMES)
def test_fixed_point_rnnpool_tracks_float(pools, quant: str, bits: str, floor: float) -> None:
    from compiler.compile import CompileOptions, quantize
    from compiler.quant.accuracy import evaluate

    rng = np.random.default_rng(2)
    for k, (path, _, (c, h, w)) in enumerate(pools):
        g = run_passes(load_model(str(path), {}), "layout")
        data = rng.standard_normal((10, c, h, w)).astype(np.float32)
        np.save(calib := Path(path).with_suffix(f".calib{k}.npy"), data[:6])
        np.save(valf := Path(path).with_suffix(f".val{k}.npy"), data[6:])
        opts = CompileOptions(
            str(path), "x", quant=quant, bits=bits, calib=str(calib), val=str(valf)
        )
        q, _, details = quantize(g, opts)
        val = [{"x": v[None]} for v in data[6:]]
        node = next(n for n in q.nodes if n.op == "rnnpool")
        assert len(node.attrs["state_exps"]) == 2
        assert {q.tensors[i].dtype for i in node.inputs[1:]} == {"i16", "i32"}
        assert evaluate(g, q, val)["sqnr_db"] >= floor, details


@pytest.mark.parametrize("quant, bits", [("affine", "8"), ("seedot", "8"), ("seedot", "16")])
def test_generated_c_is_bit_exact_with_the_integer_interpreter(
    pools, tmp_path, quant: str, bits: str
) -> None:
    from test_codegen import _assert_builds_for_m4, _samples

    from compiler.compile import CompileOptions, compile_model
    from compiler.ir.interpreter import run_graph
    from compiler.tools.host import build_host, run_host

    for k, (path, _, _) in enumerate(pools):
        opts = CompileOptions(
            model=str(path), target="mps2-an386", out=str(tmp_path / f"p{k}"), quant=quant,
            bits=bits, calib="random",
        )  # fmt: skip
        out = compile_model(opts)[0]
        graph = load_model(out)
        samples = _samples(graph, 8, k)
        for s, h in zip(samples, run_host(build_host(out, graph), graph, samples), strict=True):
            np.testing.assert_array_equal(h["y"], run_graph(graph, s)["y"], err_msg=str(path))
        _assert_builds_for_m4(out, tmp_path)


@pytest.mark.parametrize("arena_input", [False, True])
def test_patchwise_c_is_bit_exact_and_smaller(pools, tmp_path, arena_input: bool) -> None:
    """conv → RNNPool runs band by band (and over the consumed input with --input-in-arena):
    same integers as the layer-wise interpreter, also with freed buffers poisoned."""
    from test_codegen import _samples

    from compiler.compile import CompileOptions, compile_model
    from compiler.ir.interpreter import run_graph
    from compiler.tools.host import build_host, run_host

    used: list[bool] = []
    for k, (path, _, _) in enumerate(pools):
        opts = CompileOptions(
            model=str(path), target="mps2-an386", out=str(tmp_path / f"p{k}"), calib="random",
            input_in_arena=arena_input,
        )  # fmt: skip
        out, report = compile_model(opts)
        pw, ram = report["ram"]["patchwise"], report["ram"]
        least = min(pw["arena_bytes"], pw["layerwise_arena_bytes"])
        if ram["patch"]["used"]:  # the fused stem in a patch-based stage: lower still
            assert ram["arena_bytes"] < least, (pw, ram["patch"])
        else:
            assert ram["arena_bytes"] == least, pw
        code = (out / f"{report['name']}.c").read_text()
        assert ("conv_rnnpool_s8" in code) == pw["used"]
        used.append(pw["used"])
        if arena_input:
            assert f"{report['name']}_x_buffer(void)" in (out / f"{report['name']}.h").read_text()
            assert ram["io_bytes"] == report["layers"][-1]["output_bytes"]  # the output only
        graph = load_model(out)
        samples = _samples(graph, 6, k)
        for defines in ((), ("TVC_POISON_FREED",)):
            exe = build_host(out, graph, defines=defines)
            for s, h in zip(samples, run_host(exe, graph, samples), strict=True):
                np.testing.assert_array_equal(h["y"], run_graph(graph, s)["y"], err_msg=str(path))
    assert any(used), "no geometry ran patch-wise"


def test_overwrite_proof_refuses_outputs_that_outrun_the_input() -> None:
    """RNNPool's output may overwrite its consumed input only while every row it writes lies
    behind the rows the remaining convolution still reads."""

    def graph(h2: int) -> Graph:
        g = Graph("g", ["x"], ["y"], {}, [], {})
        g.tensors["x"] = Tensor("x", (1, 40, 40, 4), "i8")
        g.tensors["c"] = Tensor("c", (1, 40, 40, 4), "i8", qparams=QParams((0.1,), (0,)))
        g.tensors["y"] = Tensor("y", (1, 9, 9, 4 * h2), "i8")
        g.tensors["w"] = const_tensor("w", np.zeros((4, 3, 3, 4), np.int8))
        ws = [
            np.zeros(s, np.float32)
            for s in [(8, 4), (8, 8), (8,), (8,), (h2, 8), (h2, h2), (h2,), (h2,)]
        ]
        names = [g.add_const(f"r{i}", const_tensor("r", v)) for i, v in enumerate(ws)]
        g.nodes = [
            make_node(
                "conv2d", ["x", "w"], ["c"], "conv", kernel=[3, 3], pad=[1, 1, 1, 1],
                layout="NHWC",
            ),
            make_node(
                "rnnpool", ["c", *names], ["y"], "pool", patch=[8, 8], stride=[4, 4], hidden1=8,
                hidden2=h2, zeta1=0.5, nu1=0.1, zeta2=0.5, nu2=0.1, layout="NHWC",
            ),
        ]  # fmt: skip
        return g

    small, large = graph(4), graph(32)
    assert [r.band_rows for r in patch_regions(small)] == [8]
    fused_small, fused_large = fuse_patchwise(small), fuse_patchwise(large)
    assert [n.op for n in fused_small.nodes] == ["conv_rnnpool"]
    assert "c" not in fused_small.tensors  # the conv output is never materialized
    # rows of 9 x 16 B behind 4 input rows of 160 B
    assert overwrite_is_safe(fused_small, fused_small.nodes[0])
    # 9 x 128 B: row 0 outruns the 7 rows read
    assert not overwrite_is_safe(fused_large, fused_large.nodes[0])
    for g in (fused_small, fused_large):
        g.outputs = []  # as if a head read y: the planner may then place it over the frame
    assert plan.aliases(fused_small, arena_inputs=True) == {"y": "x"}
    assert plan.aliases(fused_large, arena_inputs=True) == {}
