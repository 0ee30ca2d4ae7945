"""What every stage shares: models and data from the config, TRL arguments, the run-store callback (metrics and
probe snapshots), checkpoint/resume and the hand-off of a finished stage.

A stage folder is done when `stage.json` says `"status": "done"`; rerunning a done stage is a no-op, and rerunning
an interrupted one resumes from its last checkpoint under `<stage>/checkpoints/`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from transformers import TrainerCallback

from s2dlab.errors import MissingError
from s2dlab.config import Config
from s2dlab.generation import sample
from s2dlab.models import (
    TINY_STUDENT,
    TINY_TEACHER,
    build_char_tokenizer,
    build_tiny_model,
    check_compatible,
    load_model,
    load_tokenizer,
    set_generation_defaults,
)
from s2dlab.runs import Run, atomic_write_bytes


def offline_defaults() -> None:
    """No hub calls, no telemetry, no analytics: the tiny preset and the tests run offline."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# --- devices and models -----------------------------------------------------------------------------------------------

def device_of(cfg: Config) -> str:
    if cfg.models.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("models.device=cuda but no CUDA device is visible; use models.device=cpu or auto")
    device = cfg.models.device if cfg.models.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        # Under `accelerate launch` each process owns one GPU: "cuda" then means this process's GPU, so models
        # loaded outside the trainers (probe counterpart, teacher) land next to the policy, not all on GPU 0.
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    return device


# --- several processes (`accelerate launch`): one writer, everyone in step ----------------------------------------------

def is_main_process() -> bool:
    """The process that writes the run store: global rank 0 under `accelerate launch` / torchrun, else the only one."""
    return int(os.environ.get("RANK", "0")) == 0


def process_state(cfg: Config):
    """accelerate's `PartialState` for this launch (one process unless started by `accelerate launch`).

    Made before any trainer, with the CPU flag of the config (a CPU launch otherwise counts as one process) and a
    long timeout: the other processes wait at a barrier while the main one evaluates a finished stage.
    """
    from datetime import timedelta

    from accelerate import PartialState

    cpu = device_of(cfg) == "cpu"
    if cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # accelerate calls each CPU process's device "cpu:0", which torch.load cannot map a resumed trainer's
        # optimizer state to; plain "cpu" works everywhere.
        os.environ.setdefault("ACCELERATE_TORCH_DEVICE", "cpu")
    return PartialState(cpu=cpu, timeout=timedelta(hours=3))


def gathered_state_dict(trainer) -> dict | None:
    """The full weights of a trainer's model when they are sharded across processes (ZeRO-3 / FSDP), else None.

    A collective there: call it on every process. Under DeepSpeed ZeRO-3 it needs `zero3_save_16bit_model`
    (set in configs/accelerate/zero3.yaml) and is complete on the main process only.
    """
    if not params_sharded(trainer.model):
        return None
    return trainer.accelerator.get_state_dict(trainer.model_wrapped)


def params_sharded(model) -> bool:
    """True when the model's parameters are split across processes (DeepSpeed ZeRO-3 or FSDP)."""
    p = next(model.parameters(), None)
    return p is not None and (hasattr(p, "ds_id") or type(p).__name__ in ("DTensor", "FlatParameter")
                              or type(model).__name__ == "FullyShardedDataParallel")


def is_tiny(cfg: Config) -> bool:
    return cfg.models.teacher == "tiny" and cfg.models.student == "tiny"


def tokenizer_for(cfg: Config, run: Run):
    """The shared tokenizer: the tiny char tokenizer (saved once in the run) or the student's."""
    if cfg.models.student == "tiny":
        path = run.path / "tokenizer"
        if (path / "tokenizer.json").exists():
            return load_tokenizer(path)
        tok = build_char_tokenizer()
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
    """The model a finished stage handed off; a clear error if that stage has not run."""
    info = run.read_json(f"{stage}/stage.json") or {}
    path = info.get("model_source") or run.model_dir(stage)
    if not info.get("model_source") and not (path / "config.json").exists():
        raise MissingError(f"{path}: stage {stage!r} has no saved model yet; run that stage first "
                                f"(s2dlab stage {'base' if stage.startswith('base_') else stage.split('.')[-1]} --out {run.path})")
    dtype = cfg.models.dtype if not is_tiny(cfg) else "float32"
    model = load_model(path, dtype=dtype)
    set_generation_defaults(model, tokenizer)
    return model.to(device or device_of(cfg))


def check_pair(teacher, student, tokenizer) -> None:
    check_compatible(tokenizer, tokenizer, teacher, student)


# --- data ---------------------------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _arithmetic_splits(seed: int, n_terms: int, digits: int, sizes: tuple) -> dict:
    from s2dlab.tasks.arithmetic import arithmetic_splits

    return arithmetic_splits(dict(sizes), seed=seed, n_terms=n_terms, digits=digits)


