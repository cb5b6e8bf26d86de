"""Fit and prove it: the arena plan, budgets from the linked ELF, QEMU runs bit-exact on the
Cortex-M4 and Cortex-M7 twins, tvc check against arm-none-eabi-size."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tvc
from tvc_models.export import export
from tvc_models.synthetic import mask_images
from tvc_models.zoo import MODEL_NAMES, ResNet18, _randomize_bn

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.frontend.onnx import load_onnx
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.passes.manager import run_passes
from compiler.passes.plan import lifetimes, plan_arena
from compiler.quant.affine import quantize_affine
from compiler.quant.calibrate import observe_ranges
from compiler.tools.boards import get_board
from compiler.tools.firmware import build_firmware
from compiler.tools.host import build_host, run_host
from compiler.tools.qemu import run_qemu

CHAINS = ("mobilenet_v1_025",)


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("calib")
    x, _ = mask_images(40, seed=31)
    np.save(d / "calib.npy", x[:32])
    np.save(d / "val.npy", x[32:])
    return d


@pytest.fixture(scope="module")
def compiled(exported, calib, tmp_path_factory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("fit")
    outs = {}
    for name in MODEL_NAMES:
        opts = CompileOptions(
            model=str(exported(name)),
            target="mps2-an386",
            out=str(d / name),
            calib=str(calib / "calib.npy"),
            val=str(calib / "val.npy"),
        )
        outs[name] = compile_model(opts)[0]
    opts = CompileOptions(
        model=str(exported("detector")),
        target="mps2-an386",
        out=str(d / "det16"),
        calib=str(calib / "calib.npy"),
        quant="seedot",
        bits="16",
    )
    outs["detector_seedot16"] = compile_model(opts)[0]
    return outs


def _samples(graph, n: int, seed: int) -> list[dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    return [
        {
            i: rng.integers(
                np.iinfo(DTYPES[graph.tensors[i].dtype]).min,
                np.iinfo(DTYPES[graph.tensors[i].dtype]).max + 1,
                graph.tensors[i].shape,
            ).astype(DTYPES[graph.tensors[i].dtype])
            for i in graph.inputs
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_plan_reaches_the_lower_bound_and_never_overlaps_live_buffers(
    exported, calib, name: str
) -> None:
    g = run_passes(load_onnx(exported(name)), "layout")
    x = np.load(calib / "calib.npy")[:8]
    q = quantize_affine(g, observe_ranges(g, [{"x": x[i : i + 1]} for i in range(8)]))
    plan = plan_arena(q)
    limit = 1.0 if name in CHAINS else 1.05
    assert plan.size <= limit * plan.lower_bound, (plan.size, plan.lower_bound)
    assert plan.size < plan.naive
    life = lifetimes(q)
    placed = [
        (k, plan.offsets[k], plan.offsets[k] + q.tensors[k].nbytes, *life[k]) for k in plan.offsets
    ]

    def root(t: str) -> str:
        return plan.aliases.get(t, t)

    for a in placed:
        for b in placed:
            if root(a[0]) == root(b[0]):
                continue  # a reshape and its input are the same bytes by design
            if a[0] < b[0] and a[3] <= b[4] and b[3] <= a[4]:  # alive together
                assert a[2] <= b[1] or b[2] <= a[1], (
                    f"{a[0]} and {b[0]} share bytes while both live"
                )


def test_poisoned_freed_buffers_do_not_change_results(compiled) -> None:
    """Debug build that overwrites every dead buffer: a planner overlap would corrupt outputs."""
    for name, out in compiled.items():
        graph = load_model(out)
        samples = _samples(graph, 4, 3)
        host = run_host(build_host(out, graph, defines=("TVC_POISON_FREED",)), graph, samples)
        for s, h in zip(samples, host, strict=True):
            for o in graph.outputs:
                np.testing.assert_array_equal(h[o], run_graph(graph, s)[o], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["mps2-an386", "mps2-an500"])
def test_qemu_is_bit_exact_with_host_and_interpreter(compiled, twin: str) -> None:
    board = get_board(twin)
    for name, out in compiled.items():
        graph = load_model(out)
        samples = _samples(graph, 3, 4)
        outs, instructions = run_qemu(out, graph, board, samples)
        host = run_host(build_host(out, graph), graph, samples)
        for s, q, h in zip(samples, outs, host, strict=True):
            for o in graph.outputs:
                np.testing.assert_array_equal(q[o], h[o], err_msg=f"{name} on {twin}")
                np.testing.assert_array_equal(
                    q[o], run_graph(graph, s)[o], err_msg=f"{name} on {twin}"
                )
        assert all(i > 0 for i in instructions)


def test_instruction_counts_are_deterministic(compiled) -> None:
    out = compiled["detector"]
    graph = load_model(out)
    samples = _samples(graph, 2, 9)
    _, first = run_qemu(out, graph, get_board("mps2-an386"), samples)
    _, second = run_qemu(out, graph, get_board("mps2-an386"), samples)
    assert first == second


def _compile_f439(
    model: Path, calib: Path, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return tvc(
        "compile",
        model,
        "--target",
        "stm32f439",
        "--ram",
        "192k",
        "--calib",
        calib / "calib.npy",
        "--out",
        out,
        *extra,
        timeout=600,
    )


def test_mobilenet_fits_the_f439_in_192k(exported, calib, tmp_path) -> None:
    out = tmp_path / "mbv1"
    r = _compile_f439(exported("mobilenet_v1_025"), calib, out)
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    ram, flash = report["ram"], report["flash"]
    assert (
        ram["peak_bytes"] == ram["arena_bytes"] + ram["stack_bytes"] + ram["io_bytes"] <= 192 * 1024
    )
    # patch-based stages: the frame's rows die and the stage output's bands come alive band
    # by band; first fit places those staircases within 10% of the lower bound here
    assert 0 < ram["stack_bytes"] < 2048
    assert ram["lower_bound_bytes"] <= ram["arena_bytes"] <= 1.1 * ram["lower_bound_bytes"]
    patch = ram["patch"]
    assert patch["used"] and patch["peak_bytes"] < 0.75 * patch["layerwise_peak_bytes"]
    assert patch["peak_bytes"] == ram["arena_bytes"] + ram["io_bytes"]
    assert flash["weights_bytes"] + flash["code_bytes"] <= flash["total_bytes"] <= 2 * 1024 * 1024
    assert "RAM      peak" in r.stdout and "measured from the linked ELF" in r.stdout


@pytest.mark.slow
def test_resnet18_224_is_refused_with_a_breakdown(tmp_path) -> None:
    torch.manual_seed(0)
    path = export(_randomize_bn(ResNet18(), 0), (1, 3, 224, 224), tmp_path / "resnet18.onnx")
    np.save(
        tmp_path / "calib.npy",
        np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32),
    )
    out = tmp_path / "r18"
    r = tvc(
        "compile",
        path,
        "--target",
        "stm32f439",
        "--ram",
        "192k",
        "--calib",
        tmp_path / "calib.npy",
        "--out",
        out,
        timeout=900,
    )
    assert r.returncode == 4, r.stderr
    assert (
        "does not fit stm32f439" in r.stderr
        and "RAM: arena" in r.stderr
        and "flash: weights alone" in r.stderr
    )
    assert (
        "live B" in r.stderr
        and "conv2d" in r.stderr
        and "hint:" in r.stderr
        and "Traceback" not in r.stderr
    )
    assert not out.exists()


def test_check_matches_arm_none_eabi_size_on_a_firmware_with_other_code(compiled, tmp_path) -> None:
    extra = tmp_path / "app.c"
    extra.write_text(
        "#include <stdint.h>\n"
        "const uint8_t app_table[3000] = {1, 2, 3};\n"
        "uint8_t app_buffer[5000];\nint32_t app_counter = 7;\n"
        "int app_tick(int x) {\n"
        "    app_buffer[x % 5000]++;\n    return app_table[x % 3000] + app_counter;\n}\n"
    )
    out = compiled["shufflenet_v2"]
    graph = load_model(out)
    fw = build_firmware(out, graph, get_board("stm32f439"), extra_sources=(extra,))
    size = subprocess.run(
        ["arm-none-eabi-size", str(fw.elf)], capture_output=True, text=True, check=True
    ).stdout
    text, data, bss = (int(v) for v in size.splitlines()[1].split()[:3])
    r = tvc("check", fw.elf, "--board", "stm32f439", "--prefix", graph.name + "_", "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert (got["text"], got["data"], got["bss"]) == (text, data, bss)
    assert got["flash_bytes"] == text + data and got["ram_bytes"] == data + bss
    assert got["models"][graph.name + "_"]["const"] > 0
    r = tvc("check", fw.elf, "--ram", "1k")
    assert r.returncode == 4 and "ram over budget" in r.stderr


def test_profile_attributes_instructions_to_layers(compiled) -> None:
    from compiler.tools.qemu import emulate

    out = compiled["mobilenet_v1_025"]
    graph = load_model(out)
    run = emulate(out, graph, get_board("mps2-an386"), _samples(graph, 1, 2), profile=True)
    steps = run.per_step[0]
    assert len(steps) == len(graph.nodes)
    assert all(s > 0 for s, n in zip(steps, graph.nodes, strict=True) if n.op == "conv2d")
    # the marks cost a few dozen instructions each; the rest is the layers
    assert 0.97 * run.instructions[0] <= sum(steps) <= run.instructions[0]


def test_schedule_runs_branches_one_at_a_time() -> None:
    """Two wide branches each reduced to a small map: run each branch to its end before the
    next (the exported order computes both wide maps first)."""
    from compiler.ir.graph import Graph
    from compiler.ir.registry import make_node
    from compiler.ir.tensor import Tensor, const_tensor
    from compiler.passes.schedule import schedule

    rng = np.random.default_rng(0)
    t = {"x": Tensor("x", (1, 16, 16, 4), "f32", "NHWC")}
    for k in (1, 2):
        t[f"w{k}"] = const_tensor(f"w{k}", rng.standard_normal((32, 1, 1, 4)).astype(np.float32))
        t[f"b{k}"] = Tensor(f"b{k}", (1, 16, 16, 32), "f32", "NHWC")
        t[f"p{k}"] = Tensor(f"p{k}", (1, 1, 1, 32), "f32", "NHWC")
    t["y"] = Tensor("y", (1, 1, 1, 64), "f32", "NHWC")
    nodes = [
        make_node("conv2d", ["x", "w1"], ["b1"], kernel=[1, 1]),
        make_node("conv2d", ["x", "w2"], ["b2"], kernel=[1, 1]),
        make_node("global_avg_pool", ["b1"], ["p1"]),
        make_node("global_avg_pool", ["b2"], ["p2"]),
        make_node("concat", ["p1", "p2"], ["y"], axis=3),
    ]
    g = Graph("branches", ["x"], ["y"], t, nodes)
    s = schedule(g)
    assert [n.outputs[0] for n in s.nodes] == ["b1", "p1", "b2", "p2", "y"]
    assert plan_arena(s).lower_bound < plan_arena(g).lower_bound
    x = rng.standard_normal((1, 16, 16, 4)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(s, {"x": x})["y"], run_graph(g, {"x": x})["y"])


def _assert_f439_and_poisoned_exact(out: Path) -> None:
    """The F439 twin and a poisoned host build both equal the integer interpreter."""
    graph = load_model(out)
    samples = _samples(graph, 2, 8)
    outs, _ = run_qemu(out, graph, get_board("stm32f439"), samples)
    poisoned = run_host(build_host(out, graph, defines=("TVC_POISON_FREED",)), graph, samples)
    for s, q, h in zip(samples, outs, poisoned, strict=True):
        ref = run_graph(graph, s)["y"]
        np.testing.assert_array_equal(q["y"], ref)
        np.testing.assert_array_equal(h["y"], ref)


def test_resnet9_fits_96k_of_sram_patch_based(exported, calib, tmp_path) -> None:
    """ResNet-9 (64x64) layer by layer needs ~209 KB (SRAM + CCM, below); patch-based stages
    bring it under 96 KB of SRAM alone within the default 20% recompute cap, bit-exact on the
    F439 twin and in a poisoned build."""
    out = tmp_path / "r9"
    r = _compile_f439(exported("resnet9"), calib, out)
    assert r.returncode == 0, r.stderr
    ram = json.loads((out / "report.json").read_text())["ram"]
    assert not ram["regions"] and ram["main_ram_bytes"] == ram["peak_bytes"] <= 96 * 1024
    assert ram["patch"]["used"] and ram["patch"]["extra_macs_pct"] <= 20
    _assert_f439_and_poisoned_exact(out)


def test_buffers_spill_into_ccm_when_sram_is_full(exported, calib, tmp_path) -> None:
    """ResNet-9 (64x64) layer by layer needs ~209 KB: over the F439's 192 KB SRAM, so the
    largest buffers live at the peak move to the 64 KB CCM; the firmware still runs
    bit-exact."""
    out = tmp_path / "r9"
    r = _compile_f439(exported("resnet9"), calib, out, "--max-recompute", "0")
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    ram = report["ram"]
    assert (
        ram["regions"]["CCM"]["arena_bytes"] > 0 and ram["regions"]["CCM"]["section"] == ".ccmram"
    )
    assert ram["main_ram_bytes"] <= 192 * 1024 < ram["peak_bytes"]
    assert "buffers in CCM" in r.stdout
    _assert_f439_and_poisoned_exact(out)


def test_check_reports_regions_and_stack(compiled) -> None:
    out = compiled["detector"]
    graph = load_model(out)
    fw = build_firmware(out, graph, get_board("stm32f439"))
    r = tvc("check", fw.elf, "--board", "stm32f439", "--json")
    got = json.loads(r.stdout)
    assert got["stack_bytes"] >= fw.main_stack
    regions = got["regions"]
    assert (
        regions["FLASH"]["used"] == got["text"] + got["data"]
    )  # .data runs in RAM; its initial image is in flash
    assert regions["SRAM"]["used"] == got["data"] + got["bss"] and regions["CCM"]["used"] == 0


def test_all_code_from_the_output_directory_is_attributed_to_the_model(compiled) -> None:
    """The report's code bytes are the symbols with the model's prefix: every static function
    the directory's C files define must carry it (the globals are TVC_FN names already)."""
    from elftools.elf.elffile import ELFFile

    for out in compiled.values():
        graph = load_model(out)
        fw = build_firmware(out, graph, get_board("mps2-an386"))
        ours = {p.name for p in out.glob("*.c")}
        unprefixed, source, seen = [], "", 0
        with fw.elf.open("rb") as f:
            for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
                kind = sym["st_info"]["type"]
                if kind == "STT_FILE":
                    source = sym.name
                elif sym["st_info"]["bind"] != "STB_LOCAL":
                    source = ""  # globals follow the locals and belong to no file entry
                elif kind == "STT_FUNC" and sym["st_size"] and source in ours:
                    seen += 1
                    if not sym.name.startswith(graph.name + "_"):
                        unprefixed.append(f"{source}: {sym.name}")
        assert seen > 0, "no local functions found for the model's files"
        assert not unprefixed, unprefixed


