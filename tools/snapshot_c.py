"""Generated-C snapshot: compile every test model with every backend and scheme, and record a
SHA-256 of each generated file, the arena and the flash. Run it before and after a refactor
and diff the two JSON files: a restructuring must leave the C byte for byte as it was.

    .venv/bin/python tools/snapshot_c.py /tmp/before.json [--work DIR]
    .venv/bin/python tools/snapshot_c.py /tmp/after.json --compare /tmp/before.json

Needs the Cortex-M toolchain (the probe firmware is linked); the cmsis-nn rows need
CMSIS_NN_ROOT and are left out without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tvc_models.synthetic import mask_images  # noqa: E402

from compiler.compile import CompileOptions, compile_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _models(work: Path) -> list[tuple[str, Path, bool]]:
    """(label, model file, float model) for every test model."""
    import torch
    from tvc_models.export import export
    from tvc_models.keras_zoo import MODELS as KERAS
    from tvc_models.keras_zoo import build_tflite
    from tvc_models.zoo import build

    from compiler.frontend.torch import RNNPool, export_onnx

    out: list[tuple[str, Path, bool]] = [("mask_cnn", ROOT / "examples" / "mask_cnn.onnx", True)]
    for name in (
        "resnet9",
        "resnet9_flatten",
        "mobilenet_v1_025",
        "shufflenet_v2",
        "detector",
        "fpn_detector",
    ):
        model, shape = build(name)
        out.append((name, export(model, shape, work / f"{name}.onnx", "torchscript", None), True))
    for name in KERAS:
        p = work / f"k_{name}.tflite"
        p.write_bytes(build_tflite(name))
        out.append((f"keras_{name}", p, False))
    torch.manual_seed(0)
    pool = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, 2, 1),
        torch.nn.ReLU(),
        RNNPool(4, (8, 8), (4, 4), 8, 8),
        torch.nn.Conv2d(32, 6, 1),
    )
    out.append(("rnnpool", export_onnx(pool, torch.zeros(1, 1, 64, 96), work / "rnn.onnx"), True))
    return out


def _digest(outdir: Path) -> dict[str, object]:
    rep = json.loads((outdir / "report.json").read_text())
    files = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
        for p in sorted(outdir.iterdir())
        if p.suffix in (".c", ".h", ".mk", ".cmake", ".tvcir")
    }
    return {
        "files": files,
        "arena": rep["ram"]["arena_bytes"],
        "flash": rep["flash"]["total_bytes"],
    }


def snapshot(work: Path) -> dict[str, object]:
    calib = work / "calib.npy"
    x, _ = mask_images(48, seed=21)
    np.save(calib, x[:32])
    pool_calib = work / "pool.npy"
    np.save(pool_calib, np.random.default_rng(0).uniform(-1, 1, (16, 1, 64, 96)).astype(np.float32))
    variants = [("affine", "8", "portable", False)]
    if os.environ.get("CMSIS_NN_ROOT"):
        variants.append(("affine", "8", "cmsis-nn", False))
    result: dict[str, object] = {}
    for label, path, is_float in _models(work):
        runs = list(variants)
        if label == "rnnpool":  # cmsis-nn + patch-wise RNNPool failed to compile before 0.2
            runs = [v for v in runs if v[2] != "cmsis-nn"]
        if is_float:
            runs += [("seedot", "8", "portable", False), ("seedot", "16", "portable", False)]
        if label == "rnnpool":
            runs.append(("affine", "8", "portable", True))
        for quant, bits, kernels, in_arena in runs:
            key = f"{label}/{quant}{bits}/{kernels}" + ("/in-arena" if in_arena else "")
            opts = CompileOptions(
                model=str(path),
                target="mps2-an386",
                out=str(work / "out" / key.replace("/", "_")),
                quant=quant,
                bits=bits,
                kernels=kernels,
                input_in_arena=in_arena,
                calib=str(pool_calib if label == "rnnpool" else calib) if is_float else None,
            )
            outdir, _ = compile_model(opts)
            result[key] = _digest(outdir)
            print(key, result[key]["arena"], result[key]["flash"], flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--compare", help="an earlier snapshot: exit 1 on any difference")
    ap.add_argument("--work")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = snapshot(Path(args.work or tmp))
    Path(args.json).write_text(json.dumps(result, indent=1, sort_keys=True))
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        diffs = [k for k in sorted(set(before) | set(result)) if before.get(k) != result.get(k)]
        for k in diffs:
            b, a = before.get(k) or {}, result.get(k) or {}
            files = sorted(
                f
                for f in set(b.get("files", {})) | set(a.get("files", {}))
                if b.get("files", {}).get(f) != a.get("files", {}).get(f)
            )
            print(
                f"DIFFERS {k}: {files} arena {b.get('arena')}->{a.get('arena')} "
                f"flash {b.get('flash')}->{a.get('flash')}"
            )
        print(f"{len(result) - len(diffs)} of {len(result)} builds identical")
        sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
