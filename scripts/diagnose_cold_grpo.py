"""Why did the old cold-GRPO baseline not learn? A control that answers it: the same GRPO with rewards that carry
no information.

The old baseline (the base student shipped before the slip corpus, 4 prompts x 8 completions per step, lr 1e-4)
kept a flat training reward (0.19) for 300 steps while its greedy accuracy fell. If its updates were driven by the
reward, shuffling the rewards inside each batch (same number of 1s, assigned to random completions) would change
what happens; if they are mostly noise that Adam scales up to full-size steps, the shuffled control falls just
like the real run. Each variant runs cold GRPO from the same base student and is read on the validation split.

    python scripts/diagnose_cold_grpo.py --student OLD_STUDENT_FOLDER [--steps 300] [--out runs/diagnose]

Variants: real rewards at lr 1e-4 (the old default), shuffled rewards at lr 1e-4, real rewards at lr 1e-5, and real
rewards at lr 1e-4 with 16 prompts per step (4x the batch, so 4x less gradient noise). The table prints the
training reward of the first and last 10% of steps and the validation accuracy after training.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
from pathlib import Path

from s2dlab.core import data
from s2dlab.core.config import load_config
from s2dlab.core.models import build_char_tokenizer
from s2dlab.core.runs import create_run
from s2dlab.workflow.evaluate import evaluate_stage
from s2dlab.workflow.pipeline import find_step, run_stage
from s2dlab.workflow.summary import per_problem

VARIANTS = {
    "real, lr 1e-4 (old default)": ["cold_grpo.learning_rate=1e-4"],
    "shuffled rewards, lr 1e-4": ["cold_grpo.learning_rate=1e-4"],
    "real, lr 1e-5": ["cold_grpo.learning_rate=1e-5"],
    "real, lr 1e-4, 16 prompts/step": ["cold_grpo.learning_rate=1e-4", "cold_grpo.prompts_per_step=16"],
}


def shuffled(reward_fn, seed: int):
    """The same rewards, assigned to random completions of the batch: no information about which was right."""
    rng = random.Random(seed)

    def fn(completions, answer, **kwargs):
        rewards = reward_fn(completions, answer, **kwargs)
        rng.shuffle(rewards)
        return rewards

    fn.__name__ = reward_fn.__name__  # TRL names the logged metric after the function
    return fn


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="the base student's model folder")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="runs/diagnose")
    p.add_argument("overrides", nargs="*", help="config overrides for every variant (e.g. task.slip_rate=0)")
    args = p.parse_args(argv)
    rows = []
    for label, over in VARIANTS.items():
        cfg = load_config("tiny", overrides=[*args.overrides, *over, f"cold_grpo.steps={args.steps}",
                                             "eval.sets=arithmetic_val", "probe.num_prompts=0", "probe.c1_prompts=0"])
        run = create_run(Path(args.out) / label.replace(" ", "_").replace(",", "").replace("/", "-"), cfg.to_dict(),
                         cfg.seed)
        d = run.path / "base_student"
        if not run.stage("base_student").fields:
            shutil.copytree(args.student, d / "model", dirs_exist_ok=True)
            build_char_tokenizer().save_pretrained(d / "model")
            run.update_stage("base_student", status="done", role="student", source=args.student)
        real = data.reward_fn
        if label.startswith("shuffled"):
            data.reward_fn = lambda cfg, _real=real: shuffled(_real(cfg), seed=cfg.seed)
        try:
            run_stage(cfg, run, find_step(cfg, "cold_grpo"))
        finally:
            data.reward_fn = real
        for stage in ("base_student", "cold_grpo"):
            evaluate_stage(cfg, run, stage, progress=False)
        rewards = [m["reward"] for m in run.metrics("cold_grpo") if "reward" in m]
        tenth = max(1, len(rewards) // 10)
        acc = {s: sum(per_problem(cfg, run, s).values()) / len(per_problem(cfg, run, s)) for s in
               ("base_student", "cold_grpo")}
        greedy = {s: run.eval(s)["sets"]["arithmetic_val"].get("greedy") for s in ("base_student", "cold_grpo")}
        rows.append((label, sum(rewards[:tenth]) / tenth, sum(rewards[-tenth:]) / tenth, acc, greedy))
        print(f"{label:<34} reward {rows[-1][1]:.3f} -> {rows[-1][2]:.3f}   val avg@k {100 * acc['base_student']:.1f}"
              f" -> {100 * acc['cold_grpo']:.1f}   greedy {100 * greedy['base_student']:.1f} -> "
              f"{100 * greedy['cold_grpo']:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
