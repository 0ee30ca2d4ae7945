"""A run's summary drawn as tables and figures: the arms, the paper's predictions, C1, C2 and the token quadrants.

Everything here renders `summary.json` (`s2dlab.workflow.summary`) and, where a figure shows the spread behind a number,
the stored rows the summary was measured on; no interval, AUROC, verdict or share is computed here.

    arms_frame(summary)                       arms: accuracy with its 95% interval, greedy, every budget column
    claims_frame(summary)                     the paper's predictions: a - b with its interval and status
    c1_frame(summary) / c2_frame(summary)     C1 per teacher, C2 per distillation stage, with intervals
    c1_rollouts_figure(c1, rows_by_teacher)   the fixed rollouts' summed implicit reward by correctness per teacher,
                                              AUROCs and the trained-minus-raw differences from the summary
    c2_pair_figure(pair, before, after)       per-token reverse KL histogram before / after one distillation stage,
                                              means and intervals from the summary
    quadrants_figure(stages)                  the token quadrants of each stage's last snapshot (token and
                                              |implicit reward| shares)

Stage names sort in workflow order (`s2dlab.core.runs.stage_sort_key`): summary.json stores its keys sorted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from s2dlab.core.runs import stage_sort_key
from s2dlab.views.viz.colors import finite
from s2dlab.views.viz.figures import _empty_figure, ordered_arms

# Bin edges (nats) of the per-token reverse-KL histograms; the last bin is open-ended.
KL_EDGES = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
QUADRANT_LABELS = {
    "confident_agree": "confident, teacher agrees",
    "confident_disagree": "confident, teacher disagrees",
    "uncertain_agree": "unsure, teacher agrees",
    "uncertain_disagree": "unsure, teacher disagrees",
}
QUADRANT_COLORS = {"confident_agree": "#92c5de", "confident_disagree": "#b2182b", "uncertain_agree": "#d1e5f0",
                   "uncertain_disagree": "#f4a582"}
STATUS_MARK = {"holds": "✓ holds", "within noise": "≈ within noise", "reversed": "✗ reversed",
               "does not hold": "✗ does not hold"}


# --------------------------------------------------------------------------------------------------------------
# number formats


def pct(x, signed: bool = False) -> str:
    x = finite(x)
    if x is None:
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


# What a reader shows for a greedy accuracy the run did not measure (the qwen3_paper preset samples only, as the
# paper's avg@16 does: eval.greedy=false).
GREEDY_NOT_MEASURED = "not measured (eval.greedy=false)"


def greedy_text(x, unit: str = "") -> str:
    """A stage's greedy accuracy (a fraction, as summary.json stores it) in percent with `unit` after it, or
    `GREEDY_NOT_MEASURED` when the run did not measure it (None)."""
    return GREEDY_NOT_MEASURED if x is None else f"{pct(x)}{unit}"


def interval(ci, fmt: str = "{:.3f}", scale: float = 1.0) -> str:
    """` [lo, hi]` of a stored interval, or "" when it has none."""
    if not ci or finite(ci[0]) is None or finite(ci[1]) is None:
        return ""
    return f" [{fmt.format(scale * ci[0])}, {fmt.format(scale * ci[1])}]"


def num(x, fmt: str = "{:.3f}") -> str:
    x = finite(x)
    return "–" if x is None else fmt.format(x)


def ordered_stages(names) -> list[str]:
    return sorted(names, key=stage_sort_key)


# --------------------------------------------------------------------------------------------------------------
# tables


def arms_frame(summary: Mapping) -> pd.DataFrame:
    """One row per arm (paper order): accuracy with its 95% interval, greedy, labels and every budget column; for an
    aggregate of seeds also each seed's accuracy. The base student closes the table."""
    arms = summary.get("arms") or {}
    k = (summary.get("eval") or {}).get("k", "k")
    seeds = summary.get("seeds")
    acc_col = f"avg@{k} % [95% CI{', ' + str(len(seeds)) + ' seeds' if seeds else ''}]"
    per_seed = {s.get("seed"): s.get("arms") or {} for s in summary.get("per_seed") or []}
    rows = []
    for name in ordered_arms(summary):
        m = arms[name]
        ci = (m.get("interval") or {}).get("ci")
        kind = m.get("labels_kind") or []
        row = {"arm": name, "paper row": m.get("row", ""), "block": m.get("block", ""),
               acc_col: pct(m.get("accuracy")) + interval(ci, "{:.1f}", 100),
               "greedy %": pct(m.get("greedy")),
               "labels": f"{m.get('labels', '–')}"
               + (f" ({', '.join(kind)})" if kind not in ([], ["answers"]) else ""),
               "student steps": m.get("student_steps"), "student sequences": m.get("student_sequences"),
               "teacher steps": m.get("teacher_steps"), "teacher-scored sequences": m.get("teacher_scored_sequences")}
        if per_seed:
            row["per seed %"] = ", ".join(pct(a.get(name)) for a in per_seed.values())
        rows.append(row)
    base = summary.get("base") or {}
    if base.get("student") is not None:
        ci = (base.get("student_interval") or {}).get("ci")
        rows.append({"arm": "(base student)", "paper row": "before any arm", "block": "",
                     acc_col: pct(base["student"]) + interval(ci, "{:.1f}", 100), "greedy %": "", "labels": "0",
                     "student steps": 0, "student sequences": 0, "teacher steps": 0, "teacher-scored sequences": 0})
    columns = ["arm", "paper row", "block", acc_col, "greedy %", "labels", "student steps", "student sequences",
               "teacher steps", "teacher-scored sequences"] + (["per seed %"] if per_seed else [])
    return pd.DataFrame(rows, columns=columns)


