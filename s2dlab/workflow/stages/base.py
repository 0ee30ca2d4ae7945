"""Stage 0, `base` (tiny preset only): make weak-but-nonzero base teacher and student, like pretrained checkpoints.

Real runs start from pretrained Qwen3 checkpoints; the tiny preset has no such thing, so this stage trains both
tiny models from scratch with TRL's `SFTTrainer` on a corpus of worked solutions (`7+8=15\\n15-5=10\\n...`), loss on
the completion only. Like web text, the corpus carries common mistakes: each carry, borrow or sign step is written
wrong with probability `task.slip_rate` (see `s2dlab.core.tasks.arithmetic`), so the base models' likelihood puts that
much weight on plausible slips. That is what makes the raw teacher *not* reward-shaped (the paper's C1), and what
sparse-reward RL on the teacher removes. Accuracy after from-scratch SFT jumps sharply and is noisy at a constant learning rate,
so every `base.select_every` steps we measure greedy accuracy on a selection split (disjoint from eval) and hand off
the best checkpoint, not the last. The teacher gets more steps and is larger; the student is kept weaker
(smaller, `base.student_steps`), so that distillation has something to transfer.

Writes `base_teacher/` and `base_student/` (model, metrics.jsonl, stage.json with the selection history).

**Students at graded distance** (`base.student`): the student can be pretrained on the same corpus written in
another layout (`s2dlab.core.tasks.arithmetic.LAYOUTS`): the same problems, steps, values, slips and boxed answers,
so about the same accuracy (the grader reads only the box), but text the teacher was never trained to write, so
the teacher finds it unlikely and the student starts far from it (C2):

    close   steps        the teacher's own layout (the default)
    middle  blank_line   a blank line before the box: one token per solution the teacher does not expect
    far     running      after the first step, only `+8=13` per line: most lines differ from the teacher's

The tiny base models also ship with the package (`s2dlab/assets/tiny_base/`, made by
`python scripts/make_tiny_base.py`, which runs this stage; `--students middle,far` makes the other students), so
`base.source=shipped` (the default) copies them into the run in a second; `base.source=train` trains them here
(minutes on 2 CPU cores; the script prints the time).

    s2dlab stage base --out runs/tiny                                      # shipped models
    s2dlab stage base --out runs/far base.student=far                      # the shipped far student
    s2dlab stage base --out runs/tiny base.source=train                    # train both from scratch
    s2dlab stage base --out runs/clean base.source=train task.slip_rate=0      # a corpus without slips
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm.auto import tqdm
from transformers import TrainerCallback
from trl import SFTTrainer

from s2dlab.core import data
from s2dlab.core.config import Config, ConfigError, flatten
from s2dlab.core.distributed import device_of
from s2dlab.core.errors import MissingError
from s2dlab.core.models import (
    check_compatible,
    load_model,
    load_tokenizer,
    set_generation_defaults,
)
from s2dlab.core.runs import Run
from s2dlab.core.tasks.arithmetic import in_layout
from s2dlab.workflow.stages import lifecycle
from s2dlab.workflow.stages.sft import sft_config, sft_dataset

STAGES = ("base_teacher", "base_student")
SHIPPED = Path(__file__).resolve().parents[2] / "assets" / "tiny_base"
# `base.student` -> the layout of the student's corpus (the teacher's is always `steps`)
STUDENT_LAYOUTS = {"close": "steps", "middle": "blank_line", "far": "running"}
# What the shipped models were trained on: a config that differs here needs base.source=train.
SHIPPED_KEYS = ("task.n_terms", "task.digits", "task.data_seed", "task.corpus_size", "task.slip_rate",
                "task.prompt_suffix")


def greedy_accuracy(cfg: Config, model, tokenizer, records: list[dict]) -> float:
    from s2dlab.core.generation import sample

    grade = data.grade_fn(cfg)
    rollouts = sample(model, tokenizer, records, n=1, max_new_tokens=cfg.generation.max_new_tokens, temperature=0,
                      batch_size=cfg.generation.batch_size, progress=False, prompt_suffix=cfg.task.prompt_suffix,
                      chat_template_kwargs=data.chat_kwargs(cfg))
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


def shipped_name(role: str, student: str = "close") -> str:
    """The shipped folder (and shipped.json key) of a base model: `teacher`, `student`, `student_middle`, ..."""
    return "student" if role == "student" and student == "close" else role if role == "teacher" else f"student_{student}"


def layout_of(cfg: Config, role: str) -> str:
    """The layout the base model of `role` is pretrained on: the student's level's, `steps` for the teacher."""
    return STUDENT_LAYOUTS[cfg.base.student] if role == "student" else "steps"


def corpus(cfg: Config, role: str) -> list[dict]:
    """The pretraining corpus of `role`: the task's corpus, written in the student's layout for the student."""
    return in_layout(data.task_splits(cfg)["corpus"], layout_of(cfg, role))


def train_one(cfg: Config, run: Run, role: str, tokenizer, steps: int) -> dict:
    stage = f"base_{role}"
    if info := lifecycle.finished(run, stage):
        return info
    splits = data.task_splits(cfg)
    model = lifecycle.fresh_model(cfg, role, tokenizer).to(device_of(cfg))
    stage_dir = run.stage_dir(stage)
    lifecycle.mark_started(run, stage, role=role, steps=steps, layout=layout_of(cfg, role),
                           **({"distance": cfg.base.student} if role == "student" else {}))
    best = BestCheckpoint(cfg, run, stage, tokenizer, splits["select"], cfg.base.select_every)
    args = sft_config(cfg, stage_dir, steps=steps, learning_rate=cfg.base.learning_rate,
                      batch_size=cfg.base.batch_size, save_every=cfg.base.select_every, schedule=cfg.base.schedule)
    trainer = SFTTrainer(model=model, args=args,
                         train_dataset=sft_dataset(cfg, corpus(cfg, role)), processing_class=tokenizer,
                         callbacks=[lifecycle.RunStoreCallback(run, stage), best])
    lifecycle.quiet_progress(trainer, stage)
    trainer.train(resume_from_checkpoint=lifecycle.last_checkpoint(stage_dir))
    if not trainer.accelerator.is_main_process:
        return {}
    best_dir = stage_dir / "best"
    final = load_model(best_dir) if (best_dir / "config.json").exists() else trainer.model
    set_generation_defaults(final, tokenizer)
    info = run.read_json(f"{stage}/best/best.json") or {}
    return lifecycle.finish_stage(run, stage, final, tokenizer, select_accuracy=info.get("accuracy"),
                                  select_step=info.get("step"), sequences=steps * cfg.base.batch_size)


def shipped_info() -> dict:
    path = SHIPPED / "shipped.json"
    if not path.exists():
        raise MissingError(f"{path}: the shipped tiny base models are missing from this install; "
                           f"use base.source=train")
    return json.loads(path.read_text())


def ensure_shipped(cfg: Config, run: Run, roles: tuple[str, ...] = ("teacher", "student")) -> dict:
    """Copy the shipped tiny base models into the run (when `base.source=shipped` and they are not there yet)."""
    todo = [r for r in roles if getattr(cfg.models, r) == "tiny" and cfg.base.enabled
            and not lifecycle.finished(run, f"base_{r}")]
    if not todo or cfg.base.source != "shipped":
        return {}
    info = shipped_info()
    flat = flatten(cfg)
    for key in SHIPPED_KEYS:
        if flat[key] != info["config"][key]:
            raise ConfigError(f"{key}={flat[key]!r} differs from the shipped base models' {info['config'][key]!r}; "
                              f"set base.source=train to train base models for this task")
    tokenizer = lifecycle.tokenizer_for(cfg, run)
    out = {}
    for role in todo:
        stage, name = f"base_{role}", shipped_name(role, cfg.base.student)
        if name not in info or not (SHIPPED / name / "config.json").exists():
            raise MissingError(f"{SHIPPED / name}: no shipped base {role} for base.student={cfg.base.student!r} in "
                               f"this install; use base.source=train (or python scripts/make_tiny_base.py "
                               f"--students {cfg.base.student})")
        model = load_model(SHIPPED / name)
        set_generation_defaults(model, tokenizer)
        out[stage] = lifecycle.finish_stage(run, stage, model, tokenizer, source="shipped", role=role,
                                            shipped=name, **info[name])
        shipped_eval = SHIPPED / name / "eval.json"
        if shipped_eval.exists() and lifecycle.is_main_process():
            # the same weights, evaluated once when they were shipped: evaluate_stage reuses it when the run's eval
            # config and eval problems match the ones it was made with, and evaluates again otherwise
            run.write_eval(stage, {**json.loads(shipped_eval.read_text()), "stage": stage})
    return out


def run(cfg: Config, run: Run, roles: tuple[str, ...] = ("teacher", "student")) -> dict:
    """Train the base models that the config asks for; real (non-tiny) models are linked as they are, after
    checking that teacher and student share a tokenizer (each with its own: every later stage uses the student's)."""
    tokenizer = lifecycle.tokenizer_for(cfg, run)
    if cfg.models.teacher != "tiny" and cfg.models.student != "tiny" and "teacher" in roles:
        check_compatible(load_tokenizer(cfg.models.teacher), load_tokenizer(cfg.models.student))
    out = {}
    for role in roles:
        stage = f"base_{role}"
        if getattr(cfg.models, role) != "tiny" or not cfg.base.enabled:
            # A pretrained checkpoint is the base model: point at it rather than copy gigabytes into the run.
            out[stage] = lifecycle.link_stage(run, stage, getattr(cfg.models, role), role=role)
            continue
        if cfg.base.source == "shipped":
            out.update(ensure_shipped(cfg, run, (role,)))
            out.setdefault(stage, run.stage(stage).fields)
            continue
        steps = cfg.base.teacher_steps if role == "teacher" else cfg.base.student_steps
        out[stage] = train_one(cfg, run, role, tokenizer, steps)
    return out
