"""The dashboard's read-only views, plain Python over the run store: the token view, the rollouts table, the token
lens, the comparison across stages and the export; and the one place callers import the data layer from.

The data layer (nothing in it imports gradio, so each view is testable by calling it directly, tests/test_app.py):

    store.py         Store: the runs under one folder, their snapshots and summaries, cached; AppError
    rows.py          rollout rows: the pickers' choices, which row a choice means, the header above a heatmap
    data.py          (this file) token view, rollouts table, token lens, compare
    summary_view.py  the Stages tab: summary.json rendered, C1/C2 figures on their rows, curves, drill-down
    export.py        one self-contained HTML file per view, in a folder that lives as long as the app
    models.py        where a stage's model is (its stage record), its size, the cached loader
    live.py          the views that run models: counterfactual branches, estimators, live scoring

Readers render, they never recompute: the Stages tab shows the run's `summary.json`, the token lens is read from
`lens/` (`s2dlab.instruments.lens`). Expected problems raise `AppError` with a sentence meant for the UI.
"""

from __future__ import annotations

import html

import pandas as pd

from s2dlab.core.runs import RunStoreError
from s2dlab.views import viz
from s2dlab.views.dashboard.export import export_file, safe_name, token_view_export
from s2dlab.views.dashboard.live import live_score, live_view, live_warning
from s2dlab.views.dashboard.models import (
    LARGE_MODEL_BYTES,
    model_bytes,
    model_location,
    model_stages,
)
from s2dlab.views.dashboard.rows import (
    badge_text,
    is_student,
    missing,
    pick,
    problem_choices,
    prompt_text,
    rollout_header_html,
    sample_choices,
)
from s2dlab.views.dashboard.store import AppError, Store, whole_number
from s2dlab.views.dashboard.summary_view import (
    TOP_TOKEN_COLUMNS,
    c1_view,
    c2_files,
    c2_view,
    curves_view,
    drill_down,
    nearest_snapshot,
    stages_view,
    top_tokens,
    verdict_markdown,
)

__all__ = [
    "ALL_PAIRS", "AppError", "COLOR_BY", "LARGE_MODEL_BYTES", "LENS_VALUES", "Store", "TABLE_COLUMNS",
    "TOP_TOKEN_COLUMNS", "badge_text", "c1_view", "c2_files", "c2_view", "compare_problems", "compare_view",
    "curves_view", "drill_down", "export_file", "lens_choices", "lens_index", "lens_view", "live_score", "live_view",
    "live_warning", "safe_name", "token_view_export", "model_bytes", "model_location", "model_stages", "nearest_snapshot", "problem_choices",
    "rollout_header_html", "rollout_table", "row_target", "sample_choices", "stages_view", "token_view",
    "top_tokens", "verdict_markdown",
]

TABLE_COLUMNS = ["prompt_id", "sample_idx", "policy", "correct", "length", "sum_implicit_reward", "mean_reverse_kl",
                 "answer", "extracted", "completion"]
COLOR_BY = {"implicit reward": "implicit_reward", "reverse KL": "reverse_kl", "forward KL": "forward_kl"}


# --------------------------------------------------------------------------------------------------------------
# token view


def token_view(store: Store, run_id: str, stage: str, step, prompt_id: str | None, sample_idx: int | None,
               teacher_idx: int | None = None, color_by: str = "implicit reward"):
    """(student html, teacher html, per-position figure, note) for one problem of one snapshot.

    Both heatmaps share one colour range, so equal colours mean equal values.
    """
    df = store.snapshot(run_id, stage, step)
    run = store.open(run_id)
    if prompt_id is None:
        prompt_id = str(df["prompt_id"].iloc[0])
    value = COLOR_BY.get(color_by, "implicit_reward")
    student = pick(df, prompt_id, "student", sample_idx)
    teacher = pick(df, prompt_id, "teacher", teacher_idx)
    if student is None and teacher is None:
        raise AppError(f"Problem {prompt_id!r} is not in this snapshot.")
    vocab = store.vocab(run, df)
    vmax = viz.heatmap_vmax([student, teacher], value)
    prompt = (student if student is not None else teacher).get("prompt", "")
    note = f"**Problem {html.escape(str(prompt_id))}:** `{prompt_text(prompt, 200)}`"

    def render(row, who):
        if row is None:
            return (f"<div class='s2d-head'>No {who} rollout for this problem in this snapshot"
                    + (" (teacher samples are taken only when the probe asks for them)." if who == "teacher" else ".")
                    + "</div>")
        return rollout_header_html(row, who) + viz.rollout_heatmap_html(row, value=value, vmax=vmax,
                                                                          id_to_text=vocab, max_height=420)

    fig = viz.per_token_figure(student if student is not None else teacher)
    return render(student, "student"), render(teacher, "teacher"), fig, note


# --------------------------------------------------------------------------------------------------------------
# rollouts table


