"""MLPerf Tiny benchmark: the four reference int8 models on the Cortex-M4 twin, next to the best
published Cortex-M4 results (MLPerf Tiny v1.1-v1.3, closed division, NUCLEO-L4R5ZI at 120 MHz,
cycles = median latency x clock; see ../shared notes and the README).

For each model: tvc's instructions per inference layer by layer (`--max-recompute 0`; QEMU
-icount, the mean over the inputs), MACs
before and after dead-channel elimination, peak RAM and flash from the linked ELF, and the
`--kernels cmsis-nn` instructions when CMSIS_NN_ROOT is set, and what the default compile
(patch-based stages where they lower the peak) takes and needs. Every model is checked bit-exact
with TFLite Micro's Python interpreter on 32 random inputs, on the host and on the twin.

The models are read from a checkout of mlcommons/tiny outside this repository:
    MLPERF_TINY_ROOT=/path/to/tiny python benchmarks/bench_mlperf.py [--layers] [--inputs N]
Without it the benchmark says so and skips. Results: benchmarks/results/mlperf.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from compiler.compile import CompileOptions, compile_model, run_pipeline  # noqa: E402
from compiler.frontend.loader import load_model  # noqa: E402
from compiler.ir.graph import Graph, Node  # noqa: E402
from compiler.tools.boards import get_board  # noqa: E402
from compiler.tools.host import build_host, run_host  # noqa: E402
from compiler.tools.qemu import emulate  # noqa: E402
from compiler.tools.report import layer_table  # noqa: E402

TRAINED = "benchmark/training/{}/trained_models/{}"
# name: (file under the checkout, best published M4 cycles, by whom)
MODELS = {
    "IC": (
        TRAINED.format("image_classification", "pretrainedResnet_quant.tflite"),
        19_800_000,
        "ST X-CUBE-AI 9.0/10.2 (165 ms)",
    ),
    "KWS": (
        TRAINED.format("keyword_spotting", "kws_ref_model.tflite"),
        5_184_000,
        "ST X-CUBE-AI 9.0 (43.2 ms)",
    ),
    "VWW": (
        TRAINED.format("visual_wake_words", "vww_96_int8.tflite"),
        10_668_000,
        "ST X-CUBE-AI 9.0 (88.9 ms)",
    ),
    "AD": (
        TRAINED.format("anomaly_detection", "ad01_int8.tflite"),
        486_000,
        "Plumerai (4.05 ms)",
    ),
}
GOAL = 0.9  # instructions <= 0.9 x the best published cycles
TWIN = "mps2-an386"


def tflm_outputs(blob: bytes, samples: list[np.ndarray]) -> list[np.ndarray]:
    """TFLite Micro's Python interpreter (PyPI tflite-micro), the oracle for these models."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(blob, arena_size=1 << 21)
    outs = []
    for x in samples:
        interp.set_input(x, 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)))
    return outs


def layer_kind(graph: Graph, node: Node) -> str:
    if node.op != "conv2d":
        return node.op
    k = node.attrs["kernel"]
    g = int(node.attrs["groups"])  # type: ignore[call-overload]
    if g > 1 and g == graph.tensors[node.inputs[0]].shape[3]:
        return f"depthwise {k[0]}x{k[1]}"  # type: ignore[index]
    return f"conv {k[0]}x{k[1]}"  # type: ignore[index]


def measure(
    path: Path,
    work: Path,
    n_inputs: int,
    layers: bool,
    kernels: str,
    optimize: str = "speed",
    max_recompute: float = 0.0,
) -> dict[str, object]:
    """Compiled layer by layer (--max-recompute 0) unless `max_recompute` says otherwise: the
    speed figures; the default compile's patch-based stages trade instructions for RAM."""
    out = work / f"{path.stem}_{kernels}_{optimize}_{max_recompute}"
    opts = CompileOptions(
        model=str(path),
        target=TWIN,
        out=str(out),
        kernels=kernels,
        optimize=optimize,
        max_recompute=max_recompute,
    )
    _, report = compile_model(opts)
    graph = load_model(out)
    x_name = graph.inputs[0]
    shape = graph.tensors[x_name].shape
    rng = np.random.default_rng(2024)
    xs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(n_inputs)]
    samples = [{x_name: x} for x in xs]
    ref = tflm_outputs(path.read_bytes(), xs)
    host = run_host(build_host(out, graph), graph, samples)
    run = emulate(out, graph, get_board(TWIN), samples, profile=layers)
    y_name = graph.outputs[0]
    exact_host = all(
        np.array_equal(h[y_name].reshape(r.shape), r) for h, r in zip(host, ref, strict=True)
    )
    exact_twin = all(
        np.array_equal(q[y_name].reshape(r.shape), r) for q, r in zip(run.outputs, ref, strict=True)
    )
    rows = layer_table(graph)
    macs = sum(int(r["macs"]) for r in rows)  # type: ignore[call-overload]
    ram, flash = report["ram"], report["flash"]
    result: dict[str, object] = {
        "instructions": int(np.mean(run.instructions)),
        "macs": macs,
        "instructions_per_mac": round(float(np.mean(run.instructions)) / macs, 3),
        "peak_ram": ram["peak_bytes"],  # type: ignore[index]
        "flash": flash["total_bytes"],  # type: ignore[index]
        "code": flash["code_bytes"],  # type: ignore[index]
        "weights": flash["weights_bytes"],  # type: ignore[index]
        "bit_exact_tflm_host": exact_host,
        "bit_exact_tflm_twin": exact_twin,
        "inputs": n_inputs,
    }
    if layers:
        per_layer, by_kind = [], defaultdict(lambda: [0, 0])
        for node, row, n in zip(graph.nodes, rows, run.per_step[0], strict=True):
            kind = layer_kind(graph, node)
            m = int(row["macs"])  # type: ignore[call-overload]
            per_layer.append({"layer": node.label, "kind": kind, "macs": m, "instructions": n})
            by_kind[kind][0] += m
            by_kind[kind][1] += n
        result["layers"] = per_layer
        result["by_kind"] = {
            k: {"macs": m, "instructions": n, "per_mac": round(n / m, 3) if m else None}
            for k, (m, n) in sorted(by_kind.items())
        }
    return result


