#!/usr/bin/env bash
# The main job on the bundled example (README, first command): set up, import the mask
# classifier, show its IR after every stage and run it, checked against onnxruntime.
# Grows with the compiler: compile for stm32f439 within 192k and run on the emulated M4 next.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
tvc=.venv/bin/tvc
model=examples/mask_cnn.onnx
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== $model: IR after canonicalize + NHWC layout (constants elided) =="
$tvc ir "$model" --after layout
for stage in frontend canonicalize layout; do
    printf '   %-13s %3d nodes\n' "$stage" "$($tvc ir "$model" --after "$stage" | grep -c ' = [a-z_0-9]*(')"
done
echo "== float reference engine on examples/mask_sample.npy =="
$tvc run "$model" --input examples/mask_sample.npy --output "$out/y.npy" --engine float
.venv/bin/python tools/check_float.py "$model" examples/mask_sample.npy "$out/y.npy"
