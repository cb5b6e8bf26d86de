#!/usr/bin/env bash
# The main job on the bundled example (README, first command): set up; compile the mask
# classifier for NUCLEO-F439ZI within 192 KB (int8, calibrated on the bundled images, C code,
# linked and measured for the board; the HTML report drawn); run it on the emulated Cortex-M4 (bit-exact with the
# integer reference, instruction count); print the report.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
tvc=.venv/bin/tvc
out=build/mask_cnn

echo "== tvc compile examples/mask_cnn.onnx --target stm32f439 --ram 192k =="
$tvc compile examples/mask_cnn.onnx --target stm32f439 --ram 192k \
    --calib examples/mask_calib --val examples/mask_val --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 \
    --out "$out" --html
echo
echo "== on the emulated Cortex-M4 (QEMU mps2-an386), examples/mask_sample.npy =="
$tvc run "$out" --input examples/mask_sample.npy --engine qemu --output "$out/y_qemu.npy"
$tvc run "$out" --input examples/mask_sample.npy --engine int --output "$out/y_int.npy" >/dev/null
.venv/bin/python - "$out" <<'PY'
import sys, numpy as np
out = sys.argv[1]
q, i = np.load(f"{out}/y_qemu.npy"), np.load(f"{out}/y_int.npy")
print("Cortex-M4 output == integer reference:", "bit-exact" if np.array_equal(q, i) else "MISMATCH")
sys.exit(0 if np.array_equal(q, i) else 5)
PY
echo
echo "== report ($out/report.json) =="
$tvc report "$out"
echo "generated C for your firmware: $out/ (mask_cnn.h documents the API)"
echo "the report to look at: $out/report.html (memory timeline, budgets, layers, accuracy)"
