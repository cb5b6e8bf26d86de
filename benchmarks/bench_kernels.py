"""Our kernels vs CMSIS-NN's, layer by layer, on the Cortex-M4 twin (QEMU -icount).

Needs CMSIS_NN_ROOT (a CMSIS-NN checkout outside this repository); prints a skip line without.
Run: CMSIS_NN_ROOT=... ./bench.sh (writes benchmarks/results/kernels.json); --layers also prints
every layer's pair of counts.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from tvc_models.export import export  # noqa: E402
from tvc_models.synthetic import mask_images  # noqa: E402
from tvc_models.zoo import build  # noqa: E402

from compiler.compile import CompileOptions, compile_model  # noqa: E402
from compiler.frontend.loader import load_model  # noqa: E402
from compiler.tools.boards import get_board  # noqa: E402
from compiler.tools.qemu import emulate  # noqa: E402
from compiler.tools.report import layer_table  # noqa: E402

MODELS = ("mobilenet_v1_025", "resnet9", "shufflenet_v2")


def kind(graph, node) -> str:  # type: ignore[no-untyped-def]
    if node.op == "conv2d":
        k = node.attrs["kernel"]
        if node.attrs["groups"] > 1:
            return "depthwise"
        return "conv 1x1" if k == [1, 1] else f"conv {k[0]}x{k[1]}"
    return node.op


def main() -> None:
    if not os.environ.get("CMSIS_NN_ROOT"):
        print("bench_kernels: CMSIS_NN_ROOT is not set; skipped")
        return
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"macs": 0, "tvc": 0, "cmsis": 0})
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        np.save(work / "calib.npy", mask_images(16, seed=1)[0])
        for name in MODELS:
            model, shape = build(name)
            onnx = export(model, shape, work / f"{name}.onnx")
            runs = {}
            for kernels in ("portable", "cmsis-nn"):
                out = work / f"{name}_{kernels}"
                compile_model(
                    CompileOptions(
                        model=str(onnx),
                        target="mps2-an386",
                        out=str(out),
                        calib=str(work / "calib.npy"),
                        kernels=kernels,
                    )
                )
                graph = load_model(out)
                x = {
                    "x": np.random.default_rng(0)
                    .integers(-128, 128, graph.tensors["x"].shape)
                    .astype(np.int8)
                }
                runs[kernels] = (
                    graph,
                    emulate(out, graph, get_board("mps2-an386"), [x], profile=True).per_step[0],
                )
            graph, ours = runs["portable"]
            _, theirs = runs["cmsis-nn"]
            for node, row, a, b in zip(graph.nodes, layer_table(graph), ours, theirs, strict=True):
                t = totals[kind(graph, node)]
                t["macs"] += int(row["macs"])  # type: ignore[call-overload]
                if "--layers" in sys.argv:
                    print(
                        f"{name:18} {node.name:28} {kind(graph, node):14} "
                        f"{a:>10,} {b:>10,} {a / max(b, 1):.2f}x"
                    )
                t["tvc"] += a
                t["cmsis"] += b
    (ROOT / "benchmarks" / "results" / "kernels.json").write_text(
        json.dumps(totals, indent=2) + "\n"
    )
    print("| layer kind | MACs | tvc instructions | CMSIS-NN instructions | tvc / CMSIS-NN |")
    print("| --- | --- | --- | --- | --- |")
    for k, t in sorted(totals.items(), key=lambda kv: -kv[1]["cmsis"]):
        if t["cmsis"] == 0:
            continue
        ratio = t["tvc"] / t["cmsis"]
        print(f"| {k} | {t['macs']:,} | {t['tvc']:,} | {t['cmsis']:,} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
