"""The Stages tab's data: a run's summary.json rendered, the rows C1 and C2 were measured on, the stage curves, and
the drill-down from a point of a curve to that stage's snapshot.

Readers render, they never recompute: everything comes from the run's `summary.json` (`s2dlab.workflow.summary`, the one
definition of C1, C2, the arms' intervals and the paper's predictions) and the files it names. Nothing here calls a
measure or a verdict of `s2dlab.core.diagnostics`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go

from s2dlab.core.runs import RunStoreError, stage_sort_key
from s2dlab.views import viz
from s2dlab.views.dashboard.rows import missing
from s2dlab.views.dashboard.store import AppError, Store
from s2dlab.views.viz.figures import CURVE_LABELS, curve_names
from s2dlab.workflow import summary as summary_mod


def stage_order(stages) -> list[str]:
    return sorted(stages, key=stage_sort_key)


def empty_figure(message: str) -> go.Figure:
    """A small blank figure that says `message` (where a plot has nothing to draw)."""
    fig = go.Figure()
    fig.add_annotation(text=html.escape(message), showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
    return fig


def verdict_markdown(summary: Mapping, key: str | None = None) -> str:
    """The summary's own words: its `c1` or `c2` verdict (`key`), or for an aggregate of seeds every seed's C1 and
    C2 verdicts (`key` None). Nothing is judged here."""
    esc = lambda t: "<br>".join(html.escape(line, quote=False) for line in str(t).splitlines())  # noqa: E731
    if key is None:
        if not summary.get("per_seed"):
            return ""
        parts = [f"**{len(summary['per_seed'])} seeds** ({', '.join(str(s) for s in summary.get('seeds', []))}): "
                 "the accuracy intervals cover problems and seeds; C1 and C2 below are each seed's own verdicts."]
        for seed in summary["per_seed"]:
            for k in ("c1", "c2"):
                text = (seed.get(k) or {}).get("verdict")
                if text:
                    parts.append(f"**seed {seed.get('seed')}** " + esc(text))
        return "\n\n".join(parts)
    text = (summary.get(key) or {}).get("verdict")
    return esc(text) if text else f"No {key.upper()} verdict in this run's summary yet."


# --------------------------------------------------------------------------------------------------------------
# curves

DEFAULT_CURVES = ("probe/accuracy", "probe/auroc", "probe/mean_reverse_kl", "reward", "loss")
DEFAULT_CURVE_STAGES = ("teacher_grpo", "fkl_warmup", "opd", "student_grpo", "cold_grpo")


def curve_choices(summary: Mapping) -> tuple[list[str], list[str], list[str], list[str]]:
    """(metric choices, default metrics, stage choices, default stages) for the curves, from the summary's
    `metric_names` of each stage: the curves s2dlab knows first (`viz.CURVE_LABELS`), bookkeeping left out; the
    default is `DEFAULT_CURVES` over the four-stage workflow and cold GRPO (`DEFAULT_CURVE_STAGES`)."""
    stages = summary.get("stages") or {}
    names = {m for e in stages.values() for m in (e or {}).get("metric_names") or []}
    metrics = curve_names(names)
    default = [m for m in DEFAULT_CURVES if m in metrics] or [m for m in metrics if m in CURVE_LABELS] or metrics[:4]
    with_metrics = stage_order(s for s, e in stages.items() if (e or {}).get("metric_names"))
    default_stages = [s for s in with_metrics if s in DEFAULT_CURVE_STAGES] or with_metrics
    return metrics, default, with_metrics, default_stages


def logged_curves(store: Store, run_id: str) -> tuple[list[str], list[str]]:
    """(curve names, stages) of what the run's stages have logged so far, read from their metrics files (a run in
    progress logs before its summary names it)."""
    run = store.open(run_id)
    names, stages = set(), []
    try:
        for stage in run.stages():
            records = run.metrics(stage)
            if records:
                stages.append(stage)
                names.update(k for r in records for k in r)
    except RunStoreError as e:
        raise AppError(f"Cannot read metrics: {e}") from e
    return curve_names(names), stage_order(stages)


def curves_view(store: Store, run_id: str, metrics=None, stages=None):
    """The stage curves of a run (`viz.stage_curves_figure`), each point carrying (stage, step) for drill-down."""
    run = store.open(run_id)
    try:
        return viz.stage_curves_figure(run, metrics=metrics or None, stages=stage_order(stages) if stages else None)
    except RunStoreError as e:
        raise AppError(f"Cannot read metrics: {e}") from e


# --------------------------------------------------------------------------------------------------------------
# C1 and C2 on the rows they were measured on


def c2_files(pair: Mapping) -> tuple[str | None, str]:
    """(before, after) rollout files of one `c2.pairs` entry, as `s2dlab.workflow.summary.c2_summary` recorded them."""
    return pair.get("before_file"), pair["after_file"]


def c2_choices(summary: Mapping) -> list[str]:
    pairs = (summary.get("c2") or {}).get("pairs") or []
    return stage_order(p["stage"] for p in pairs)


def c2_view(store: Store, run_id: str, stage: str | None):
    """The C2 histogram of one distillation stage (default: `opd`, else the first), from the diagnostics files."""
    summary = store.summary(run_id)
    pairs = {p["stage"]: p for p in (summary.get("c2") or {}).get("pairs") or []}
    if not pairs:
        return viz.c2_pair_figure(None, None, None)
    stage = stage if stage in pairs else ("opd" if "opd" in pairs else c2_choices(summary)[0])
    run = store.open(run_id)
    before, after = c2_files(pairs[stage])
    return viz.c2_pair_figure(pairs[stage], store.rows_file(run, before) if before else None,
                              store.rows_file(run, after))


def c1_view(store: Store, run_id: str):
    summary = store.summary(run_id)
    c1 = summary.get("c1") or {}
    run = store.open(run_id)
    rows = {t: store.rows_file(run, summary_mod.c1_path(t)) for t in (c1.get("teachers") or {})}
    return viz.c1_rollouts_figure(c1, rows)


# --------------------------------------------------------------------------------------------------------------
# the whole tab


def _part(problems: dict, section: str, make, message: str):
    """`make()`, or, when a file it reads is damaged, an empty figure saying `message` with the sentence naming
    the file kept in `problems[section]`: one damaged file empties only the part that reads it."""
    try:
        return make()
    except AppError as e:
        problems[section] = str(e)
        return empty_figure(message)


def stages_view(store: Store, run_id: str) -> dict:
    """Everything the Stages tab shows, rendered from the run's summary (`s2dlab.workflow.summary.read_summary`) and the
    rows it was measured on: `arms`, `claims` (DataFrames), `arms_figure`, `c1_figure`, `c1_table`, `c2_figure`,
    `c2_table`, `c2_choices`, `c2_stage`, `quadrants`, `curves`, `metrics` / `metrics_default` / `curve_stages` /
    `curve_stages_default` (the curve pickers), `verdict` (an aggregate's per-seed verdicts), `c1_verdict` and
    `c2_verdict` (the summary's own words), `note`, and `problems`: {"c1" | "c2" | "curves": the sentence naming
    the damaged file that part could not read}.

    A folder of seeds shows its aggregate (arms, predictions, per-seed verdicts); the per-run figures then say to
    pick one seed's run. An unreadable summary raises AppError."""
    summary = store.summary(run_id)
    out = {"arms": viz.arms_frame(summary), "claims": viz.claims_frame(summary),
           "arms_figure": viz.arms_figure(summary), "verdict": verdict_markdown(summary),
           "c1_verdict": verdict_markdown(summary, "c1"), "c2_verdict": verdict_markdown(summary, "c2"),
           "c1_table": viz.c1_frame(summary), "c2_table": viz.c2_frame(summary), "problems": {}}
    if store.is_aggregate(run_id):
        msg = "pick one seed's run for C1, C2, the quadrants and the curves"
        out.update(c1_verdict="", c2_verdict="", c1_figure=empty_figure(msg), c2_figure=empty_figure(msg),
                   c2_choices=[], c2_stage=None, quadrants=empty_figure(msg), curves=empty_figure(msg), metrics=[],
                   metrics_default=[], curve_stages=[], curve_stages_default=[],
                   note=f"The aggregate summary of {len(summary.get('seeds') or [])} seeds "
                        f"({', '.join(s for s in store.seed_runs(run_id))}).")
        return out
    metrics, default, stages, default_stages = curve_choices(summary)
    choices = c2_choices(summary)
    c2_stage = "opd" if "opd" in choices else (choices[0] if choices else None)
    problems = out["problems"]
    out.update(c1_figure=_part(problems, "c1", lambda: c1_view(store, run_id), "C1's rollouts cannot be read"),
               c2_figure=_part(problems, "c2", lambda: c2_view(store, run_id, c2_stage),
                               "C2's rollouts cannot be read"),
               c2_choices=choices, c2_stage=c2_stage, quadrants=viz.quadrants_figure(summary.get("stages")),
               curves=_part(problems, "curves", lambda: curves_view(store, run_id, default, default_stages),
                            "the metrics cannot be read"), metrics=metrics, metrics_default=default,
               curve_stages=stages, curve_stages_default=default_stages,
               note=f"From {summary_mod.SUMMARY_FILE} of {run_id} (seed {summary.get('seed')}); click a point of a "
                    "curve to open that stage's snapshot nearest that step.")
    return out


# --------------------------------------------------------------------------------------------------------------
# drill-down: a point of a curve -> that stage's snapshot, its largest |implicit reward| tokens

TOP_TOKEN_COLUMNS = ["prompt_id", "sample_idx", "policy", "position", "token", "implicit_reward", "p_student",
                     "p_teacher", "reverse_kl", "correct"]


def nearest_snapshot(store: Store, run_id: str, stage: str, step) -> int:
    """The snapshot step of `stage` nearest `step` (the earlier one on a tie)."""
    run = store.open(run_id)
    store.stage_path(run, stage)
    steps = run.rollout_steps(stage)
    if not steps:
        raise AppError(f"Stage {stage!r} of {run_id!r} has no rollout snapshots, so there is no snapshot to open at "
                       f"step {step}.")
    try:
        target = float(step)
    except (TypeError, ValueError) as e:
        raise AppError(f"step={step!r} is not a number.") from e
    return min(steps, key=lambda s: (abs(s - target), s))


def top_tokens(df: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The `n` tokens of a snapshot with the largest |implicit reward| (stored per token), largest first."""
    out = []
    for _, row in df.iterrows():
        rewards = row.get("implicit_reward")
        if rewards is None or (isinstance(rewards, float) and math.isnan(rewards)):
            continue
        tokens, s_lp, t_lp = row.get("tokens"), row.get("student_logprob"), row.get("teacher_logprob")
        rkl = row.get("reverse_kl")
        for t, v in enumerate(rewards):
            if v is None or not math.isfinite(float(v)):
                continue
            out.append({"prompt_id": str(row["prompt_id"]), "sample_idx": int(row.get("sample_idx", 0)),
                        "policy": str(row.get("policy") or "student"), "position": t,
                        "token": viz.visible_text(str(tokens[t])), "implicit_reward": round(float(v), 4),
                        "p_student": None if s_lp is None else round(math.exp(float(s_lp[t])), 4),
                        "p_teacher": None if t_lp is None else round(math.exp(float(t_lp[t])), 4),
                        "reverse_kl": None if rkl is None else round(float(rkl[t]), 4),
                        "correct": None if missing(row.get("correct")) else bool(row.get("correct"))})
    out.sort(key=lambda r: -abs(r["implicit_reward"]))
    return pd.DataFrame(out[:n], columns=TOP_TOKEN_COLUMNS)


def drill_down(store: Store, run_id: str, stage: str, step) -> tuple[int, pd.DataFrame, str]:
    """(snapshot step, its top |implicit reward| tokens, a note) for a clicked curve point (stage, step)."""
    snap = nearest_snapshot(store, run_id, stage, step)
    df = store.snapshot(run_id, stage, snap)
    try:
        shown = f"{float(step):g}"
    except (TypeError, ValueError):
        shown = str(step)
    note = (f"**{html.escape(stage)} · snapshot step {snap}** (nearest the clicked step {shown}): the tokens with "
            f"the largest |implicit reward|; click a row to open its rollout in the Token view.")
    return snap, top_tokens(df), note
