#!/usr/bin/env bash
# The main job on the bundled example (README, first command): set up, compile the mask
# classifier for NUCLEO-F439ZI within 192 KB (int8, calibrated on the bundled images), run it on
# the bit-exact integer engine, and check the float pipeline against onnxruntime.
# Grows with the compiler: C code, the Cortex-M link and the emulated M4 come next.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
tvc=.venv/bin/tvc
model=examples/mask_cnn.onnx
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== tvc compile $model --target stm32f439 --ram 192k =="
$tvc compile "$model" --target stm32f439 --ram 192k \
    --calib examples/mask_calib --val examples/mask_val --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 \
    --out "$out/mask_cnn"
echo "== integer engine (bit-exact with the C kernels to come) on examples/mask_sample.npy =="
$tvc run "$out/mask_cnn" --input examples/mask_sample.npy --engine int
echo "== float reference engine, checked against onnxruntime =="
$tvc run "$model" --input examples/mask_sample.npy --output "$out/y.npy" --engine float
.venv/bin/python tools/check_float.py "$model" examples/mask_sample.npy "$out/y.npy"