def task_splits(cfg: Config) -> dict[str, list[dict]]:
    """`{"sft", "select", "teacher_rl", "student_rl", "eval"}` problem records (see docs/CONTRACTS.md).

    The labeled budget is explicit: teacher RL and student RL are disjoint, and the direct-GRPO baseline gets the
    student-RL problems. Warmup and OPD use the prompts of both sets without their answers.
    """
    t = cfg.task
    if t.name == "arithmetic":
        sizes = (("sft", t.sft_size), ("select", cfg.base.select_size), ("teacher_rl", t.teacher_rl_size),
                 ("student_rl", t.student_rl_size), ("eval", t.eval_size))
        return _arithmetic_splits(t.data_seed, t.n_terms, t.digits, tuple((k, v) for k, v in sizes if v > 0))
    from s2dlab.tasks import load_task, split_records

    pool = load_task(t.name, source=t.source)
    teacher_rl, student_rl = split_records(pool, fractions=(1 - t.student_rl_fraction, t.student_rl_fraction),
                                           seed=t.data_seed)
    return {"teacher_rl": teacher_rl, "student_rl": student_rl}


def eval_sets(cfg: Config) -> dict[str, list[dict]]:
    out = {}
    for name in cfg.eval.sets:
        if name == "arithmetic":
            records = task_splits(cfg)["eval"]
        else:
            from s2dlab.tasks import load_task

            records = load_task(name, source=cfg.eval.sources.get(name))
        out[name] = records[: cfg.eval.limit] if cfg.eval.limit else records
    return out


def prompt_pool(cfg: Config) -> list[dict]:
    """Label-free prompts for the warmup and OPD: the teacher-RL and student-RL problems without answers."""
    splits = task_splits(cfg)
    return [{"id": r["id"], "prompt": r["prompt"]} for r in splits["teacher_rl"] + splits["student_rl"]]


def chat_kwargs(cfg: Config) -> dict:
    return {} if is_tiny(cfg) else {"enable_thinking": cfg.generation.enable_thinking}


def user_message(cfg: Config, problem: str) -> list[dict]:
    suffix = cfg.task.prompt_suffix
    return [{"role": "user", "content": f"{problem} {suffix}".strip() if suffix else problem}]


def grade_fn(cfg: Config):
    """`(completion, answer) -> bool` for the configured task (integer-only boxes on arithmetic)."""
    from s2dlab.rewards import grade

    integer_only = cfg.task.name == "arithmetic"
    return lambda completion, answer: grade(completion, answer, integer_only=integer_only)


def reward_fn(cfg: Config):
    from s2dlab.rewards import arithmetic_reward, math_reward

    return arithmetic_reward if cfg.task.name == "arithmetic" else math_reward


# --- TRL arguments ------------------------------------------------------------------------------------------------------

