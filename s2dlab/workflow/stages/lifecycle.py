"""What every stage does at its start and end, in one place, so each stage module reads top to bottom.

    info = lifecycle.finished(run, out)          # a finished stage is a no-op: its stage.json
    if info: return info
    st = lifecycle.begin(cfg, run, out, student_from=init, teacher_from=teacher, trained="student", ...)
    trainer = SomeTRLTrainer(model=st.student, ...)
    return st.train(trainer, steps=..., sequences=...)   # probes, resume, save, stage.json

`begin` loads the stage's models (the one it trains and its fixed counterpart, which the probe snapshots score
against), checks that they share a tokenizer and marks the stage running. `Stage.train` adds the run-store callback
(metrics.jsonl, scored probe snapshots every `probe.every` steps), takes the step-0 snapshot, trains (resuming from
the last complete checkpoint), gathers sharded weights, takes the final snapshot, saves the hand-off model and marks
the stage done, in that order: a kill anywhere reruns the stage from its last checkpoint.

A stage folder is done when `stage.json` says `"status": "done"`. Besides the status, stage.json records what the
stage spent, which the arms' accounting reads (`s2dlab.workflow.summary`): `role` (the model trained), `init` (the stage it
started from), `teacher` (the stage whose teacher the training used, distillation only), `counterpart` (the fixed
model the probes score against), `steps`, `sequences` (sequences the trained model saw), `labels`
(`{"set", "n", "kind"}` of the labeled problems used, or null) and `prompts` (a distillation stage's prompt set).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from s2dlab.core import data
from s2dlab.core.config import Config, ConfigError
from s2dlab.core.distributed import (
    device_of,
    gathered_state_dict,
    is_main_process,
    params_sharded,
    world_size,
)
from s2dlab.core.models import (
    TINY_STUDENT,
    TINY_TEACHER,
    build_char_tokenizer,
    build_tiny_model,
    check_compatible,
    load_model,
    load_tokenizer,
    set_generation_defaults,
)
from s2dlab.core.runs import Run, atomic_write_bytes, log_record


def offline_defaults() -> None:
    """No telemetry, no analytics (`s2dlab.core.env`), and a quiet terminal: the libraries' per-file progress bars
    (loading and saving weights, mapping datasets) are turned off; the stages show their own bars."""
    from s2dlab.core import env

    env.offline_defaults()
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    if "TRANSFORMERS_VERBOSITY" not in os.environ:  # a user who asks for the library's log keeps it
        transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()


# --- models ------------------------------------------------------------------------------------------------------------

def tokenizer_for(cfg: Config, run: Run):
    """The shared tokenizer: the tiny char tokenizer (saved once in the run) or the student's."""
    if cfg.models.student == "tiny":
        path = run.path / "tokenizer"
        if (path / "tokenizer.json").exists():
            return load_tokenizer(path)
        tok = build_char_tokenizer()
        if is_main_process():
            tok.save_pretrained(path)
        return tok
    tok = load_tokenizer(cfg.models.student)
    tok.padding_side = "left"
    return tok


def fresh_model(cfg: Config, role: str, tokenizer):
    """The starting model for `role` ("teacher"/"student"): a new tiny Qwen3 or the hub/local checkpoint."""
    name = getattr(cfg.models, role)
    if name == "tiny":
        spec = TINY_TEACHER if role == "teacher" else TINY_STUDENT
        return build_tiny_model(spec, tokenizer, seed=cfg.seed * 2 + (role == "teacher"))
    model = load_model(name, dtype=cfg.models.dtype, attn_implementation=cfg.models.attn_implementation)
    set_generation_defaults(model, tokenizer)
    return model


def load_stage_model(cfg: Config, run: Run, stage: str, tokenizer, device: str | None = None):
    """The model a finished stage handed off (`Run.load_model`), with the tokenizer's generation defaults; a one-line
    error if that stage has not run."""
    model = run.load_model(stage, dtype="float32" if cfg.tiny else cfg.models.dtype)
    set_generation_defaults(model, tokenizer)
    return model.to(device or device_of(cfg))


