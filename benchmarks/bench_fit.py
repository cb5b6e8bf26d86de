"""Fit benchmark: for each test model, what tvc's C costs on the Cortex-M4 twin (int8; three
networks also as SeeDot int16), and (for the int8 .tflite models) the smallest TFLite Micro arena
that runs the same model.

Every model is compiled twice: as tvc compiles it by default (patch-based stages where they
lower the peak, within 20% more MACs) and layer by layer (`--max-recompute 0`); the table gives
both peaks (arena + I/O), the extra MACs and the extra instructions. The MLPerf Tiny int8
models come from a checkout of mlcommons/tiny outside this repository (MLPERF_TINY_ROOT);
without it those rows are skipped, and the benchmark says so.

Instruction counts come from QEMU -icount (deterministic); memory from the linked ELF.
Run: ./bench.sh (writes benchmarks/results/fit.json and prints the README table).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from tvc_models.export import export  # noqa: E402
from tvc_models.keras_zoo import build_tflite  # noqa: E402
from tvc_models.synthetic import mask_images  # noqa: E402
from tvc_models.zoo import MODEL_NAMES, build  # noqa: E402

from compiler.compile import CompileOptions, compile_model  # noqa: E402
from compiler.frontend.loader import load_model  # noqa: E402
from compiler.ir.tensor import DTYPES  # noqa: E402
from compiler.tools.boards import get_board  # noqa: E402
from compiler.tools.qemu import run_qemu  # noqa: E402

SEEDOT16_MODELS = ("resnet9", "mobilenet_v1_025", "shufflenet_v2")
TFLITE_MODELS = ("mobilenet_v1_025", "conv", "depthwise", "add_concat", "pools", "softmax_head")


def tflm_arena(blob: bytes, x: np.ndarray) -> int:
    """Smallest arena_size with which TFLite Micro's interpreter still runs (bisection)."""
    from tflite_micro.python.tflite_micro import runtime

    def runs(n: int) -> bool:
        try:
            interp = runtime.Interpreter.from_bytes(blob, arena_size=n)
            interp.set_input(x, 0)
            interp.invoke()
            return True
        except Exception:
            return False

    lo, hi = 1024, 1 << 22
    assert runs(hi), "TFLM does not run this model even with 4 MB"
    while hi - lo > 16:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if runs(mid) else (mid, hi)
    return hi


MLPERF = {  # name: file under the mlcommons/tiny checkout
    "VWW": "benchmark/training/visual_wake_words/trained_models/vww_96_int8.tflite",
    "IC": "benchmark/training/image_classification/trained_models/pretrainedResnet_quant.tflite",
    "KWS": "benchmark/training/keyword_spotting/trained_models/kws_ref_model.tflite",
    "AD": "benchmark/training/anomaly_detection/trained_models/ad01_int8.tflite",
}


def measure(
    path: Path,
    out: Path,
    calib: Path | None,
    quant: str = "affine",
    bits: str = "8",
    max_recompute: float = 0.2,
) -> dict[str, object]:
    opts = CompileOptions(
        model=str(path),
        target="mps2-an386",
        out=str(out),
        calib=str(calib) if calib else None,
        quant=quant,
        bits=bits,
        max_recompute=max_recompute,
    )
    _, report = compile_model(opts)
    graph = load_model(out)
    rng = np.random.default_rng(0)
    top = 128 if bits == "8" else 4096
    samples = [
        {
            i: rng.integers(-top, top, graph.tensors[i].shape).astype(
                DTYPES[graph.tensors[i].dtype]
            )
            for i in graph.inputs
        }
        for _ in range(2)
    ]
    _, instructions = run_qemu(out, graph, get_board("mps2-an386"), samples)
    macs = sum(int(r["macs"]) for r in report["layers"])  # type: ignore[union-attr, index]
    ram, flash = report["ram"], report["flash"]
    return {
        "macs": macs,
        "instructions": int(np.mean(instructions)),
        "instructions_per_mac": round(float(np.mean(instructions)) / max(macs, 1), 2),
        "peak_ram": ram["peak_bytes"],
        "arena": ram["arena_bytes"],
        "stack": ram["stack_bytes"],  # type: ignore[index]
        "io": ram["io_bytes"],
        "flash": flash["total_bytes"],
        "weights": flash["weights_bytes"],  # type: ignore[index]
        "code": flash["code_bytes"],  # type: ignore[index]
        "input_in_arena": ram["input_in_arena"],  # type: ignore[index]
        "patch": ram["patch"],  # type: ignore[index]
    }