def training_args(cfg: Config, stage_dir: Path, *, steps: int, learning_rate: float, batch_size: int,
                  save_every: int, warmup_ratio: float = 0.0) -> dict:
    """Keyword arguments shared by every TRL config (TrainingArguments fields).

    `batch_size` counts sequences per optimizer step over all processes: under `accelerate launch` each process
    takes an equal share, so a stage sees the same data per step on one GPU or eight (and every arm keeps the
    same student budget).
    """
    device = device_of(cfg)
    from s2dlab.config import ConfigError

    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if batch_size % processes:
        raise ConfigError(f"a batch of {batch_size} sequences per step does not split evenly over {processes} "
                          f"processes; change the stage's batch_size or the process count")
    share = batch_size // processes
    micro = cfg.micro_batch_size or share
    if share % micro:
        raise ConfigError(f"micro_batch_size={micro} does not divide the {share} sequences each of the {processes} "
                          f"processes takes per step; pick a divisor of {share}")
    accum = share // micro
    bf16 = cfg.models.dtype == "bfloat16" and device == "cuda"
    return dict(
        output_dir=str(stage_dir / "checkpoints"),
        max_steps=steps,
        learning_rate=learning_rate,
        lr_scheduler_type="constant_with_warmup" if warmup_ratio else "constant",
        warmup_steps=int(warmup_ratio * steps),
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_every,
        save_total_limit=1,
        report_to=cfg.report_to,
        bf16=bf16,
        fp16=cfg.models.dtype == "float16" and device == "cuda",
        gradient_checkpointing=not is_tiny(cfg),
        use_cpu=device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def last_checkpoint(stage_dir: Path) -> str | None:
    """The newest complete Trainer checkpoint: `trainer_state.json` is written last, so a checkpoint that a kill cut
    short is passed over for the one before it (kept until the new one is complete)."""
    ckpt_dir = stage_dir / "checkpoints"
    done = [p for p in ckpt_dir.glob("checkpoint-*")
            if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()] if ckpt_dir.is_dir() else []
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


# --- stage bookkeeping --------------------------------------------------------------------------------------------------

def stage_done(run: Run, stage: str) -> bool:
    info = run.read_json(f"{stage}/stage.json")
    return bool(info and info.get("status") == "done" and (run.has_model(stage) or info.get("model_source")))


def link_stage(run: Run, stage: str, source: str) -> dict:
    """Finish a stage by pointing at an existing checkpoint (a hub id or folder) instead of copying its weights."""
    out = {"status": "done", "finished": time.time(), "model_source": source}
    if is_main_process():
        run.write_json(f"{stage}/stage.json", out)
    return out


def mark_started(run: Run, stage: str, **info) -> None:
    if not is_main_process():
        return
    prev = run.read_json(f"{stage}/stage.json") or {}
    run.write_json(f"{stage}/stage.json", {**prev, "status": "running", "started": prev.get("started", time.time()),
                                          "processes": int(os.environ.get("WORLD_SIZE", "1")), **info})


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
    prev = run.read_json(f"{stage}/stage.json") or {}
    out = {**prev, "status": "done", "finished": time.time(), **info}
    run.write_json(f"{stage}/stage.json", out)
    return out


def truncate_metrics(run: Run, stage: str, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint we restart from (they will be logged again)."""
    rows = [r for r in run.metrics(stage) if r.get("step", 0) <= step]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    atomic_write_bytes(run.stage_dir(stage) / "metrics.jsonl", data)


# --- probes: scored rollout snapshots during training -----------------------------------------------------------------

@dataclass
class Probe:
    """A fixed probe set sampled from the current student and scored against the teacher every `every` steps."""

    cfg: Config
    run: Run
    stage: str
    tokenizer: object
    records: list[dict]

    @classmethod
    def for_stage(cls, cfg: Config, run: Run, stage: str, tokenizer) -> Probe:
        records = []
        sets = eval_sets(cfg) if cfg.probe.num_prompts else {}
        for recs in sets.values():
            records = recs[: cfg.probe.num_prompts]
            break
        return cls(cfg, run, stage, tokenizer, records)

    def snapshot(self, step: int, student, teacher) -> dict:
        """Sample, score, write `rollouts/step_XXXXXX.parquet`; returns probe metrics for metrics.jsonl."""
        if not self.records:
            return {}
        from s2dlab.diagnostics import c1_separation
        from s2dlab.scoring import score_rollouts

        cfg, g = self.cfg, self.cfg.generation
        kw = dict(max_new_tokens=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                  batch_size=g.batch_size, seed=cfg.seed * 1000 + step, prompt_suffix=cfg.task.prompt_suffix,
                  chat_template_kwargs=chat_kwargs(cfg), progress=False)
        rollouts = sample(student, self.tokenizer, self.records, n=cfg.probe.num_samples, policy="student", **kw)
        if cfg.probe.teacher_samples:
            rollouts += sample(teacher, self.tokenizer, self.records, n=cfg.probe.teacher_samples, policy="teacher",
                               **kw)
        answers = {r["id"]: r["answer"] for r in self.records}
        rows = score_rollouts(student, teacher, self.tokenizer, rollouts, grade_fn=grade_fn(cfg), answers=answers,
                              stage=self.stage, step=step, top_k=cfg.probe.top_k)
        self.run.write_rollouts(self.stage, step, rows)
        srows = [r for r in rows if r["policy"] == "student"]
        trows = [r for r in rows if r["policy"] == "teacher"]
        ntok = sum(r["length"] for r in srows) or 1
        out = {"probe/accuracy": sum(r["correct"] for r in srows) / max(len(srows), 1),
               "probe/mean_reverse_kl": sum(sum(r["reverse_kl"]) for r in srows) / ntok,
               "probe/mean_implicit_reward": sum(sum(r["implicit_reward"]) for r in srows) / ntok}
        if trows:
            out["probe/teacher_accuracy"] = sum(r["correct"] for r in trows) / len(trows)
        auroc = c1_separation(srows).get("auroc")
        if auroc is not None:
            out["probe/auroc"] = auroc
        return out


class RunStoreCallback(TrainerCallback):
    """Trainer logs -> `<stage>/metrics.jsonl`; probe snapshots every `probe.every` steps (main process only).

    `models()` returns `(student, teacher)` for the probe: the policy being trained and its fixed counterpart.
    """

    def __init__(self, run: Run, stage: str, probe: Probe | None = None, models=None, every: int = 0):
        self.run, self.stage, self.probe, self.models, self.every = run, stage, probe, models, every

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.global_step > 0:
            truncate_metrics(self.run, self.stage, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.run.append_metrics(self.stage, {"step": state.global_step, **_jsonable(logs)})

    def on_step_end(self, args, state, control, **kwargs):
        if self.probe and self.every and state.global_step % self.every == 0 and state.global_step < state.max_steps:
            self.take(state.global_step, state)

    def take(self, step: int, state=None) -> None:
        if not (state.is_world_process_zero if state is not None else is_main_process()):
            return
        student, teacher = self.models()
        if params_sharded(student) or params_sharded(teacher):
            # ZeRO-3 / FSDP: a forward pass needs every process, so a main-process probe would hang; skipped.
            return
        metrics = self.probe.snapshot(step, student, teacher)
        if metrics:
            self.run.append_metrics(self.stage, {"step": step, **metrics})


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, torch.Tensor):
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, (int, float, str, bool, list)) or v is None:
            out[k] = v
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

