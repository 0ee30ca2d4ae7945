"""Measuring C1 and C2 on fixed rollouts: the part of the summary that runs models, as stages finish.

`measure_after(cfg, run, stage)` (called by the pipeline after each stage) takes the measurements a finished stage
makes possible, each once:

- `diagnostics/c1/rollouts.jsonl`: `probe.c1_samples` base-student rollouts of each of the first `probe.c1_prompts`
  eval problems, sampled once per seed; `diagnostics/c1/<teacher stage>.parquet`: those rollouts scored by each
  teacher (base, RL, SFT) as it finishes;
- `diagnostics/c2/<student stage>.parquet`: rollouts of a distilled student on the same problems, scored by the
  teacher it learned from.

`s2dlab.workflow.summary` reads these files and computes C1 and C2 from them without loading a model.
"""

from __future__ import annotations

import json

from s2dlab.core.config import Config
from s2dlab.core.runs import Run
from s2dlab.workflow.summary import C1_ROLLOUTS, c1_path, c2_path


def _fixed_records(cfg: Config) -> list[dict]:
    from s2dlab.core import data

    return data.probe_records(cfg, cfg.probe.c1_prompts)


def _sample(cfg: Config, model, tokenizer, records: list[dict], seed: int):
    from s2dlab.core import data
    from s2dlab.core.generation import sample

    g = cfg.generation
    return sample(model, tokenizer, records, n=cfg.probe.c1_samples, max_new_tokens=g.max_new_tokens,
                  temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, batch_size=g.batch_size, seed=seed,
                  prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=data.chat_kwargs(cfg), progress=False)


def _score(cfg: Config, student, teacher, tokenizer, rollouts, records, stage: str) -> list[dict]:
    from s2dlab.core import data
    from s2dlab.core.scoring import score_rollouts

    answers = {r["id"]: r["answer"] for r in records}
    rows = score_rollouts(student, teacher, tokenizer, rollouts, grade_fn=data.grade_fn(cfg), answers=answers,
                          stage=stage, step=0, top_k=cfg.probe.top_k)
    solutions = {r["id"]: r.get("solution") for r in records}
    if cfg.task.name == "arithmetic":
        from s2dlab.core.tasks.arithmetic import first_divergence

        for row in rows:
            sol = solutions.get(row["prompt_id"])
            row["first_error_char"] = None if row["correct"] or not sol else first_divergence(row["completion"], sol)
    return rows


def measure_c1(cfg: Config, run: Run, teacher_stage: str) -> None:
    """Score the fixed base-student rollouts with `teacher_stage` (sampling them first if this is the first)."""
    from s2dlab.core.distributed import device_of
    from s2dlab.core.generation import Rollout
    from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

    records = _fixed_records(cfg)
    if not records:
        return
    tok, device = tokenizer_for(cfg, run), device_of(cfg)
    student = load_stage_model(cfg, run, "base_student", tok, device)
    path = run.path / C1_ROLLOUTS
    if path.exists():
        rollouts = [Rollout(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    else:
        rollouts = _sample(cfg, student, tok, records, seed=777_000 + cfg.seed)
        from s2dlab.core.runs import atomic_write_bytes

        atomic_write_bytes(path, "".join(json.dumps(r.to_dict()) + "\n" for r in rollouts).encode())
    teacher = load_stage_model(cfg, run, teacher_stage, tok, device)
    run.write_rows(c1_path(teacher_stage), _score(cfg, student, teacher, tok, rollouts, records, teacher_stage))


def measure_c2(cfg: Config, run: Run, student_stage: str, teacher_stage: str) -> None:
    """Sample the distilled student on the fixed problems and score its rollouts with the teacher it learned from."""
    from s2dlab.core.distributed import device_of
    from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

    records = _fixed_records(cfg)
    if not records:
        return
    tok, device = tokenizer_for(cfg, run), device_of(cfg)
    student = load_stage_model(cfg, run, student_stage, tok, device)
    teacher = load_stage_model(cfg, run, teacher_stage, tok, device)
    rollouts = _sample(cfg, student, tok, records, seed=778_000 + cfg.seed)
    run.write_rows(c2_path(student_stage), _score(cfg, student, teacher, tok, rollouts, records, student_stage))


def measure_after(cfg: Config, run: Run, stage: str) -> None:
    """The fixed-rollout measurements that `stage` finishing makes possible (each taken once)."""
    if not cfg.probe.c1_prompts or not run.finished("base_student"):
        return
    for record in run.stage_records():
        if record.done and record.role == "teacher" and not (run.path / c1_path(record.name)).exists():
            measure_c1(cfg, run, record.name)
    record = run.stage(stage)
    if record.done and record.role == "student" and record.teacher and not (run.path / c2_path(stage)).exists():
        measure_c2(cfg, run, stage, record.teacher)
