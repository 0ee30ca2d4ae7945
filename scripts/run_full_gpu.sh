#!/usr/bin/env bash
# The paper's setup on a GPU box (arXiv 2605.12483): Qwen3-8B teacher, Qwen3-1.7B student, DAPO-Math-17k in fixed
# halves, MATH-500, AIME 2024 and AIME 2025 avg@16; every row of the paper's Table 2.
# NOT run on the machines s2dlab is built and tested on; see docs/SCALING.md for memory and time.
#
# Setup on the box (internet needed once, for the packages, the weights and the data sets):
#   python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[vllm]"   # vLLM 0.31 for generation
#   pip install deepspeed                                                     # only for the zero2/zero3 presets
#
# Usage:
#   bash scripts/run_full_gpu.sh                                   # all GPUs; one process when there is one GPU
#   NUM_GPUS=1 bash scripts/run_full_gpu.sh                        # one process (a 141 GB H200 fits every stage)
#   ACCELERATE_CONFIG=configs/accelerate/zero3.yaml bash scripts/run_full_gpu.sh
#   OUT=runs/qwen3_s1 bash scripts/run_full_gpu.sh seed=1          # extra arguments are config overrides
#
# Several GPUs: `accelerate launch` runs every stage in NUM_GPUS processes (batch sizes in the config are per
# optimizer step over all of them); the main process writes the run store and evaluates, the others wait.
# Rerunning the same OUT skips finished stages and resumes an interrupted one from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false

OUT=${OUT:-runs/qwen3}
NUM_GPUS=${NUM_GPUS:-$(nvidia-smi -L 2>/dev/null | wc -l)}
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-configs/accelerate/zero2.yaml}
if [ "$NUM_GPUS" -lt 1 ]; then
  echo "run_full_gpu: no GPU found (nvidia-smi -L); the CPU workflow is scripts/run_cpu.sh" >&2
  exit 2
fi

if [ "$NUM_GPUS" -gt 1 ]; then
  if grep -q "distributed_type: DEEPSPEED" "$ACCELERATE_CONFIG" && ! python -c "import deepspeed" 2>/dev/null; then
    echo "run_full_gpu: $ACCELERATE_CONFIG needs DeepSpeed: pip install deepspeed," \
         "or ACCELERATE_CONFIG=configs/accelerate/fsdp.yaml" >&2
    exit 2
  fi
  exec accelerate launch --config_file "$ACCELERATE_CONFIG" --num_processes "$NUM_GPUS" \
    -m s2dlab run --preset qwen3_paper --out "$OUT" --ablations "$@"
fi
exec s2dlab run --preset qwen3_paper --out "$OUT" --ablations "$@"