def claims_frame(summary: Mapping) -> pd.DataFrame:
    """The paper's predictions as the summary judged them: a - b in points with its 95% interval, and the status."""
    rows = []
    for c in summary.get("claims") or []:
        rows.append({"status": STATUS_MARK.get(c.get("status"), c.get("status") or "–"),
                     "prediction": c.get("claim", c.get("id")), "a − b": f"{c['a']} − {c['b']}",
                     "difference (points) [95% CI]": pct(c.get("difference"), True)
                     + interval(c.get("ci"), "{:+.1f}", 100)})
    return pd.DataFrame(rows, columns=["status", "prediction", "a − b", "difference (points) [95% CI]"])


def c1_frame(summary: Mapping) -> pd.DataFrame:
    """C1 per teacher stage on the fixed rollouts: AUROC of the summed implicit reward with its interval, the
    length-only AUROC (the control), the implicit reward at the first wrong character and elsewhere."""
    teachers = (summary.get("c1") or {}).get("teachers") or {}
    rows = []
    for name in ordered_stages(teachers):
        t = teachers[name]
        fe = t.get("first_error") or {}
        mk = t.get("mean_reverse_kl") or {}
        rows.append({"teacher": name, "rollouts": t.get("rollouts"),
                     "correct / incorrect": f"{t.get('n_correct', '–')} / {t.get('n_incorrect', '–')}",
                     "AUROC [95% CI]": num(t.get("auroc")) + interval(t.get("ci")),
                     "length-only AUROC": num(t.get("length_auroc")),
                     "reward at first error [CI]": num(fe.get("at_error"), "{:+.3f}")
                     + interval(fe.get("at_error_ci"), "{:+.3f}"),
                     "reward elsewhere [CI]": num(fe.get("elsewhere"), "{:+.3f}")
                     + interval(fe.get("elsewhere_ci"), "{:+.3f}"),
                     "mean reverse KL [CI]": num(mk.get("mean")) + interval(mk.get("ci"))})
    return pd.DataFrame(rows, columns=["teacher", "rollouts", "correct / incorrect", "AUROC [95% CI]",
                                       "length-only AUROC", "reward at first error [CI]", "reward elsewhere [CI]",
                                       "mean reverse KL [CI]"])


