"""Build the committed run under tests/data/fixture_run/ that the dashboard, viz and browser tests read.

    python scripts/make_fixture_run.py              # ~5 minutes on 2 idle CPU cores; about 5 MB
    python scripts/make_fixture_run.py --out /tmp/fixture_run

One real `s2dlab run --ablations` (every arm of the paper's Table 2 and gold_sft) on the tiny preset with short
budgets (`OVERRIDES`, a few optimizer steps per stage), starting from the base models the package ships
(`s2dlab/assets/tiny_base`). Nothing is written by hand: the snapshots, the fixed C1/C2 rollouts, eval.json,
summary.json and results.json are what training, evaluation and `s2dlab.workflow.summary` wrote. Then:

1. the token lens is computed (`s2dlab lens .`, i.e. `s2dlab.instruments.lens.compute_lens` with its default pairs: every
   student checkpoint against every teacher checkpoint), from inside the run folder so that the model sources it
   records are relative to it (`opd/model`), not absolute paths of the machine that built it;
2. what a reader does not need is pruned: Trainer checkpoints (`checkpoints/`), the warmup's teacher caches
   (`teacher_cache.pt`, `teacher_rollouts.jsonl`) and the unscored C1 sample (`diagnostics/c1/rollouts.jsonl`);
3. model weights are kept only for `KEEP_MODELS` (the four-stage workflow's, so the live views, the counterfactual
   branches and the estimator panel run on its snapshots) and dropped elsewhere, so the whole fixture stays near
   5 MB. Kept **teachers are saved in float16** (a tiny teacher is ~3.7 MB in float32); students stay
   float32. The dashboard loads them in float32 on a CPU. Stages without weights show the app's "no saved model"
   sentence.

Markup and multibyte text (escaping tests) are not part of this run: they live in tests/token_data.py.
The build goes to a hidden folder beside the target and is swapped in at the end, so a failed build keeps the old
fixture.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "fixture_run"

# Short budgets on the tiny preset: enough probes for correct and incorrect rollouts, a few steps per stage.
OVERRIDES = [
    "task.eval_size=16", "task.val_size=8", "task.pool_size=48",
    "eval.n_samples=2",
    "generation.max_new_tokens=40",
    "probe.num_prompts=2", "probe.every=0", "probe.num_samples=2", "probe.teacher_samples=1",
    "probe.c1_prompts=6", "probe.c1_samples=3",
    "fkl_warmup.steps=4", "fkl_warmup.batch_size=8", "fkl_warmup.rollouts_per_prompt=1",
    "opd.steps=4", "opd.batch_size=8", "opd.rollouts_per_prompt=4",
    "teacher_sft.steps=4", "teacher_sft.batch_size=8", "gold_sft.steps=4", "gold_sft.batch_size=8",
] + [f"{s}.{k}" for s in ("teacher_grpo", "student_grpo", "cold_grpo")
     for k in ("steps=4", "prompts_per_step=2", "num_generations=4")]
KEEP_MODELS = ("teacher_grpo", "base_student", "fkl_warmup", "opd", "student_grpo")
PRUNE_FILES = ("teacher_cache.pt", "teacher_rollouts.jsonl")


def shipped_overrides() -> list[str]:
    """The task settings the shipped base models were pretrained on (so the run starts from them as they are)."""
    sys.path.insert(0, str(ROOT))
    from s2dlab.workflow.stages import base

    return [f"{k}={v}" for k, v in base.shipped_info()["config"].items() if k != "task.prompt_suffix"]


def to_float16(folder: Path) -> None:
    """Rewrite a saved model's weights in float16 (safetensors), and say so in its config."""
    import json

    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(path).items()}
    save_file(tensors, path, metadata={"format": "pt"})
    cfg = json.loads((folder / "config.json").read_text())
    cfg["dtype"] = "float16"
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def prune(run_dir: Path) -> None:
    from s2dlab.core.runs import open_run

    run = open_run(run_dir)
    for stage in run.stages():
        folder = run.stage_dir(stage)
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        for name in PRUNE_FILES:
            (folder / name).unlink(missing_ok=True)
        if stage not in KEEP_MODELS:
            shutil.rmtree(folder / "model", ignore_errors=True)
        elif run.stage(stage).role == "teacher":
            to_float16(folder / "model")
    (run_dir / "diagnostics" / "c1" / "rollouts.jsonl").unlink(missing_ok=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    out = args.out.resolve()
    build = out.parent / f".{out.name}.build" / out.name
    shutil.rmtree(build.parent, ignore_errors=True)
    build.parent.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, "-m", "s2dlab", "run", "--ablations", "--out", str(build), *shipped_overrides(),
           *OVERRIDES]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)

    # `s2dlab lens .` from inside the run folder: the checkpoint sources it records are then relative to the run
    subprocess.run([sys.executable, "-m", "s2dlab", "lens", "."], check=True, env=env, cwd=build)
    prune(build)
    size = sum(p.stat().st_size for p in build.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)
    build.rename(out)
    build.parent.rmdir()
    print(f"wrote {out} ({size / 1024 ** 2:.1f} MiB)")


if __name__ == "__main__":
    main()
