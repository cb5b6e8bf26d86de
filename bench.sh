#!/usr/bin/env bash
# Benchmarks (not part of the test suite): pytest-benchmark, results under benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
mkdir -p benchmarks/results
.venv/bin/python -m pytest benchmarks -q -p no:randomly \
    --benchmark-json benchmarks/results/quantize.json --benchmark-columns=min,mean,max,rounds "$@"
.venv/bin/python benchmarks/bench_fit.py
.venv/bin/python benchmarks/bench_face.py
.venv/bin/python benchmarks/bench_kernels.py   # needs CMSIS_NN_ROOT
.venv/bin/python benchmarks/bench_mlperf.py --layers   # needs MLPERF_TINY_ROOT (CMSIS_NN_ROOT adds a column)