def rollout_table(store: Store, run_id: str, stage: str, step, correct: str = "all",
                  policy: str = "all") -> pd.DataFrame:
    """One row per rollout: correct, length, summed implicit reward, mean reverse KL, answers, a text preview."""
    df = store.snapshot(run_id, stage, step)
    out = pd.DataFrame({
        "prompt_id": df["prompt_id"].astype(str),
        "sample_idx": df["sample_idx"].astype(int) if "sample_idx" in df else 0,
        "policy": df["policy"].fillna("student").astype(str),
        "correct": df["correct"].map(lambda v: None if missing(v) else bool(v)) if "correct" in df else None,
        "length": df["tokens"].map(len),
    })
    ir = df["implicit_reward"] if "implicit_reward" in df else pd.Series([None] * len(df))
    rkl = df["reverse_kl"] if "reverse_kl" in df else pd.Series([None] * len(df))
    out["sum_implicit_reward"] = [round(float(sum(v)), 4) if v is not None else None for v in ir]
    out["mean_reverse_kl"] = [round(float(sum(v)) / max(1, len(v)), 4) if v is not None else None for v in rkl]
    out["answer"] = df["answer"].map(lambda v: "" if missing(v) else str(v)) if "answer" in df else ""
    out["extracted"] = df["extracted"].map(lambda v: "" if missing(v) else str(v)) if "extracted" in df else ""
    out["completion"] = df["completion"].map(lambda s: prompt_text(s, 80)) if "completion" in df else ""
    if correct == "correct":
        out = out[out["correct"] == True]  # noqa: E712  (None stays out)
    elif correct == "incorrect":
        out = out[out["correct"] == False]  # noqa: E712
    if policy in ("student", "teacher"):
        out = out[out["policy"] == policy]
    return out[TABLE_COLUMNS].reset_index(drop=True)


def row_target(row_value: list | None) -> tuple[str, str, int] | None:
    """(prompt_id, policy, sample_idx) from a selected table row's values (columns as in TABLE_COLUMNS)."""
    if not row_value or len(row_value) < 3:
        return None
    try:
        return str(row_value[0]), str(row_value[2]), int(float(row_value[1]))
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------------
# token lens (s2dlab.instruments.lens): computed once per run, read here

LENS_VALUES = {"implicit reward": "implicit_reward", "reverse KL": "reverse_kl", "forward KL": "forward_kl"}
ALL_PAIRS = "all pairs"
LENS_MAX_DEFAULT_ROWS = 16  # above this many pairs the table opens on one teacher's rows


def lens_index(store: Store, run_id: str) -> dict:
    """The run's lens index (`lens/lens.json`); AppError with the command to run when the run has none."""
    from s2dlab.instruments.lens import check_lens, read_lens_index

    run = store.open(run_id)
    try:
        index = read_lens_index(run)
        check_lens(run)
    except RunStoreError as e:
        raise AppError(f"Cannot read the token lens: {e}") from e
    if not index:
        raise AppError(f"Run {run_id!r} has no token lens yet: run `s2dlab lens {run.path}` (it re-scores the "
                       "first probe snapshot with every saved checkpoint pair, once) and reload.")
    return index


def lens_choices(store: Store, run_id: str) -> tuple[list[tuple[str, str]], list[str], str, str]:
    """(rollout choices as (label, rollout key), pair filters, the default filter, a note) of the run's lens.

    Filters: all pairs, `teacher: <stage>` (every student under one teacher), `student: <stage>` (one student under
    every teacher). A lens of more than `LENS_MAX_DEFAULT_ROWS` pairs opens on the teacher most students learned
    from."""
    index = lens_index(store, run_id)
    rollouts = []
    for r in index.get("rollouts") or []:
        flips = r.get("n_sign_changes", 0)
        rollouts.append((f"{r['key']} {badge_text(r.get('correct'))} · {r.get('length')} tokens · {flips} sign "
                         f"change{'' if flips == 1 else 's'}", r["key"]))
    pairs = index.get("pairs") or []
    teachers = list(dict.fromkeys(p["teacher"] for p in pairs))
    students = list(dict.fromkeys(p["student"] for p in pairs))
    filters = [ALL_PAIRS] + [f"teacher: {t}" for t in teachers] + [f"student: {s}" for s in students]
    default = ALL_PAIRS
    if len(pairs) > LENS_MAX_DEFAULT_ROWS and teachers:
        own = [c.get("teacher") for c in index.get("checkpoints") or [] if c.get("teacher") in teachers]
        default = f"teacher: {max(teachers, key=own.count)}"
    src = index.get("source") or {}
    note = (f"The rollouts of **{html.escape(str(src.get('stage')))} step {src.get('step')}** (the first probe "
            f"snapshot) re-scored by {len(pairs)} (teacher ▸ student) checkpoint pairs; ⇅ marks a token whose "
            f"implicit reward is positive under one pair and negative under another (beyond "
            f"±{index.get('sign_tolerance')} nats), across all pairs. Computed {index.get('created')}.")
    return rollouts, filters, default, note


