"""Per-step time of on-policy distillation against a GRPO step, same student, same batch, one run.

Both trainers sample 32 completions from the same tiny student per step (GRPO: 4 prompts x 8; OPD: 32 prompts x 1)
and take one optimizer step; OPD adds one teacher forward pass and the full-vocabulary reverse KL. The two are
timed in alternating blocks, so machine noise hits both alike, and the ratio of median step times is printed.
Goal: OPD at most 1.3x a GRPO step.

    python bench/bench_opd_vs_grpo.py [--steps 20] [--blocks 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import TrainerCallback


class StepTimer(TrainerCallback):
    def __init__(self):
        self.times, self._t = [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)


def make_trainer(kind: str, cfg, run, steps: int):
    from datasets import Dataset
    from trl import DistillationConfig, DistillationTrainer, GRPOTrainer

    from s2dlab.core import data
    from s2dlab.workflow.stages import lifecycle
    from s2dlab.workflow.stages.grpo import grpo_config, rl_dataset

    tok = lifecycle.tokenizer_for(cfg, run)
    student = lifecycle.load_stage_model(cfg, run, "base_student", tok, "cpu")
    out = run.stage_dir(f"bench_{kind}")
    if kind == "grpo":
        cfg.student_grpo.steps, cfg.student_grpo.save_every = steps, 10**6
        trainer = GRPOTrainer(model=student, reward_funcs=data.reward_fn(cfg),
                              args=grpo_config(cfg, cfg.student_grpo, out),
                              train_dataset=rl_dataset(cfg, data.labeled(cfg, "2h")),
                              processing_class=tok)
    else:
        teacher = lifecycle.load_stage_model(cfg, run, "base_teacher", tok, "cpu").eval()
        g = cfg.generation
        args = DistillationConfig(**lifecycle.training_args(cfg, out, steps=steps, learning_rate=cfg.opd.learning_rate,
                                                         batch_size=cfg.opd.batch_size, save_every=10**6),
                                  beta=1.0, max_completion_length=g.max_new_tokens, temperature=g.temperature,
                                  top_p=g.top_p, top_k=g.top_k)
        prompts = Dataset.from_list([{"prompt": data.user_message(cfg, r["prompt"])}
                                     for r in data.prompt_set(cfg, "pool")])
        trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=prompts,
                                      processing_class=tok)
    timer = StepTimer()
    trainer.add_callback(timer)
    # the timing is the output: no per-step progress bar or logged dicts from the trainers
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    return trainer, timer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps per block")
    p.add_argument("--blocks", type=int, default=3, help="alternating blocks per trainer")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from s2dlab.core.config import load_config
    from s2dlab.core.runs import create_run
    from s2dlab.workflow.stages import base, lifecycle

    lifecycle.offline_defaults()
    cfg = load_config("tiny", overrides=["probe.num_prompts=0"])
    with tempfile.TemporaryDirectory() as tmp:
        run = create_run(tmp, cfg.to_dict(), cfg.seed)
        base.run(cfg, run)
        times = {"grpo": [], "opd": []}
        for block in range(args.blocks):
            for kind in ("grpo", "opd") if block % 2 == 0 else ("opd", "grpo"):
                trainer, timer = make_trainer(kind, cfg, run, args.steps)
                trainer.train()
                times[kind] += timer.times[1:]  # the first step of a block warms up
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"torch threads: {torch.get_num_threads()}, batch: 32 completions of <= {cfg.generation.max_new_tokens} "
          f"tokens, {len(times['grpo'])} timed steps each")
    print(f"{'trainer':<34} {'median s/step':>14} {'mean s/step':>12}")
    print(f"{'GRPO (GRPOTrainer, 4 x 8)':<34} {med['grpo']:>14.3f} {statistics.fmean(times['grpo']):>12.3f}")
    print(f"{'OPD (DistillationTrainer, 32 x 1)':<34} {med['opd']:>14.3f} {statistics.fmean(times['opd']):>12.3f}")
    ratio = med["opd"] / med["grpo"]
    print(f"OPD / GRPO per-step time: {ratio:.2f}x (goal <= 1.3x): {'met' if ratio <= 1.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