def c2_frame(summary: Mapping) -> pd.DataFrame:
    """C2 per distillation stage: mean per-token reverse KL before and after, the change with its interval."""
    rows = []
    pairs = (summary.get("c2") or {}).get("pairs") or []
    for p in sorted(pairs, key=lambda p: stage_sort_key(p["stage"])):
        b, a, ch = p.get("before") or {}, p.get("after") or {}, p.get("change") or {}
        rows.append({"stage": p["stage"], "from": p.get("init"), "teacher": p.get("teacher"),
                     "reverse KL before [CI]": num(b.get("mean")) + interval(b.get("ci")),
                     "after [CI]": num(a.get("mean")) + interval(a.get("ci")),
                     "change [CI]": num(ch.get("difference"), "{:+.3f}") + interval(ch.get("ci"), "{:+.3f}"),
                     "verdict": ch.get("verdict") or "–"})
    return pd.DataFrame(rows, columns=["stage", "from", "teacher", "reverse KL before [CI]", "after [CI]",
                                       "change [CI]", "verdict"])


# --------------------------------------------------------------------------------------------------------------
# C1: the fixed rollouts under each teacher


def _records(rows) -> list[dict]:
    if rows is None:
        return []
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def c1_rollouts_figure(c1: Mapping | None, rows_by_teacher: Mapping[str, Sequence]) -> go.Figure:
    """Each fixed rollout's summed implicit reward (as stored in its row) under each teacher, correct against
    incorrect; each teacher's AUROC with its interval labels its column, and the title gives every trained teacher's
    AUROC difference to the raw teacher with its interval and verdict, all from the summary's `c1`."""
    c1 = c1 or {}
    teachers = c1.get("teachers") or {}
    names = ordered_stages([n for n in rows_by_teacher if _records(rows_by_teacher[n])])
    if not names:
        return _empty_figure("no fixed C1 rollouts scored yet")
    ticks = []
    for n in names:
        t = teachers.get(n) or {}
        ticks.append(f"{n}<br>AUROC {num(t.get('auroc'), '{:.2f}')}{interval(t.get('ci'), '{:.2f}')}")
    fig = go.Figure()
    for label, flag, color in (("correct", True, "#2166ac"), ("incorrect", False, "#b2182b")):
        xs, ys = [], []
        for n, tick in zip(names, ticks):
            for r in _records(rows_by_teacher[n]):
                v, ok = finite(r.get("sum_implicit_reward")), r.get("correct")
                if v is None or ok is None or (isinstance(ok, float) and ok != ok) or bool(ok) != flag:
                    continue
                xs.append(tick)
                ys.append(v)
        fig.add_trace(go.Box(x=xs, y=ys, name=label, marker_color=color, boxpoints="all", jitter=0.5, pointpos=0,
                             marker=dict(size=5, opacity=0.7), line=dict(width=1),
                             hovertemplate=label + ": summed implicit reward %{y:.2f}<extra></extra>"))
    lines = []
    for cmp in c1.get("comparisons") or []:
        d = finite(cmp.get("difference"))
        if d is None:
            lines.append(f"{cmp['teacher']} − {cmp['raw']}: all rollouts alike, no AUROC")
            continue
        lines.append(f"{cmp['teacher']} − {cmp['raw']}: AUROC difference {d:+.2f}"
                     f"{interval(cmp.get('ci'), '{:+.2f}')} "
                     f"({cmp.get('verdict')})")
    sub = "<br>".join(f"<sup>{line}</sup>" for line in lines)
    fig.update_layout(title=dict(text="C1: summed implicit reward of the fixed rollouts, by correctness"
                                 + ("<br>" + sub if sub else "")),
                      boxmode="group", yaxis_title="Σ implicit reward (nats)", template="plotly_white",
                      height=400 + 18 * len(lines), margin=dict(l=60, r=20, t=60 + 20 * len(lines), b=60),
                      legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    fig.add_hline(y=0, line_width=1, line_color="#999")
    return fig


# --------------------------------------------------------------------------------------------------------------
# C2: per-token reverse KL before and after a distillation stage


def _kl_values(rows) -> np.ndarray:
    parts = [np.asarray(r["reverse_kl"], dtype=np.float64).reshape(-1) for r in _records(rows)
             if r.get("reverse_kl") is not None]
    return np.clip(np.concatenate(parts), 0.0, None) if parts else np.zeros(0)


def _bin_labels(edges: Sequence[float]) -> list[str]:
    return [f"[{a:g}, {b:g})" for a, b in zip(edges, edges[1:])] + [f"≥ {edges[-1]:g}"]


def c2_pair_figure(pair: Mapping | None, before_rows, after_rows, edges: Sequence[float] = KL_EDGES) -> go.Figure:
    """Share of the student's tokens per reverse-KL bin on its own rollouts, before and after one distillation stage
    (`pair`: one entry of the summary's `c2.pairs`); the legend gives each side's mean with its interval and the
    title the change with its interval, from the summary."""
    if not pair:
        return _empty_figure("no distillation stage with C2 measurements yet")
    fig = go.Figure()
    labels = _bin_labels(edges)
    sides = (("before", f"before: {pair.get('init')}", before_rows, "#969696"),
             ("after", f"after: {pair['stage']}", after_rows, "#6a51a3"))
    drawn = 0
    for key, name, rows, color in sides:
        kl = _kl_values(rows)
        if not len(kl):
            continue
        counts = [int(((kl >= a) & (kl < b)).sum()) for a, b in zip(edges, edges[1:])] + [int((kl >= edges[-1]).sum())]
        m = pair.get(key) or {}
        legend = f"{name}: mean {num(m.get('mean'))}{interval(m.get('ci'))} nats/token"
        fig.add_trace(go.Bar(x=labels, y=[c / len(kl) for c in counts], name=legend, marker_color=color,
                             customdata=counts,
                             hovertemplate=name + " %{x}: %{y:.1%} (%{customdata} tokens)<extra></extra>"))
        drawn += 1
    if not drawn:
        return _empty_figure(f"no scored rollouts for C2 of {pair['stage']}")
    ch = pair.get("change") or {}
    sub = (f"after − before {num(ch.get('difference'), '{:+.3f}')}{interval(ch.get('ci'), '{:+.3f}')} nats/token "
           f"({ch.get('verdict')})" if ch.get("difference") is not None else "no measurement before this stage")
    fig.update_layout(barmode="group", title=dict(text=f"C2 ({pair['stage']}): per-token reverse KL(pS‖pT) on the "
                                                       f"student's own rollouts, teacher {pair.get('teacher')}"
                                                       f"<br><sup>{sub}</sup>"),
                      xaxis_title="per-token reverse KL (nats)", yaxis_title="share of tokens", yaxis_tickformat=".0%",
                      template="plotly_white", height=400, margin=dict(l=60, r=20, t=80, b=60),
                      legend=dict(orientation="h", y=-0.3))
    return fig


# --------------------------------------------------------------------------------------------------------------
# the token quadrants


def quadrants_figure(stages: Mapping[str, Mapping] | None) -> go.Figure:
    """For every stage whose summary entry holds `quadrants` (its last snapshot, student tokens): the share of
    tokens (top) and of the total |implicit reward| (bottom) in each quadrant of "student confident (top token
    p >= the summary's `confident_prob`)" x "teacher's top token agrees", stacked per stage."""
    have = ordered_stages([s for s, e in (stages or {}).items() if (e or {}).get("quadrants")])
    if not have:
        return _empty_figure("no token quadrants in the summary yet")
    prob = stages[have[0]]["quadrants"].get("confident_prob")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("share of tokens", "share of |implicit reward|"))
    for q, label in QUADRANT_LABELS.items():
        entries = [(stages[s]["quadrants"].get("quadrants") or {}).get(q) or {} for s in have]
        hover = [f"{e.get('n_tokens', 0)} tokens, mean implicit reward {num(e.get('mean_implicit_reward'), '{:+.3f}')}"
                 for e in entries]
        for row, key in ((1, "token_share"), (2, "abs_reward_share")):
            fig.add_trace(go.Bar(x=have, y=[e.get(key) for e in entries], name=label, legendgroup=q,
                                 showlegend=row == 1, marker_color=QUADRANT_COLORS[q], customdata=hover,
                                 hovertemplate=label + ": %{y:.0%}<br>%{customdata}<extra>%{x}</extra>"),
                          row=row, col=1)
    fig.update_layout(barmode="stack", template="plotly_white", height=460,
                      title=dict(text=f"Where the dense signal sits (last snapshot of each stage; confident: top "
                                      f"token p ≥ {prob})"),
                      margin=dict(l=60, r=20, t=70, b=80), legend=dict(orientation="h", y=-0.25))
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    return fig