def lens_view(store: Store, run_id: str, rollout_key: str | None, value: str = "implicit reward",
              pairs: str | None = None) -> str:
    """The lens table of one rollout (`viz.lens_html`), all pairs or those of one teacher / one student
    (`pairs` = "teacher: <stage>" / "student: <stage>")."""
    from s2dlab.instruments.lens import read_lens

    index = lens_index(store, run_id)
    keys = [r["key"] for r in index.get("rollouts") or []]
    if not keys:
        raise AppError("The token lens of this run holds no rollouts.")
    if rollout_key not in keys:
        rollout_key = keys[0]
    run = store.open(run_id)
    store.inside(run.path / "lens")
    try:
        rows = read_lens(run, rollout_key)
    except RunStoreError as e:
        raise AppError(f"Cannot read the token lens: {e}") from e
    if pairs and pairs != ALL_PAIRS:
        role, _, stage = str(pairs).partition(": ")
        if role not in ("teacher", "student") or not stage:
            raise AppError(f"pairs={pairs!r}: pick {ALL_PAIRS!r}, 'teacher: <stage>' or 'student: <stage>'.")
        rows = rows[rows[role] == stage]
        if rows.empty:
            raise AppError(f"No lens pair has {role} checkpoint {stage!r}.")
    info = next(r for r in index["rollouts"] if r["key"] == rollout_key)
    title = f"{rollout_key} · {badge_text(info.get('correct'))}"
    return viz.lens_html(rows, value=LENS_VALUES.get(value, "implicit_reward"), title=title)


# --------------------------------------------------------------------------------------------------------------
# compare view


def compare_problems(store: Store, run_id: str) -> list[tuple[str, str]]:
    """Problems present in the latest snapshot of any stage (union, first seen first); a damaged snapshot is
    skipped (the comparison says which)."""
    seen: dict[str, str] = {}
    for stage in store.snapshot_stages(run_id):
        try:
            df = store.snapshot(run_id, stage)
        except AppError:
            continue
        for label, pid in problem_choices(df[is_student(df)] if len(df[is_student(df)]) else df):
            seen.setdefault(pid, label.split(" [")[0])
    return [(label, pid) for pid, label in seen.items()]


def compare_view(store: Store, run_id: str, prompt_id: str | None, stages: list[str] | None = None,
                 sample_idx=0) -> str:
    """The same problem in the latest snapshot of each stage, one heatmap per stage on a shared colour range: the
    student's sample `sample_idx` (a whole number; AppError when no stage has it). A stage whose snapshot lacks that
    sample, or cannot be read, gets a line saying so."""
    if not prompt_id:
        raise AppError("Pick a problem to compare.")
    sample_idx = whole_number(sample_idx, "the student sample", 0)
    run = store.open(run_id)
    chosen = [s for s in store.snapshot_stages(run_id) if not stages or s in stages]
    found, notes, held = [], [], set()
    for stage in chosen:
        try:
            df = store.snapshot(run_id, stage)
        except AppError as e:
            notes.append(f"{stage}: left out, {e}")
            continue
        rows = df[is_student(df) & (df["prompt_id"].astype(str) == str(prompt_id))]
        samples = sorted(int(i) for i in rows["sample_idx"]) if "sample_idx" in rows else []
        held.update(samples)
        if not samples:
            continue
        if sample_idx not in samples:
            notes.append(f"{stage}: no sample #{sample_idx} of this problem (it has #{samples[0]}–#{samples[-1]})")
            continue
        row = pick(df, prompt_id, "student", sample_idx)
        found.append((stage, int(df["step"].iloc[0]) if "step" in df else run.rollout_steps(stage)[-1], row,
                      store.vocab(run, df)))
    if not found and held:
        raise AppError(f"Sample #{sample_idx} of problem {prompt_id} is in no stage's latest snapshot: they hold "
                       f"samples #{min(held)}–#{max(held)}.")
    head = "".join(f"<div class='s2d-head'>{html.escape(n)}</div>" for n in notes)
    if not found:
        return head + (f"<div class='s2d-head'>Problem {html.escape(str(prompt_id))} is in no stage's latest "
                       "snapshot.</div>")
    vmax = viz.heatmap_vmax([f[2] for f in found], "implicit_reward")
    parts = [head]
    for stage, step, row, vocab in found:
        parts.append(f"<h4 style='margin:14px 0 2px 0'>{html.escape(stage)} · step {step}</h4>")
        parts.append(rollout_header_html(row, "student"))
        parts.append(viz.rollout_heatmap_html(row, vmax=vmax, id_to_text=vocab, max_height=300))
    return "".join(parts)
