#!/usr/bin/env bash
# The tiny workflow on a laptop or CPU box: base models (shipped, copied in seconds), teacher GRPO, forward-KL warmup,
# on-policy distillation, student GRPO and the cold-GRPO baseline, all evaluated, then the arms table.
# A few minutes on 2 cores; nothing is downloaded. The CPU counterpart of scripts/run_full_gpu.sh.
#
#   bash scripts/run_cpu.sh                       # one seed into runs/tiny
#   bash scripts/run_cpu.sh --ablations --seeds 2 # every row of the paper's Table 2; intervals over 2 seeds
#   OUT=runs/mine bash scripts/run_cpu.sh opd.loss=sampled_token
#   PROCS=2 bash scripts/run_cpu.sh               # two processes (DDP over gloo): exercises `accelerate launch`
#
# Rerunning the same OUT skips finished stages and resumes an interrupted one. Then: s2dlab app runs/
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False TOKENIZERS_PARALLELISM=false

OUT=${OUT:-runs/tiny}
PROCS=${PROCS:-1}

if [ "$PROCS" -gt 1 ]; then
  # accelerate 1.15's --cpu flag starts one process whatever --num_processes says; --multi_gpu with no GPU
  # visible starts PROCS processes through torchrun, and s2dlab puts them on gloo (models.device=cpu).
  # Each process gets an equal share of the cores.
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / PROCS > 0 ? $(nproc) / PROCS : 1 ))}
  exec accelerate launch --multi_gpu --num_processes "$PROCS" --num_machines 1 --mixed_precision no \
    --dynamo_backend no -m s2dlab run --preset tiny --out "$OUT" models.device=cpu "$@"
fi
exec s2dlab run --preset tiny --out "$OUT" "$@"
