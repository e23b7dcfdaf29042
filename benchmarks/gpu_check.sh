#!/usr/bin/env bash
# One-shot GPU check on a CUDA machine: build the extension, its GPU tests, the SVD
# benchmarks, the multi-process launcher, and the cost-model measurements (one SFT step and
# generation for random-weight models of SmolLM2-135M, Qwen2.5-0.5B and Qwen2.5-7B shapes).
#   bash benchmarks/gpu_check.sh OUT_DIR        (or OUT=OUT_DIR bash benchmarks/gpu_check.sh)
# Everything is written under OUT_DIR (summary.log first). Needs python3 with torch (CUDA),
# transformers, pybind11 and scipy-openblas32 (installed from .whl/wheels/ when present, as
# `python benchmarks/gpu_wheels.py` makes it: trl, datasets and the rest), nvcc and the
# nvidia-cusolver headers.
# About 9 minutes on one H200; each step has its own timeout.
set -u
OUT=${1:-${OUT:-$(mktemp -d)}}; mkdir -p "$OUT"; echo "logs in $OUT"
export PYTHONUNBUFFERED=1
. "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
gpu_join_parts
gpu_install_wheels "$OUT/install.log" || echo "wheel install failed: $OUT/install.log" | tee -a "$OUT/summary.log"
export PYTHONPATH=${PYTHONPATH:-}:$PWD
{ nvidia-smi -L; which nvcc; nvcc --version | tail -1; python3 -c "import torch, cupy; print(torch.__version__, cupy.__version__)"; } > "$OUT/env.log" 2>&1
gpu_build "$OUT/build.log" | tee -a "$OUT/summary.log"
t0=$(date +%s)
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/svd/test_linalg_cuda.py tests/svd/test_linalg.py tests/svd/test_weights.py -rs > "$OUT/tests.log" 2>&1
echo "tests rc=$? in $(( $(date +%s) - t0 )) s: $(tail -1 "$OUT/tests.log")" | tee -a "$OUT/summary.log"
t0=$(date +%s)
timeout 40 python3 benchmarks/svd_bench.py --quick --device cuda > "$OUT/bench_quick.log" 2>&1
echo "quick bench rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.log"
t0=$(date +%s)
timeout ${BENCH_TIMEOUT:-200} python3 benchmarks/svd_bench.py --device cuda > "$OUT/bench_full.log" 2>&1
echo "full bench rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.log"
t0=$(date +%s)
timeout ${BENCH7B_TIMEOUT:-150} python3 benchmarks/svd_bench.py --model 7b --device cuda --layers 2 > "$OUT/bench_7b.log" 2>&1
echo "7B bench rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.log"
t0=$(date +%s)
timeout ${STAGE_TIMEOUT:-240} python3 benchmarks/stage_bench.py --device cuda --shapes smollm2 qwen0.5b qwen7b \
  --checkpointing --out "$OUT" > "$OUT/stage_bench.log" 2>&1
echo "stage bench (cost model) rc=$? in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.log"
# The accelerate launcher in 2 processes (gloo; the same code path DDP/FSDP take on GPUs).
t0=$(date +%s)
timeout ${MP_TIMEOUT:-150} python3 -m pytest -q -p no:cacheprovider -m slow tests/train/test_multiprocess.py \
  > "$OUT/multiprocess.log" 2>&1
echo "multi-process tests rc=$? in $(( $(date +%s) - t0 )) s: $(tail -1 "$OUT/multiprocess.log")" | tee -a "$OUT/summary.log"
grep -E "FAILED|Error" "$OUT/tests.log" | head -20
cat "$OUT/bench_quick.log" "$OUT/bench_full.log" "$OUT/bench_7b.log" "$OUT/stage_bench.log"