def test_missing_cross_toolchain_is_exit_6_with_the_install_line(compiled, tmp_path) -> None:
    import os
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("gcc", "timeout"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir)}
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 64, 64), np.float32))
    r = tvc("run", compiled["detector"], "--input", tmp_path / "x.npy", "--engine", "qemu", env=env)
    assert r.returncode == 6, r.stderr
    assert "not found" in r.stderr and "apt-get install" in r.stderr and "Traceback" not in r.stderr


def test_optimize_speed_stays_within_the_flash_budget(exported, calib, tmp_path) -> None:
    """--optimize speed's packed weights cost flash; when they would not fit the budget, the
    compile falls back to --optimize size (same bits) and says so, instead of failing."""

    def build(tag: str, optimize: str = "speed", flash: str | None = None) -> dict:  # type: ignore[type-arg]
        opts = CompileOptions(
            model=str(exported("detector")),
            target="stm32f439",
            out=str(tmp_path / tag),
            calib=str(calib / "calib.npy"),
            optimize=optimize,
            flash=flash,
        )
        return compile_model(opts)[1]

    speed, size = build("speed"), build("size", "size")
    fs, fz = speed["flash"]["total_bytes"], size["flash"]["total_bytes"]
    assert speed["optimize"] == "speed" and "optimize_note" not in speed and fs > fz
    between = build("between", flash=str((fs + fz) // 2))
    assert between["optimize"] == "size" and between["flash"]["total_bytes"] == fz
    assert f"{fs:,} B of flash" in between["optimize_note"]
    assert (
        "optimize size (--optimize speed needed"
        in (tmp_path / "between" / "summary.txt").read_text()
    )
