"""Print the README's quantization accuracy table (same models and data as the tests).

Run: .venv/bin/python tools/accuracy_table.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tvc_models.export import export  # noqa: E402
from tvc_models.synthetic import mask_images  # noqa: E402
from tvc_models.zoo import MODEL_NAMES, build  # noqa: E402

from compiler.frontend.onnx import load_onnx  # noqa: E402
from compiler.passes.manager import run_passes  # noqa: E402
from compiler.quant.accuracy import evaluate  # noqa: E402
from compiler.quant.affine import quantize_affine  # noqa: E402
from compiler.quant.calibrate import observe_ranges  # noqa: E402
from compiler.quant.seedot import search_seedot  # noqa: E402


def main() -> None:
    x, _ = mask_images(96, seed=11)
    calib = [{"x": x[i : i + 1]} for i in range(32)]
    val = [{"x": x[i : i + 1]} for i in range(32, 96)]
    cols = [
        "model",
        "affine int8 SQNR",
        "top-1",
        "seedot int8 SQNR",
        "seedot int16 SQNR (shift)",
        "top-1",
    ]
    print("| " + " | ".join(cols) + " |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as d:
        for name in MODEL_NAMES:
            model, shape = build(name)
            g = run_passes(load_onnx(export(model, shape, Path(d) / f"{name}.onnx")), "layout")
            a = evaluate(g, quantize_affine(g, observe_ranges(g, calib)), val)
            q8, _ = search_seedot(g, calib, val[:16], "8")
            q16, d16 = search_seedot(g, calib, val[:16], "16")
            s8, s16 = evaluate(g, q8, val), evaluate(g, q16, val)

            def top1(r: dict) -> str:  # type: ignore[type-arg]
                return (
                    "n/a (boxes)"
                    if r["top1_agreement"] is None
                    else f"{100 * r['top1_agreement']:.0f}%"
                )

            print(
                f"| {name} | {a['sqnr_db']} dB | {top1(a)} | {s8['sqnr_db']} dB | "
                f"{s16['sqnr_db']} dB ({d16['global_shift']}) | {top1(s16)} |"
            )


if __name__ == "__main__":
    main()
