"""Compare `tvc run --engine float` output with onnxruntime on the same ONNX model and input.

Usage: check_float.py MODEL.onnx INPUT.npy TVC_OUTPUT.npy   (exit 5 when they disagree)
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort


def main(model: str, inp: str, ours_path: str) -> int:
    x = np.load(inp)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    ours = np.load(ours_path)
    err = float(np.abs(ours - ref).max() / max(float(np.abs(ref).max()), 1e-30))
    ok = err <= 1e-4
    print(
        f"onnxruntime vs tvc float engine: max |diff| / max |ref| = {err:.2e} "
        f"({'OK' if ok else 'MISMATCH'}, tolerance 1e-4); "
        f"top-1 {int(ref.argmax())} vs {int(ours.argmax())}"
    )
    return 0 if ok else 5


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