def both(path: Path, out: Path, calib: Path | None, *args: str) -> dict[str, object]:
    """Default compile, with the layer-by-layer figures beside it."""
    r = measure(path, out, calib, *args)
    lw = measure(path, out.with_name(out.name + "_lw"), calib, *args, max_recompute=0.0)  # type: ignore[misc]
    r["layerwise"] = {k: lw[k] for k in ("instructions", "peak_ram", "arena", "io", "flash")}
    r["extra_instructions_pct"] = round(
        100 * (int(r["instructions"]) / int(lw["instructions"]) - 1),
        2,  # type: ignore[call-overload]
    )
    return r


def with_tflm(r: dict[str, object], blob: bytes, out: Path) -> dict[str, object]:
    graph = load_model(out)
    t = graph.tensors[graph.inputs[0]]
    r["tflm_arena"] = tflm_arena(blob, np.zeros(t.shape, DTYPES[t.dtype]))
    mem = int(r["arena"]) + int(r["io"])  # type: ignore[call-overload]
    lw = r["layerwise"]
    r["ratio_vs_tflm"] = round(mem / int(r["tflm_arena"]), 3)  # type: ignore[call-overload]
    r["layerwise_ratio_vs_tflm"] = round(
        (int(lw["arena"]) + int(lw["io"])) / int(r["tflm_arena"]),
        3,  # type: ignore[call-overload, index]
    )
    return r


def main() -> None:
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        x, _ = mask_images(32, seed=1)
        np.save(work / "calib.npy", x)
        for name in MODEL_NAMES:
            model, shape = build(name)
            onnx = export(model, shape, work / f"{name}.onnx")
            results[f"pytorch/{name}"] = both(onnx, work / name, work / "calib.npy")
        for name in SEEDOT16_MODELS:  # the int16 kernels (SMLALD) on the same networks
            results[f"pytorch-seedot16/{name}"] = both(
                work / f"{name}.onnx", work / f"s16_{name}", work / "calib.npy", "seedot", "16"
            )
        for name in TFLITE_MODELS:
            blob = build_tflite(name)
            path = work / f"{name}.tflite"
            path.write_bytes(blob)
            r = both(path, work / f"k_{name}", None)
            results[f"keras-tflite/{name}"] = with_tflm(r, blob, work / f"k_{name}")
        root = os.environ.get("MLPERF_TINY_ROOT")
        if not root or not Path(root).is_dir():
            print(
                "SKIPPED the MLPerf Tiny rows: set MLPERF_TINY_ROOT to a checkout of mlcommons/tiny"
            )
        else:
            for name, rel in MLPERF.items():
                path = Path(root) / rel
                if not path.is_file():
                    print(f"SKIPPED mlperf/{name}: {path} not found")
                    continue
                r = both(path, work / f"mlperf_{name}", None)
                results[f"mlperf/{name}"] = with_tflm(r, path.read_bytes(), work / f"mlperf_{name}")
    out = ROOT / "benchmarks" / "results" / "fit.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    cols = [
        "model",
        "MACs",
        "instructions (M4 twin)",
        "layer-wise peak",
        "patch-based peak",
        "stages (bands)",
        "extra MACs",
        "extra instructions",
        "TFLM arena",
        "ratio (layer-wise → patch-based)",
        "flash",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for k, r in results.items():
        lw, pt = r["layerwise"], r["patch"]
        tflm = f"{r['tflm_arena']:,}" if "tflm_arena" in r else "n/a"
        ratio = (
            f"{r['layerwise_ratio_vs_tflm']}x → {r['ratio_vs_tflm']}x"
            if "tflm_arena" in r
            else "n/a"
        )
        mem = int(r["arena"]) + int(r["io"])  # type: ignore[call-overload]
        lw_mem = int(lw["arena"]) + int(lw["io"])  # type: ignore[index, call-overload]
        stages = ", ".join(f"{s['nodes']} ({s['bands']})" for s in pt["stages"]) or "—"  # type: ignore[index, union-attr]
        print(
            f"| {k} | {r['macs']:,} | {r['instructions']:,} | {lw_mem:,} | {mem:,} | {stages} | "
            f"{pt['extra_macs_pct']}% | {r['extra_instructions_pct']}% | {tflm} | {ratio} | "  # type: ignore[index]
            f"{r['flash']:,} |"
        )


if __name__ == "__main__":
    main()
