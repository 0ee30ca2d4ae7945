"""Stage 0, `base` (tiny preset only): make weak-but-nonzero base teacher and student, like pretrained checkpoints.

Real runs start from pretrained Qwen3 checkpoints; the tiny preset has no such thing, so this stage trains both
tiny models from scratch with TRL's `SFTTrainer` on synthetic worked solutions (`73-67=6\\n6+70=76\\n\\boxed{76}`),
loss on the completion only. Accuracy after from-scratch SFT jumps sharply and is noisy at a constant learning rate,
so every `base.select_every` steps we measure greedy accuracy on a selection split (disjoint from eval) and hand off
the best checkpoint, not the last. The teacher gets more steps and is larger; the student is kept weaker
(`base.student_steps`), so that the comparison of arms has room to show.

Writes `base_teacher/` and `base_student/` (model, metrics.jsonl, stage.json with the selection history).

The tiny base models also ship with the package (`s2dlab/assets/tiny_base/`, made by
`python scripts/make_tiny_base.py`, which runs this stage), so `base.source=shipped` (the default) copies them
into the run in a second; `base.source=train` trains them here (~7 min on 2 CPU cores).

    s2dlab stage base --out runs/tiny                                      # shipped models
    s2dlab stage base --out runs/tiny base.source=train                    # train both from scratch
    s2dlab stage base --out runs/weak base.source=train base.student_steps=600   # a weaker student
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from datasets import Dataset
from tqdm.auto import tqdm
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from s2dlab.errors import MissingError
from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import common

STAGES = ("base_teacher", "base_student")
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "tiny_base"
# What the shipped models were trained on: a config that differs here needs base.source=train.
SHIPPED_KEYS = ("task.n_terms", "task.digits", "task.data_seed", "task.sft_size", "task.prompt_suffix")


def sft_dataset(cfg: Config, records: list[dict]) -> Dataset:
    """Prompt-completion conversations; SFTTrainer masks the prompt (completion-only loss)."""
    return Dataset.from_list([{"prompt": common.user_message(cfg, r["prompt"]),
                               "completion": [{"role": "assistant", "content": r["solution"]}]} for r in records])


def greedy_accuracy(cfg: Config, model, tokenizer, records: list[dict]) -> float:
    from s2dlab.generation import sample

    grade = common.grade_fn(cfg)
    rollouts = sample(model, tokenizer, records, n=1, max_new_tokens=cfg.generation.max_new_tokens, temperature=0,
                      batch_size=cfg.generation.batch_size, progress=False, prompt_suffix=cfg.task.prompt_suffix,
                      chat_template_kwargs=common.chat_kwargs(cfg))
    answers = {r["id"]: r["answer"] for r in records}
    return sum(grade(r.completion, answers[r.prompt_id]) for r in rollouts) / max(len(rollouts), 1)


class BestCheckpoint(TrainerCallback):
    """Every `every` steps: greedy accuracy on the selection split; keep the best weights in `<stage>/best/`."""

    def __init__(self, cfg, run, stage, tokenizer, records, every):
        self.cfg, self.run, self.stage, self.tok, self.records, self.every = cfg, run, stage, tokenizer, records, every
        info = run.read_json(f"{stage}/best/best.json") or {}
        self.best = info.get("accuracy", -1.0)
        self.history = info.get("history", [])

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.check(model, state.global_step)

    def check(self, model, step: int) -> None:
        acc = greedy_accuracy(self.cfg, model, self.tok, self.records)
        self.history.append({"step": step, "accuracy": acc})
        self.run.append_metrics(self.stage, {"step": step, "select/greedy_accuracy": acc})
        best_dir = self.run.stage_dir(self.stage) / "best"
        if acc > self.best:
            self.best = acc
            tmp = best_dir.with_name("best.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            model.save_pretrained(tmp)
            shutil.rmtree(best_dir, ignore_errors=True)
            tmp.rename(best_dir)
        self.run.write_json(f"{self.stage}/best/best.json",
                            {"accuracy": self.best, "step": max(self.history, key=lambda h: h["accuracy"])["step"],
                             "history": self.history})
        tqdm.write(f"[{self.stage}] step {step}: greedy accuracy {acc:.1%} (best {self.best:.1%})")


def train_one(cfg: Config, run: Run, role: str, tokenizer, steps: int) -> dict:
    stage = f"base_{role}"
    if common.stage_done(run, stage):
        return run.read_json(f"{stage}/stage.json")
    splits = common.task_splits(cfg)
    model = common.fresh_model(cfg, role, tokenizer).to(common.device_of(cfg))
    stage_dir = run.stage_dir(stage)
    common.mark_started(run, stage, role=role, steps=steps)
    args = SFTConfig(**common.training_args(cfg, stage_dir, steps=steps, learning_rate=cfg.base.learning_rate,
                                            batch_size=cfg.base.batch_size,
                                            save_every=cfg.base.select_every),
                     max_length=256, packing=False, completion_only_loss=True)
    best = BestCheckpoint(cfg, run, stage, tokenizer, splits["select"], cfg.base.select_every)
    trainer = SFTTrainer(model=model, args=args, train_dataset=sft_dataset(cfg, splits["sft"]),
                         processing_class=tokenizer,
                         callbacks=[common.RunStoreCallback(run, stage), best])
    trainer.train(resume_from_checkpoint=common.last_checkpoint(stage_dir))
    if not trainer.accelerator.is_main_process:
        return {}
    best_dir = stage_dir / "best"
    final = common.load_model(best_dir) if (best_dir / "config.json").exists() else trainer.model
    common.set_generation_defaults(final, tokenizer)
    info = run.read_json(f"{stage}/best/best.json") or {}
    return common.finish_stage(run, stage, final, tokenizer, select_accuracy=info.get("accuracy"),
                               select_step=info.get("step"))


def shipped_info() -> dict:
    path = SHIPPED / "shipped.json"
    if not path.exists():
        raise MissingError(f"{path}: the shipped tiny base models are missing from this install; "
                                f"use base.source=train")
    return json.loads(path.read_text())


def ensure_shipped(cfg: Config, run: Run, roles: tuple[str, ...] = ("teacher", "student")) -> dict:
    """Copy the shipped tiny base models into the run (when `base.source=shipped` and they are not there yet)."""
    from s2dlab.config import ConfigError, flatten

    todo = [r for r in roles if getattr(cfg.models, r) == "tiny" and cfg.base.enabled
            and not common.stage_done(run, f"base_{r}")]
    if not todo or cfg.base.source != "shipped":
        return {}
    info = shipped_info()
    flat = flatten(cfg)
    for key in SHIPPED_KEYS:
        if flat[key] != info["config"][key]:
            raise ConfigError(f"{key}={flat[key]!r} differs from the shipped base models' {info['config'][key]!r}; "
                              f"set base.source=train to train base models for this task")
    tokenizer = common.tokenizer_for(cfg, run)
    out = {}
    for role in todo:
        stage = f"base_{role}"
        model = common.load_model(SHIPPED / role)
        common.set_generation_defaults(model, tokenizer)
        out[stage] = common.finish_stage(run, stage, model, tokenizer, source="shipped", **info[role])
    return out


def run(cfg: Config, run: Run, roles: tuple[str, ...] = ("teacher", "student")) -> dict:
    """Train the base models that the config asks for; real (non-tiny) models are copied in as they are."""
    tokenizer = common.tokenizer_for(cfg, run)
    out = {}
    for role in roles:
        stage = f"base_{role}"
        if getattr(cfg.models, role) != "tiny" or not cfg.base.enabled:
            # A pretrained checkpoint is the base model: point at it rather than copy gigabytes into the run.
            out[stage] = common.link_stage(run, stage, getattr(cfg.models, role))
            continue
        if cfg.base.source == "shipped":
            out.update(ensure_shipped(cfg, run, (role,)))
            out.setdefault(stage, run.read_json(f"{stage}/stage.json"))
            continue
        steps = cfg.base.teacher_steps if role == "teacher" else cfg.base.student_steps
        out[stage] = train_one(cfg, run, role, tokenizer, steps)
    return out