# --- bookkeeping ---------------------------------------------------------------------------------------------------------

def finished(run: Run, stage: str) -> dict | None:
    """The record's fields of a finished stage (its model saved or linked), else None: what a stage's `run` returns
    when it has nothing left to do."""
    record = run.finished(stage)
    return record.fields if record else None


def link_stage(run: Run, stage: str, source: str, **info) -> dict:
    """Finish a stage by pointing at an existing checkpoint (a hub id or folder) instead of copying its weights."""
    out = {"status": "done", "finished": time.time(), "model_source": source, **info}
    if is_main_process():
        run.update_stage(stage, replace=True, **out)  # a new record: whatever was there is replaced
    return out


def mark_started(run: Run, stage: str, **info) -> None:
    if not is_main_process():
        return
    run.update_stage(stage, status="running", started=run.stage(stage).get("started", time.time()),
                     processes=world_size(), **info)


def finish_stage(run: Run, stage: str, model, tokenizer, state_dict: dict | None = None, **info) -> dict:
    """Save the hand-off model, then mark the stage done (in that order, so a kill in between reruns it).

    Only the main process writes (others return `{}`); `state_dict` is the full weights when the model's own are
    sharded across processes (`gathered_state_dict`).
    """
    if not is_main_process():
        return {}
    model_dir = run.model_dir(stage)
    tmp = model_dir.with_name("model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, state_dict=state_dict)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(model_dir, ignore_errors=True)
    os.replace(tmp, model_dir)
    return run.update_stage(stage, status="done", finished=time.time(), **info).fields


def last_checkpoint(stage_dir: Path) -> str | None:
    """The newest complete Trainer checkpoint: `trainer_state.json` is written last, so a checkpoint that a kill cut
    short is passed over for the one before it (kept until the new one is complete)."""
    ckpt_dir = stage_dir / "checkpoints"
    done = [p for p in ckpt_dir.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()] if ckpt_dir.is_dir() else []
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def truncate_metrics(run: Run, stage: str, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint we restart from (they will be logged again)."""
    rows = [r for r in run.metrics(stage) if r.get("step", 0) <= step]
    atomic_write_bytes(run.stage_dir(stage) / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())


def labels_info(cfg: Config, which: str | None, kind: str = "answers") -> dict | None:
    """stage.json's record of the labeled problems a stage used: set name, count, and whether it read final
    answers or gold worked solutions."""
    return None if which is None else {"set": which, "n": len(data.labeled(cfg, which)), "kind": kind}


def prompts_info(cfg: Config, which: str) -> dict:
    return {"set": which, "n": len(data.labeled(cfg, which))}


# --- TRL arguments --------------------------------------------------------------------------------------------------------

def training_args(cfg: Config, stage_dir: Path, *, steps: int, learning_rate: float, batch_size: int,
                  save_every: int, warmup_ratio: float = 0.0) -> dict:
    """Keyword arguments shared by every TRL config (TrainingArguments fields).

    `batch_size` counts sequences per optimizer step over all processes: under `accelerate launch` each process
    takes an equal share, so a stage sees the same data per step on one GPU or eight (and every arm keeps the
    same student budget).
    """
    from s2dlab.core.distributed import split_evenly

    device = device_of(cfg)
    share = split_evenly(batch_size, f"{stage_dir.name}: batch of {batch_size}")
    micro = cfg.micro_batch_size or share
    if share % micro:
        raise ConfigError(f"micro_batch_size={micro} does not divide the {share} sequences each of the "
                          f"{world_size()} processes takes per step; pick a divisor of {share}")
    return dict(
        output_dir=str(stage_dir / "checkpoints"),
        max_steps=steps,
        learning_rate=learning_rate,
        lr_scheduler_type="constant_with_warmup" if warmup_ratio else "constant",
        warmup_steps=int(warmup_ratio * steps),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=share // micro,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=1,
        report_to=cfg.report_to,
        bf16=cfg.models.dtype == "bfloat16" and device == "cuda",
        fp16=cfg.models.dtype == "float16" and device == "cuda",
        gradient_checkpointing=not cfg.tiny,
        use_cpu=device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


# --- the stage itself -------------------------------------------------------------------------------------------------------

@dataclass
class Stage:
    """A stage being run: its config, run, folder name, tokenizer, device and models.

    `trained` names the model the stage trains ("student" or "teacher"); the other one is the fixed counterpart the
    probe snapshots score against (None when the stage has none yet, e.g. GRPO before any teacher exists).
    """

    cfg: Config
    run: Run
    name: str
    tokenizer: object
    device: str
    student: object | None
    teacher: object | None
    trained: str

    @property
    def dir(self) -> Path:
        return self.run.stage_dir(self.name)

    def resume_from(self) -> str | None:
        return last_checkpoint(self.dir)

    def probe(self) -> Probe | None:
        if not self.cfg.probe.num_prompts or self.student is None or self.teacher is None:
            return None
        return Probe(self.cfg, self.run, self.name, self.tokenizer, data.probe_records(self.cfg,
                                                                                      self.cfg.probe.num_prompts))

    def train(self, trainer, *, steps: int, finish_info=None, **info) -> dict:
        """Probe at step 0, train (resuming), gather, probe at the end, save and mark done; `{}` off the main process.

        `finish_info(trained_model) -> dict` (optional) measures the trained model once more before the stage is
        marked done; its fields go into the same stage.json write as `info`."""
        trained = self.trained

        def models():
            return (trainer.model, self.teacher) if trained == "student" else (self.student, trainer.model)

        store = RunStoreCallback(self.run, self.name, self.probe(), models, self.cfg.probe.every)
        trainer.add_callback(store)
        quiet_progress(trainer, self.name)
        resume = self.resume_from()
        if store.probe and not resume:
            store.take(0)
        trainer.train(resume_from_checkpoint=resume)
        state_dict = gathered_state_dict(trainer)  # every process: a collective under ZeRO-3 / FSDP
        if not trainer.accelerator.is_main_process:
            return {}
        if store.probe:
            store.take(steps)
        if finish_info is not None:
            info = {**info, **finish_info(trainer.model)}
        return finish_stage(self.run, self.name, trainer.model, self.tokenizer, state_dict=state_dict, steps=steps,
                            **info)


def begin(cfg: Config, run: Run, name: str, *, student_from: str | None, teacher_from: str | None,
          trained: str = "student", **info) -> Stage:
    """Load the stage's models, check they share a tokenizer, mark it running (recording `info` in stage.json).

    A distillation stage (one that passes `teacher=` in `info`) always loads its teacher. For other stages the
    counterpart of the trained model is optional: it is loaded only for probe snapshots, when its stage has finished.
    """
    tokenizer = tokenizer_for(cfg, run)
    device = device_of(cfg)
    models = {}
    required = {trained} | ({"teacher"} if info.get("teacher") else set())
    for role, stage in (("student", student_from), ("teacher", teacher_from)):
        if stage is None or (role not in required and not (cfg.probe.num_prompts and finished(run, stage))):
            models[role] = None
            continue
        models[role] = load_stage_model(cfg, run, stage, tokenizer, device)
        if role != trained:
            models[role].eval()
    if models["student"] is not None and models["teacher"] is not None:
        check_compatible(tokenizer, tokenizer, models["teacher"], models["student"])
    # `counterpart` is the fixed model the probes score against; a stage whose training uses the teacher
    # (distillation) also records it as `teacher` in `info`, which is what the arms' accounting counts.
    mark_started(run, name, role=trained, init=student_from if trained == "student" else teacher_from,
                 counterpart=teacher_from if trained == "student" else student_from, **info)
    return Stage(cfg, run, name, tokenizer, device, models["student"], models["teacher"], trained)


# --- probes: scored rollout snapshots during training -----------------------------------------------------------------------

@dataclass
class Probe:
    """A fixed probe set sampled from the current student and scored against the teacher every `every` steps."""

    cfg: Config
    run: Run
    stage: str
    tokenizer: object
    records: list[dict]

    def snapshot(self, step: int, student, teacher) -> dict:
        """Sample, score, write `rollouts/step_XXXXXX.parquet`; returns probe metrics for metrics.jsonl."""
        if not self.records:
            return {}
        from s2dlab.core.diagnostics import probe_metrics
        from s2dlab.core.generation import sample
        from s2dlab.core.scoring import score_rollouts

        cfg, g = self.cfg, self.cfg.generation
        kw = dict(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                  batch_size=g.batch_size, seed=cfg.seed * 1000 + step, prompt_suffix=cfg.task.prompt_suffix,
                  chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
        rollouts = sample(student, self.tokenizer, self.records, n=cfg.probe.num_samples, policy="student", **kw)
        if cfg.probe.teacher_samples:
            rollouts += sample(teacher, self.tokenizer, self.records, n=cfg.probe.teacher_samples, policy="teacher",
                               **kw)
        answers = {r["id"]: r["answer"] for r in self.records}
        rows = score_rollouts(student, teacher, self.tokenizer, rollouts, grade_fn=data.grade_fn(cfg),
                              answers=answers, stage=self.stage, step=step, top_k=cfg.probe.top_k)
        self.run.write_rollouts(self.stage, step, rows)
        return {k: v for k, v in probe_metrics(rows).items() if v is not None}


class RunStoreCallback(TrainerCallback):
    """Trainer logs -> `<stage>/metrics.jsonl`; probe snapshots every `probe.every` steps (main process only).

    `models()` returns `(student, teacher)` for the probe: the model being trained and its fixed counterpart.
    """

    def __init__(self, run: Run, stage: str, probe: Probe | None = None, models=None, every: int = 0):
        self.run, self.stage, self.probe, self.models, self.every = run, stage, probe, models, every

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0:
            truncate_metrics(self.run, self.stage, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.run.append_metrics(self.stage, {"step": state.global_step, **log_record(logs)})

    def on_step_end(self, args, state, control, **kwargs):
        if self.probe and self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.take(state.global_step, state)

    def take(self, step: int, state=None) -> None:
        if not self.probe or not (state.is_world_process_zero if state is not None else is_main_process()):
            return
        student, teacher = self.models()
        if params_sharded(student) or params_sharded(teacher):
            # ZeRO-3 / FSDP: a forward pass needs every process, so a main-process probe would hang; skipped.
            return
        metrics = self.probe.snapshot(step, student, teacher)
        if metrics:
            self.run.append_metrics(self.stage, {"step": step, **metrics})


# --- a quiet terminal ----------------------------------------------------------------------------------------------------------

# The few logged numbers a progress bar shows; everything else goes to metrics.jsonl (and report_to) only.
POSTFIX_KEYS = (("reward", "reward"), ("loss", "loss"), ("probe/accuracy", "probe acc"))


class QuietProgress(ProgressCallback):
    """transformers' progress bar without the logged dict it prints under the bar at every logging step."""

    def __init__(self, desc: str):
        super().__init__()
        self.desc = desc

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc=self.desc, dynamic_ncols=True, leave=False)
        self.current_step = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            post = {label: f"{logs[k]:.3g}" for k, label in POSTFIX_KEYS if isinstance(logs.get(k), (int, float))}
            if post:
                self.training_bar.set_postfix(post, refresh=False)


def quiet_progress(trainer, desc: str) -> None:
    """Swap the trainer's progress callback (terminal or notebook) for `QuietProgress`."""
    try:  # transformers' notebook module imports IPython, which `pip install s2dlab[app]` does not bring
        from transformers.utils.notebook import NotebookProgressCallback
    except ImportError:  # no IPython: the trainer cannot have added the notebook's callback
        NotebookProgressCallback = None

    for cls in (ProgressCallback, NotebookProgressCallback):
        if cls is not None:
            trainer.remove_callback(cls)
    trainer.add_callback(QuietProgress(desc))
