#!/usr/bin/env bash
# GPU check: one short run on a single-GPU box (H100 / H200), sized to a few minutes, printing timings.
#
#   1. the tiny preset end to end on CUDA with bf16 autocast (`s2dlab run --ablations`, every row of the table,
#      fewer steps than the preset),
#   2. the scoring benchmark's two modes (full logits vs chunked `score_sequences`) on CUDA: peak GPU memory and
#      time side by side, and the largest difference between their per-token scores.
#
# The box needs no internet, no vLLM and no Qwen weights: the tiny models are built locally (or copied from the
# shipped base models). Its image has torch, transformers and accelerate but not trl, datasets or math-verify, so
# fetch those as wheels here first (a machine with PyPI) and carry the `.whl/` folder along:
#
#   bash scripts/gpu_check.sh --fetch-wheels     # here: the missing packages into .whl/ (git-ignored locally)
#   bash scripts/gpu_check.sh [OUT_DIR]          # there: installs .whl/ into /tmp if needed, then the checks
#
# s2dlab runs from this checkout (PYTHONPATH), not pip-installed: its torch pin is for fresh installs, and the
# box's own CUDA build of torch is the one to use. Writes OUT_DIR/gpu_check.json with every timing.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 math-verify==0.9.0
        latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2)

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
  plat=()
  for n in 28 27 17; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  ls -1 .whl
  exit 0
fi

OUT=${1:-${OUT:-/tmp/s2dlab-gpu-check}}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

if ! "$PY" -c "import trl, datasets, math_verify" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: trl, datasets or math-verify is missing and there is no .whl/ folder;" >&2
    echo "run 'bash scripts/gpu_check.sh --fetch-wheels' on a machine with PyPI and bring .whl/ along" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/s2dlab-site .whl/*.whl
  export PYTHONPATH=/tmp/s2dlab-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

"$PY" - <<'EOF'
import torch, transformers, trl, accelerate
assert torch.cuda.is_available(), "gpu_check: no CUDA device visible"
p = torch.cuda.get_device_properties(0)
print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}; torch "
      f"{torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
      f"accelerate {accelerate.__version__}")
EOF

# --- 1. the tiny preset end to end on CUDA, bf16 autocast --------------------------------------------------------
# Shorter than the preset (which is sized for a CPU's minutes) but every stage and arm of the workflow runs.
STEPS=(teacher_grpo.steps=50 fkl_warmup.steps=50 opd.steps=50 student_grpo.steps=50 cold_grpo.steps=150
       teacher_sft.steps=50 gold_sft.steps=150 task.eval_size=100 eval.n_samples=4 probe.every=25)
BASE=()
[ -f s2dlab/assets/tiny_base/shipped.json ] || BASE=(base.source=train base.teacher_steps=300 base.student_steps=300)
rm -rf "$OUT/tiny_cuda"
SECONDS=0
"$PY" -m s2dlab run --preset tiny --ablations --out "$OUT/tiny_cuda" models.device=cuda models.dtype=bfloat16 \
  "${STEPS[@]}" "${BASE[@]}" 2>&1 | grep -v -e 'it/s\]' -e 's/it\]' -e '^\s*$' || true
tiny_s=$SECONDS
[ -f "$OUT/tiny_cuda/summary.json" ] || { echo "gpu_check: the tiny run wrote no summary.json" >&2; exit 1; }

# --- 2. the scoring benchmark on CUDA -----------------------------------------------------------------------------
# bench/bench_scoring.py measures host memory on a CPU; here its models and modes run on the GPU, one after the
# other in one process, with peak GPU memory from torch's allocator (reset between modes).
"$PY" - "$OUT" "$tiny_s" <<'EOF'
import json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, "bench")
from bench_scoring import build_model  # noqa: E402
from s2dlab.scoring import PER_TOKEN_FIELDS, score_sequences, token_scores  # noqa: E402

out, tiny_s = Path(sys.argv[1]), float(sys.argv[2])
L, V, chunk, top_k, repeats = 4096, 151936, 256, 5, 3
dev = torch.device("cuda")
teacher, student = build_model(V, L, seed=1).to(dev), build_model(V, L, seed=2).to(dev)
ids = torch.randint(0, V, (1, L), generator=torch.Generator().manual_seed(0)).to(dev)
mask = torch.ones_like(ids)


def naive():
    with torch.no_grad():
        s, t = student(input_ids=ids).logits, teacher(input_ids=ids).logits
        return token_scores(s[:, :-1], t[:, :-1], ids[:, 1:], top_k=top_k)


def chunked():
    return score_sequences(student, teacher, ids, mask, chunk_size=chunk, top_k=top_k)


bench, outputs = {}, {}
for name, fn in (("naive", naive), ("chunked", chunked)):
    fn()  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        res = fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    bench[name] = {"peak_extra_mib": (torch.cuda.max_memory_allocated() - base) / 2**20, "best_s": min(times)}
    outputs[name] = {f: getattr(res, f).float().cpu() for f in PER_TOKEN_FIELDS}
    del res
diff = max(float((outputs["naive"][f] - outputs["chunked"][f]).abs().max()) for f in PER_TOKEN_FIELDS)
n, c = bench["naive"], bench["chunked"]
print(f"\nscoring on CUDA, {L} tokens x {V} vocab, chunk {chunk}:")
for name, m in bench.items():
    print(f"  {name:<8} peak extra GPU memory {m['peak_extra_mib']:>9,.0f} MiB   best of {repeats}: {m['best_s']:.4f} s")
print(f"  chunked / naive: memory 1/{n['peak_extra_mib'] / c['peak_extra_mib']:.1f}, "
      f"speed {n['best_s'] / c['best_s']:.2f}x, max abs score difference {diff:.2e}")

timings = json.loads((out / "tiny_cuda" / "timings.json").read_text())
arms = json.loads((out / "tiny_cuda" / "summary.json").read_text())["arms"]
print(f"\ntiny preset on CUDA (bf16 autocast): {tiny_s:.0f} s end to end; per stage (s, with its evaluation):")
for stage, s in timings.items():
    print(f"  {stage:<28} {s:>7.1f}")
print("arms (short budgets, not the preset's):", ", ".join(f"{a} {100 * m['accuracy']:.1f}" for a, m in arms.items()))
summary = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "tiny_run_s": tiny_s,
           "tiny_stage_s": timings, "tiny_arms": {a: m["accuracy"] for a, m in arms.items()}, "scoring": {"length": L, "vocab": V, "chunk": chunk, **bench,
                                                "max_abs_diff": diff}}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(f"\nwritten to {out / 'gpu_check.json'}")
EOF
