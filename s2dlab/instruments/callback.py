"""`DenseRewardCallback`: dense-reward snapshots of your own training run, readable by the dashboard and `s2dlab score`.

Add it to any `transformers.Trainer` that trains a causal LM: TRL's `GRPOTrainer`, `DistillationTrainer`,
`SFTTrainer`, or a plain `Trainer`.

    from s2dlab import DenseRewardCallback
    probe = DenseRewardCallback(teacher="Qwen/Qwen3-8B", prompts=problems[:16], out="runs/mine", every=50)
    trainer = GRPOTrainer(model=..., reward_funcs=..., args=..., train_dataset=..., callbacks=[probe])
    trainer.train()          # then: s2dlab app runs   /   s2dlab score runs/mine --stage probe

At the start, every `every` optimizer steps and at the end, it samples the current policy on the fixed `prompts`
(`samples` rollouts each, `s2dlab.core.generation.sample`), scores every token against the teacher
(`s2dlab.core.scoring.score_rollouts`: implicit reward `log pT(y_t) - log pS(y_t)`, both KLs, entropies, top-k) and
writes a snapshot into a run folder laid out as one stage of the workflow:

    <out>/run.json                               what was probed (a Config: models, sampling, probe sizes), seed
    <out>/<stage>/stage.json                     status, the step of the last snapshot, the teacher's source
    <out>/<stage>/rollouts/step_000050.parquet   the scored rollouts (the run store's row columns)
    <out>/<stage>/metrics.jsonl                  probe/* at each snapshot, and the trainer's own logs
    <out>/tokenizer/                             the policy's tokenizer (the dashboard names top-k ids with it)
    <out>/summary.json                           refreshed after every snapshot (`s2dlab.workflow.summary.write_summary`)

The teacher's own rollouts (`teacher_samples` per prompt, shown beside the policy's in the dashboard) are sampled
once and re-scored against the current policy at every snapshot.

It must not change the training it watches, and does not: nothing it does draws from the random generators the
trainer uses (torch's CPU and CUDA generators are forked with `torch.random.fork_rng`, Python's and NumPy's states
are restored), every module's train/eval flag is put back as it was, sampling and scoring run under `no_grad` and
never touch the optimizer, and only the main process (`state.is_world_process_zero`) does anything under
accelerate. Tested: a few steps of TRL's `GRPOTrainer` and `DistillationTrainer` give bit-identical weights with and
without it. A model whose parameters are sharded across processes (DeepSpeed ZeRO-3, FSDP) cannot be sampled by
one process alone, so snapshots are skipped there with a warning.

The teacher may be a loaded model, a `save_pretrained` folder, a hub id (offline: from the local cache) or a
`.gguf` file (`s2dlab.core.models.load_model`); one loaded here is moved to the policy's device. Before the first
snapshot teacher and policy tokenizers are compared (`s2dlab.core.models.check_compatible`); a mismatch stops the
training before its first step with `TokenizerMismatchError`, as dense rewards over different tokenizers are wrong.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from s2dlab.core.diagnostics import probe_metrics
from s2dlab.core.errors import InputError
from s2dlab.core.runs import log_record

PROBLEM_FIELDS = ("prompt", "problem", "question")  # where a problem record keeps its text, first found wins
DEFAULT_STAGE = "probe"
# Seeds of the snapshot samplers (each inside its own forked generator): the policy at step s draws from
# `seed * 1000 + s`, as the workflow's probes do; the teacher's rollouts, sampled once, from TEACHER_SEED + seed.
TEACHER_SEED = 10_000_000


def problem_text(row: Mapping) -> str | None:
    """The problem of a record: its first non-empty string field among `PROBLEM_FIELDS`, or None."""
    for name in PROBLEM_FIELDS:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def prompt_records(prompts: Sequence) -> list[dict]:
    """`[{"id", "prompt", "answer"}]` from strings or problem dicts (`prompt`/`problem`/`question`, optional
    `answer` and `id`); a bad entry is an `InputError` naming its index and the fields expected."""
    if isinstance(prompts, (str, Mapping)) or not isinstance(prompts, Sequence) or not len(prompts):
        raise InputError(f"prompts={prompts!r:.80}: pass a non-empty list of problem strings or dicts with a "
                         f"{'/'.join(PROBLEM_FIELDS)} field (and optionally 'answer')")
    out, seen = [], set()
    for i, p in enumerate(prompts):
        if isinstance(p, str) and p.strip():
            rec = {"id": f"p{i:03d}", "prompt": p.strip(), "answer": None}
        elif isinstance(p, Mapping) and problem_text(p) is not None:
            answer = p.get("answer")
            rec = {"id": str(p.get("id", f"p{i:03d}")), "prompt": problem_text(p),
                   "answer": None if answer is None else str(answer).strip()}
        else:
            fields = sorted(p) if isinstance(p, Mapping) else type(p).__name__
            raise InputError(f"prompts[{i}] has no problem text ({fields}); expected a string or a dict with "
                             f"one of the fields {', '.join(PROBLEM_FIELDS)} (and optionally 'answer')")
        if rec["id"] in seen:
            raise InputError(f"prompts[{i}]: id {rec['id']!r} is used twice; ids name problems in the snapshots")
        seen.add(rec["id"])
        out.append(rec)
    return out


@contextmanager
def untouched(*models):
    """Run a block without leaving a trace on training: torch's CPU and CUDA generators forked, Python's and
    NumPy's generator states restored, and every module's train/eval flag put back (`model.train()` would set
    the whole tree at once, flipping submodules a user keeps in eval mode), gradients off."""
    flags = [(m, m.training) for model in models if model is not None for m in model.modules()]
    py_state, np_state = random.getstate(), np.random.get_state()
    # Only initialised CUDA devices: forking an uninitialised one would initialise CUDA here.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() \
        else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        for module, flag in flags:
            module.training = flag


def _name_of(model_or_name) -> str:
    if isinstance(model_or_name, (str, Path)):
        path = Path(model_or_name).expanduser()
        return str(path.resolve()) if path.exists() else str(model_or_name)
    name = getattr(getattr(model_or_name, "config", None), "_name_or_path", "") or ""
    return name or type(model_or_name).__name__


def _dtype_name(model) -> str:
    dtype = next(model.parameters()).dtype
    return {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")


class DenseRewardCallback(TrainerCallback):
    """Scored probe snapshots of the policy a `Trainer` trains, every `every` steps and at the start and end.

    Args:
        teacher: the model that scores every token: a loaded causal LM, a folder, a hub id or a `.gguf` file.
        prompts: the fixed problems, strings or dicts with `prompt`/`problem`/`question` and optionally `answer`
            (and `id`); answers grade the rollouts (`correct`, `probe/accuracy`, `probe/auroc`: C1 needs them).
        out: the run folder to write (created; an existing one is reused when its run.json matches).
        every: snapshot every this many optimizer steps; 0 = only at the start and the end.
        stage: the stage folder the snapshots go to inside `out`.
        samples: policy rollouts per prompt at each snapshot.
        teacher_samples: teacher rollouts per prompt (sampled once, re-scored at every snapshot); 0 = none.
        max_new_tokens: completion budget; default the trainer's `max_completion_length` (else 256).
        temperature, top_p, top_k: how the probe samples (default T=1, no truncation: the policy's own
            distribution, the one every per-token score is defined on).
        tokenizer: the policy's tokenizer; default the trainer's `processing_class`.
        teacher_tokenizer: the teacher's, for the compatibility check; default loaded from `teacher` when it is a
            name, else the policy's.
        chat_template_kwargs: passed to the chat template (Qwen3: `{"enable_thinking": False}`); default the
            trainer's `chat_template_kwargs` when its config has them.
        prompt_suffix: appended to every problem, e.g. "Put the final answer in \\boxed{}.".
        seed: seed of the probe's own samplers (forked: the trainer's generators never see them).
        alternatives: top-k alternatives stored per token for both models.
        batch_size: sequences per `generate` and scoring call.
        log_trainer_metrics: also append the trainer's logs (loss, reward, ...) to `metrics.jsonl`, so the
            dashboard draws them beside the probe's curves.
        teacher_dtype: dtype of a teacher loaded here (default: the policy's).
    """

    def __init__(self, teacher, prompts, out: str | Path = "runs/mine", every: int = 50, *, stage: str = DEFAULT_STAGE,
                 samples: int = 4, teacher_samples: int = 1, max_new_tokens: int | None = None,
                 temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, tokenizer=None, teacher_tokenizer=None,
                 chat_template_kwargs: dict | None = None, prompt_suffix: str = "", seed: int = 0,
                 alternatives: int = 5, batch_size: int = 16, log_trainer_metrics: bool = True,
                 teacher_dtype: str | None = None):
        from s2dlab.core.runs import validate_stage

        if not isinstance(every, int) or every < 0:
            raise InputError(f"every={every!r} must be an integer >= 0 (0: snapshots at the start and end only)")
        for name, value, low in (("samples", samples, 1), ("teacher_samples", teacher_samples, 0),
                                 ("alternatives", alternatives, 1), ("batch_size", batch_size, 1)):
            if not isinstance(value, int) or value < low:
                raise InputError(f"{name}={value!r} must be an integer >= {low}")
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens < 1):
            raise InputError(f"max_new_tokens={max_new_tokens!r} must be a positive integer or None")
        if teacher is None:
            raise InputError("teacher=None: pass a loaded model, a folder, a hub id or a .gguf file")
        try:
            self.stage = validate_stage(stage)
        except ValueError as err:
            raise InputError(str(err)) from None
        self.records = prompt_records(prompts)
        self.teacher, self.teacher_tokenizer, self.tokenizer = teacher, teacher_tokenizer, tokenizer
        self.out, self.every, self.samples, self.teacher_samples = Path(out), every, samples, teacher_samples
        self.max_new_tokens, self.temperature, self.top_p, self.top_k = max_new_tokens, temperature, top_p, top_k
        self.chat_template_kwargs, self.prompt_suffix, self.seed = chat_template_kwargs, prompt_suffix, seed
        self.alternatives, self.batch_size, self.log_trainer_metrics = alternatives, batch_size, log_trainer_metrics
        self.teacher_dtype = teacher_dtype
        self.run = self.cfg = None
        self.teacher_rollouts = None
        self.last_step: int | None = None
        self.seconds = 0.0  # time spent in snapshots, recorded in stage.json
        self._warned_sharded = False

    # --- trainer events ------------------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not state.is_world_process_zero:
            return
        with untouched(model):
            self._setup(args, state, model, processing_class)
        if not self.run.rollout_path(self.stage, state.global_step).exists():
            self._take(state, model)
        else:  # resumed exactly where a snapshot was taken: it is already there
            self.last_step = state.global_step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if (state.is_world_process_zero and self.every and state.global_step % self.every == 0
                and state.global_step < state.max_steps):  # the last step's snapshot is taken at the end
            self._take(state, model)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.log_trainer_metrics and logs and self.run is not None:
            self.run.append_metrics(self.stage, {"step": state.global_step, **log_record(logs)})

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or self.run is None:
            return
        if self.last_step != state.global_step:
            self._take(state, model)
        self._write_stage("done", state.global_step)
        self._refresh_summary()

    # --- setup -----------------------------------------------------------------------------------------------------

    def _setup(self, args, state, model, processing_class) -> None:
        from s2dlab.core.config import Config
        from s2dlab.core.models import check_compatible, load_model, load_tokenizer
        from s2dlab.core.runs import create_run

        if model is None:
            raise InputError("DenseRewardCallback needs the trainer's model; add it to a transformers Trainer")
        tok = self.tokenizer or getattr(processing_class, "tokenizer", None) or processing_class
        if tok is None and isinstance(self.teacher, (str, Path)):
            tok = load_tokenizer(self.teacher)
        if tok is None or not hasattr(tok, "apply_chat_template"):
            raise InputError("DenseRewardCallback has no tokenizer: pass tokenizer= or give the trainer a "
                             "processing_class")
        if not tok.chat_template:
            raise InputError(f"the policy's tokenizer ({type(tok).__name__}) has no chat template, and the probe "
                             f"formats every prompt as a user turn; pass tokenizer= one that has a chat template")
        if tok.pad_token is None:
            raise InputError("the policy's tokenizer has no pad token; set tokenizer.pad_token (e.g. to its eos) "
                             "before training")
        self.tokenizer = tok
        device = next(model.parameters()).device
        teacher_tok = self.teacher_tokenizer
        if isinstance(self.teacher, (str, Path)):
            self.teacher_source = _name_of(self.teacher)
            teacher_tok = teacher_tok or load_tokenizer(self.teacher)
            dtype = self.teacher_dtype or (_dtype_name(model) if device.type != "cpu" else "float32")
            self.teacher = load_model(self.teacher, dtype=dtype, device=str(device)).eval()
        else:
            self.teacher_source = _name_of(self.teacher)
        check_compatible(teacher_tok or tok, tok, self.teacher, model)
        if self.max_new_tokens is None:
            self.max_new_tokens = int(getattr(args, "max_completion_length", None) or 256)
        if self.chat_template_kwargs is None:
            self.chat_template_kwargs = dict(getattr(args, "chat_template_kwargs", None) or {})

        cfg = Config()
        cfg.name = self.out.resolve().name
        cfg.seed = int(getattr(args, "seed", self.seed))
        cfg.models.teacher, cfg.models.student = self.teacher_source, _name_of(model)
        cfg.models.dtype = _dtype_name(model)
        cfg.task.name, cfg.task.prompt_suffix = "math", self.prompt_suffix
        g = cfg.generation
        g.max_new_tokens, g.temperature = self.max_new_tokens, self.temperature
        g.top_p, g.top_k = self.top_p, self.top_k
        g.enable_thinking = bool(self.chat_template_kwargs.get("enable_thinking", False))
        g.batch_size = self.batch_size
        p = cfg.probe
        p.every, p.num_prompts, p.num_samples = self.every, len(self.records), self.samples
        p.teacher_samples, p.top_k, p.c1_prompts = self.teacher_samples, self.alternatives, 0
        self.cfg = cfg.validate()
        # a folder of one's own trainings: each run of the callback may use other settings (check_config=False)
        self.run = create_run(self.out, cfg.to_dict(), cfg.seed, check_config=False)
        steps = self.run.rollout_steps(self.stage)
        if steps and state.global_step == 0:
            raise InputError(f"{self.run.stage_dir(self.stage)} already holds snapshots (steps {steps[0]}-"
                             f"{steps[-1]}) of an earlier training; pass out= a new folder or stage= a new name")
        if state.global_step > 0:  # resumed: drop what was logged after the checkpoint (it is logged again)
            self._truncate_metrics(state.global_step)
        if not (self.run.path / "tokenizer" / "tokenizer_config.json").exists():
            tok.save_pretrained(self.run.path / "tokenizer")
        self._write_stage("running", state.global_step)

    def _truncate_metrics(self, step: int) -> None:
        import json

        from s2dlab.core.runs import atomic_write_bytes

        rows = [r for r in self.run.metrics(self.stage) if r.get("step", 0) <= step]
        atomic_write_bytes(self.run.stage_dir(self.stage) / "metrics.jsonl",
                           "".join(json.dumps(r) + "\n" for r in rows).encode())

    def _write_stage(self, status: str, step: int) -> None:
        self.run.update_stage(
            self.stage, status=status, kind="probe", role="student", teacher_source=self.teacher_source, steps=step,
            snapshots=self.run.rollout_steps(self.stage), prompts={"set": "probe", "n": len(self.records)},
            probe_seconds=round(self.seconds, 2), started=self.run.stage(self.stage).get("started", time.time()),
            **({"finished": time.time()} if status == "done" else {}))

    def _refresh_summary(self) -> None:
        from s2dlab.workflow.summary import write_summary

        write_summary(self.cfg, self.run)

    # --- one snapshot --------------------------------------------------------------------------------------------

    def _take(self, state, model) -> None:
        from s2dlab.core.distributed import params_sharded

        if model is None or self.run is None:
            return
        if params_sharded(model) or params_sharded(self.teacher):
            if not self._warned_sharded:
                warnings.warn("DenseRewardCallback: the model's parameters are sharded across processes "
                              "(ZeRO-3 / FSDP); one process cannot sample it, so no snapshots are taken",
                              stacklevel=2)
                self._warned_sharded = True
            return
        start = time.perf_counter()
        step = int(state.global_step)
        with untouched(model, self.teacher):
            rows = self.snapshot_rows(model, step)
        self.run.write_rollouts(self.stage, step, rows)
        self.run.append_metrics(self.stage, {"step": step, **probe_metrics(rows)})
        self.last_step = step
        self.seconds += time.perf_counter() - start
        self._write_stage("running", step)
        self._refresh_summary()

    def snapshot_rows(self, model, step: int) -> list[dict]:
        """Sample the policy (and, once, the teacher) on the prompts and score every token: run-store rows."""
        from s2dlab.core.data import grade_fn
        from s2dlab.core.generation import sample
        from s2dlab.core.scoring import score_rollouts

        kw = dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                  top_k=self.top_k, batch_size=self.batch_size, prompt_suffix=self.prompt_suffix,
                  chat_template_kwargs=self.chat_template_kwargs, progress=False)
        rollouts = sample(model, self.tokenizer, self.records, n=self.samples, seed=self.seed * 1000 + step,
                          policy="student", **kw)
        if self.teacher_samples and self.teacher_rollouts is None:
            self.teacher_rollouts = sample(self.teacher, self.tokenizer, self.records, n=self.teacher_samples,
                                           seed=TEACHER_SEED + self.seed, policy="teacher", **kw)
        answers = {r["id"]: r["answer"] for r in self.records if r["answer"] is not None}
        return score_rollouts(model, self.teacher, self.tokenizer, rollouts + (self.teacher_rollouts or []),
                              grade_fn=grade_fn(self.cfg), answers=answers, stage=self.stage, step=step,
                              top_k=self.alternatives, batch_size=self.batch_size)