def original_macs(path: Path) -> int:
    graph = run_pipeline(CompileOptions(model=str(path), target=TWIN), "quantize").graph
    return sum(int(r["macs"]) for r in layer_table(graph))  # type: ignore[call-overload]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", action="store_true", help="instructions per layer and kind")
    ap.add_argument("--inputs", type=int, default=32, help="random inputs per model (32)")
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), help="a subset of the models")
    args = ap.parse_args()
    root = os.environ.get("MLPERF_TINY_ROOT")
    if not root or not Path(root).is_dir():
        print("SKIPPED bench_mlperf: set MLPERF_TINY_ROOT to a checkout of mlcommons/tiny")
        return 0
    cmsis = bool(os.environ.get("CMSIS_NN_ROOT"))
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as d:
        for name in args.only or MODELS:
            rel, cycles, by = MODELS[name]
            path = Path(root) / rel
            if not path.is_file():
                print(f"SKIPPED {name}: {path} not found")
                continue
            print(f"{name}: {path.name} ...", flush=True)
            r = measure(path, Path(d), args.inputs, args.layers, "portable")
            r["model"] = path.name
            r["macs_before_dce"] = original_macs(path)
            r["best_m4_cycles"] = cycles
            r["best_m4_by"] = by
            r["ratio"] = round(int(r["instructions"]) / cycles, 3)  # type: ignore[call-overload]
            r["goal"] = int(GOAL * cycles)
            patch = measure(path, Path(d), min(args.inputs, 8), False, "portable", "speed", 0.2)
            r["patch_based"] = {k: patch[k] for k in ("instructions", "peak_ram", "flash")}
            r["patch_based"]["bit_exact"] = (  # type: ignore[index]
                patch["bit_exact_tflm_host"] and patch["bit_exact_tflm_twin"]
            )
            size = measure(path, Path(d), min(args.inputs, 4), False, "portable", "size")
            r["size"] = {k: size[k] for k in ("instructions", "flash", "code", "weights")}
            r["size"]["bit_exact"] = size["bit_exact_tflm_host"] and size["bit_exact_tflm_twin"]  # type: ignore[index]
            if cmsis:
                c = measure(path, Path(d), min(args.inputs, 4), False, "cmsis-nn")
                r["cmsis_nn_instructions"] = c["instructions"]
                r["cmsis_nn_bit_exact"] = c["bit_exact_tflm_host"] and c["bit_exact_tflm_twin"]
            results[name] = r
    out = ROOT / "benchmarks" / "results" / "mlperf.json"
    if not args.only:
        out.write_text(json.dumps(results, indent=2) + "\n")
    cols = [
        "model",
        "MACs (after dead channels)",
        "tvc instructions",
        "--optimize size",
        "cmsis-nn",
        "best published M4 cycles",
        "ratio",
        "goal",
        "peak RAM",
        "flash",
        "bit-exact (TFLM, host + twin)",
        "default compile (patch-based): instructions, peak RAM",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for name, r in results.items():
        cm = f"{r['cmsis_nn_instructions']:,}" if "cmsis_nn_instructions" in r else "n/a"
        exact = r["bit_exact_tflm_host"] and r["bit_exact_tflm_twin"]
        sz = r["size"]
        print(
            f"| {name} | {r['macs_before_dce']:,} ({r['macs']:,}) | {r['instructions']:,} | "
            f"{sz['instructions']:,} ({sz['flash']:,} B flash) | {cm} | "
            f"{r['best_m4_cycles']:,} ({r['best_m4_by']}) | {r['ratio']}x | "
            f"{'met' if int(r['instructions']) <= int(r['goal']) else 'missed'} "  # type: ignore[call-overload]
            f"(<= {r['goal']:,}) | {r['peak_ram']:,} | {r['flash']:,} | "
            f"{'yes' if exact else 'NO'} ({r['inputs']}) | {r['patch_based']['instructions']:,}, "  # type: ignore[index]
            f"{r['patch_based']['peak_ram']:,} |"  # type: ignore[index]
        )
    if args.layers:
        for name, r in results.items():
            print(f"\n{name}: instructions per MAC by layer kind")
            for kind, v in r["by_kind"].items():  # type: ignore[union-attr]
                m, n = v["macs"], v["instructions"]
                print(f"  {kind:16s} {m:>12,} MACs {n:>12,} instructions  {v['per_mac']}/MAC")
            print(f"{name}: per layer")
            for row in r["layers"]:  # type: ignore[union-attr]
                pm = row["instructions"] / row["macs"] if row["macs"] else 0
                print(
                    f"  {row['kind']:16s} {row['macs']:>10,} {row['instructions']:>11,} "
                    f"{pm:6.2f}  {row['layer'][-50:]}"
                )
    bad = [
        n
        for n, r in results.items()
        if not (
            r["bit_exact_tflm_host"]
            and r["bit_exact_tflm_twin"]
            and r["size"]["bit_exact"]  # type: ignore[index]
            and r["patch_based"]["bit_exact"]  # type: ignore[index]
        )
    ]
    if bad:
        print(f"NOT BIT-EXACT with TFLite Micro: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
