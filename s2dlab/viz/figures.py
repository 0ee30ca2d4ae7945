"""Plotly figures of a run, shared by the dashboard and the notebooks; each takes one kind of input.

    per_token_figure(row)             one scored rollout row: reverse KL and implicit reward per position
    stage_curves_figure(run)          a `s2dlab.runs.Run`: every metric its stages logged, stages end to end
    arms_figure(summary)              summary.json: accuracy by arm with its 95% interval, coloured by block
    branches_figure(result)           `s2dlab.branches.branch_values` output: success rate per branch, with its
                                      Wilson interval, beside the branch token's implicit reward
    estimators_figure(rows, i)        `s2dlab.estimators.estimate_rollouts` rows: each estimate beside the exact KL
    results_table(results)            results.json as a DataFrame, arms x metrics
    results_bar_figure(results)       results.json: one metric per arm
    c1_figure(rows)                   scored rollout rows: summed implicit reward against correct / incorrect
    c2_histogram_figure(c2)           label -> `s2dlab.diagnostics.c2_closeness` output: per-token reverse KL
    quadrant_figure(rows)             scored rollout rows: tokens by student entropy x reverse KL

The run's C1, C2, quadrants and arms as `summary.json` holds them are drawn by `s2dlab.viz.conditions` (what the
dashboard shows). `results_table`, `results_bar_figure`, `c1_figure`, `c2_histogram_figure` and `quadrant_figure`
draw rows or older results.json files for the notebooks; the measures they print come from `s2dlab.diagnostics`.
Rows are dicts or a DataFrame of rollout rows as `s2dlab.scoring.score_rollouts` writes them.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from s2dlab import diagnostics
from s2dlab.viz.colors import auto_vmax, color_pair, finite
from s2dlab.viz.heatmap import visible_text


def _rows(rows) -> list[dict]:
    if rows is None:
        return []
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def _seq(row: Mapping, key: str) -> list | None:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return list(v)


def _empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
    return fig


# --------------------------------------------------------------------------------------------------------------
# per-position chart


def per_token_figure(row: Mapping, *, max_tick_labels: int = 120, cmap: str = "RdBu", vmax: float | None = None,
                     height: int = 380) -> go.Figure:
    """Reverse KL (top) and implicit reward (bottom, coloured like the heatmap) at each completion position.

    The x axis is the token position; each token's own text (`tokens`) labels the ticks when there are at most
    `max_tick_labels` of them, and always appears on hover. Long rollouts (> 2,048 tokens) draw lines instead of
    bars to stay light.
    """
    tokens = [str(t) for t in (_seq(row, "tokens") or [])]
    n = len(tokens)
    # plotly reads a small HTML subset in labels; escaping makes every token literal text
    labels = [_html.escape(visible_text(t)) for t in tokens]
    x = list(range(n))

    def column(key):
        col = _seq(row, key)
        if col is None:
            return [None] * n
        if len(col) != n:
            raise ValueError(f"{key} has {len(col)} entries for {n} tokens")
        return [finite(v) for v in col]

    rkl, reward = column("reverse_kl"), column("implicit_reward")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("reverse KL(pS‖pT) per position", "implicit reward log pT − log pS"))
    hover = "pos %{x}  token %{customdata}<br>%{fullData.name} %{y:.4f}<extra></extra>"
    vmax = vmax if vmax is not None else auto_vmax(reward)
    colors = [color_pair(v, vmax, cmap)[0] for v in reward]
    if n <= 2048:
        fig.add_trace(go.Bar(x=x, y=rkl, name="reverse KL", customdata=labels, hovertemplate=hover,
                             marker_color="#6a51a3"), row=1, col=1)
        fig.add_trace(go.Bar(x=x, y=reward, name="implicit reward", customdata=labels, hovertemplate=hover,
                             marker_color=colors, marker_line_width=0), row=2, col=1)
    else:
        fig.add_trace(go.Scatter(x=x, y=rkl, name="reverse KL", customdata=labels, hovertemplate=hover,
                                 mode="lines", line=dict(color="#6a51a3", width=1)), row=1, col=1)
        fig.add_trace(go.Scatter(x=x, y=reward, name="implicit reward", customdata=labels, hovertemplate=hover,
                                 mode="lines", line=dict(color="#2166ac", width=1)), row=2, col=1)
    fig.add_hline(y=0, line_width=1, line_color="#888", row=2, col=1)
    if 0 < n <= max_tick_labels:
        fig.update_xaxes(tickmode="array", tickvals=x, ticktext=labels, tickangle=0, tickfont=dict(size=10),
                         row=2, col=1)
    fig.update_xaxes(title_text="completion token position", row=2, col=1)
    fig.update_layout(height=height, showlegend=False, bargap=0.05, margin=dict(l=50, r=20, t=40, b=40),
                      hovermode="x unified" if n <= 2048 else "closest", template="plotly_white")
    return fig


# --------------------------------------------------------------------------------------------------------------
# curves across stages

# The order and labels of the curves s2dlab knows; any other metric a stage logged follows, alphabetically, under
# its own name. Which curves are drawn depends only on what metrics.jsonl holds (`curve_metrics`).
CURVE_LABELS = {
    "probe/accuracy": "probe accuracy, student samples",
    "probe/teacher_accuracy": "probe accuracy, teacher samples",
    "probe/auroc": "C1: AUROC of summed implicit reward, correct vs incorrect",
    "probe/mean_reverse_kl": "C2: mean reverse KL(pS‖pT) per token",
    "probe/mean_implicit_reward": "mean implicit reward per token",
    "reward": "sparse reward (batch mean)",
    "frac_reward_zero_std": "share of groups with no reward variance",
    "kl": "KL to the reference policy",
    "loss": "training loss",
    "mean_token_accuracy": "next-token accuracy",
    "entropy": "policy entropy",
    "completions/mean_length": "completion length (tokens)",
}
# Bookkeeping, throughput and spread keys of the trainers' logs: not drawn unless asked for by name.
_NOT_CURVES = {"step", "global_step", "epoch", "learning_rate", "num_tokens", "total_flos", "num_input_tokens_seen"}


def _default_curve(key: str) -> bool:
    if key in _NOT_CURVES or key.endswith(("_runtime", "_per_second", "std", "_min", "_max")):
        return False
    return "/min_" not in key and "/max_" not in key


def curve_metrics(records: Mapping[str, Sequence[Mapping]]) -> list[str]:
    """The metrics worth a curve among those logged (`stage -> metrics records`): every key with a number in
    some record, `CURVE_LABELS` order first, then the rest alphabetically; bookkeeping (step, epoch, learning
    rate, throughput) and spread statistics (std, min, max) left out."""
    present = {k for recs in records.values() for rec in recs for k, v in rec.items()
               if not isinstance(v, bool) and finite(v) is not None}
    known = [k for k in CURVE_LABELS if k in present]
    return known + sorted(k for k in present if k not in CURVE_LABELS and _default_curve(k))


def curve_names(names) -> list[str]:
    """The curve-worthy metric names among `names` (e.g. a summary's `metric_names`): `CURVE_LABELS` order first,
    then the rest alphabetically, bookkeeping and spread statistics left out (as `curve_metrics`)."""
    names = set(names)
    return [k for k in CURVE_LABELS if k in names] + sorted(k for k in names if k not in CURVE_LABELS
                                                             and _default_curve(k))


def _curve_title(key: str) -> str:
    return f"{CURVE_LABELS[key]} · {key}" if key in CURVE_LABELS else key


def _step_of(rec: Mapping, i: int) -> float:
    for key in ("step", "global_step"):
        v = finite(rec.get(key))
        if v is not None:
            return v
    return float(i)


def stage_curves_figure(run, metrics: Sequence[str] | None = None, stages: Sequence[str] | None = None,
                        height_per_metric: int = 180) -> go.Figure:
    """One panel per metric of a `Run`; stages laid end to end on a shared step axis, in workflow order.

    `metrics` defaults to `curve_metrics` of what the stages logged; `stages` to all of the run's stages.
    """
    order = list(stages) if stages is not None else run.stages()
    records = {s: run.metrics(s) for s in order}
    logged = {k for recs in records.values() for rec in recs for k in rec}
    names = curve_metrics(records) if metrics is None else [m for m in metrics if m in logged]
    if not names:
        return _empty_figure("no metrics logged yet")

    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.3 / len(names)),
                        subplot_titles=[_curve_title(m) for m in names])
    palette = pcolors.qualitative.D3
    offset = 0.0
    for si, stage in enumerate(s for s in order if records[s]):
        recs = records[stage]
        steps = [_step_of(r, i) for i, r in enumerate(recs)]
        base = offset - min(steps)
        color = palette[si % len(palette)]
        shown = False
        for mi, name in enumerate(names, start=1):
            pts = [(base + s, finite(r.get(name))) for s, r in zip(steps, recs)]
            # in step order (a trainer's closing summary can log an earlier step after the last one)
            pts = sorted(((x, y) for x, y in pts if y is not None), key=lambda p: p[0])
            if not pts:
                continue
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers",
                                     marker=dict(size=4), line=dict(color=color, width=1.5), name=stage,
                                     legendgroup=stage, showlegend=not shown,
                                     customdata=[[stage, p[0] - base] for p in pts],
                                     hovertemplate="%{customdata[0]} step %{customdata[1]}<br>" + name
                                                   + " %{y:.4f}<extra></extra>"),
                          row=mi, col=1)
            shown = True
        if si > 0:
            fig.add_vline(x=offset, line_width=1, line_dash="dot", line_color="#999")
        fig.add_annotation(x=offset, y=1.0, yshift=22, xref="x", yref="paper", text=stage, showarrow=False,
                           xanchor="left", yanchor="bottom", textangle=0, font=dict(size=10, color=color))
        offset = base + max(steps) + max(1.0, 0.02 * (max(steps) - min(steps) + 1))
    fig.update_layout(height=max(260, height_per_metric * len(names) + 60), template="plotly_white",
                      margin=dict(l=50, r=20, t=80, b=40), legend=dict(orientation="h", y=-0.08))
    fig.update_xaxes(title_text="steps (stages end to end)", row=len(names), col=1)
    return fig


# --------------------------------------------------------------------------------------------------------------
# summary.json: accuracy by arm

# The paper's Table 2 rows in its order, then the halves, then our reference row.
ROW_ORDER = ("bridge", "bridge_raw_teacher", "bridge_no_warmup", "bridge_no_opd", "bridge_sft_teacher", "cold_grpo",
             "bridge_1h_stage3", "bridge_1h", "bridge_1h_replay", "gold_sft")
BLOCK_COLORS = {"top": "#2166ac", "halves": "#b2182b", "reference": "#777777"}


def ordered_arms(summary: dict) -> list[str]:
    """The summary's arms in the paper's row order (`ROW_ORDER`), any others after."""
    arms = summary.get("arms", {})
    return [a for a in ROW_ORDER if a in arms] + [a for a in arms if a not in ROW_ORDER]


def arms_figure(summary: dict) -> go.Figure:
    """Accuracy by arm with 95% intervals (a plotly Figure), coloured by block, the base student as a line.

    Reads `summary.json` (one run, or the aggregate of a folder of seeds: then the intervals cover problems and
    seeds); draws only what the summary holds."""
    arms = summary.get("arms") or {}
    names = [a for a in ordered_arms(summary) if arms[a].get("accuracy") is not None]
    if not names:
        return _empty_figure("no evaluated arm yet")
    k = summary.get("eval", {}).get("k", "k")
    fig = go.Figure()
    for block, color in BLOCK_COLORS.items():
        sel = [a for a in names if arms[a].get("block") == block]
        if not sel:
            continue
        acc = [100 * arms[a]["accuracy"] for a in sel]
        ci = [(arms[a].get("interval") or {}).get("ci") or [None, None] for a in sel]
        up = [100 * c[1] - y if c[1] is not None else 0 for c, y in zip(ci, acc)]
        down = [y - 100 * c[0] if c[0] is not None else 0 for c, y in zip(ci, acc)]
        label = {"top": "whole labeled pool", "halves": "halves 1H / 2H", "reference": "reference"}[block]
        fig.add_bar(x=sel, y=acc, name=label, marker_color=color,
                    error_y=dict(type="data", array=up, arrayminus=down, thickness=1.5, width=4),
                    hovertemplate="%{x}: %{y:.1f}%<extra></extra>")
    base = summary.get("base", {}).get("student")
    if base is not None:
        fig.add_hline(y=100 * base, line_dash="dot", line_color="#444",
                      annotation_text=f"base student {100 * base:.1f}%", annotation_position="top left")
    seeds = summary.get("seeds")
    fig.update_layout(title=f"Student avg@{k} by arm, 95% intervals"
                            f"{f' ({len(seeds)} seeds, problems and seeds)' if seeds else ' (over problems)'}",
                      yaxis_title=f"avg@{k} (%)", barmode="group", template="plotly_white", height=460,
                      legend=dict(orientation="h", y=-0.25))
    return fig


# --------------------------------------------------------------------------------------------------------------
# results.json


ARM_DISPLAY_ORDER = ["workflow", "direct_grpo", "raw_teacher", "no_warmup", "no_opd", "gold_sft"]


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        elif not isinstance(v, (list, tuple)):  # per-seed lists and figure data stay out of the table
            out[key] = v
    return out


def results_table(results: Mapping | None) -> pd.DataFrame:
    """Arms x metrics from results.json's `"arms"` (nested dicts flattened to `a/b` columns), workflow first."""
    arms = (results or {}).get("arms") or {}
    if not isinstance(arms, Mapping) or not arms:
        return pd.DataFrame(index=pd.Index([], name="arm"))
    order = [a for a in ARM_DISPLAY_ORDER if a in arms] + sorted(a for a in arms if a not in ARM_DISPLAY_ORDER)
    rows = {arm: _flatten(arms[arm]) if isinstance(arms[arm], Mapping) else {"value": arms[arm]} for arm in order}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "arm"
    return df


def _is_spread(col: str) -> bool:
    return col.endswith(("_std", "/std", "_sd", "_sem", "/sem", "_stderr", "_n"))


def _pick_metric(df: pd.DataFrame, metric: str | None) -> str | None:
    if metric is not None:
        return metric if metric in df.columns else None
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not _is_spread(c)]
    if "accuracy" in numeric:
        return "accuracy"
    return next((c for c in numeric if "accuracy" in c or "avg@" in c), numeric[0] if numeric else None)


def results_bar_figure(results: Mapping | None, metric: str | None = None) -> go.Figure:
    """Bars of one metric per arm (default `accuracy`), with error bars from a `<metric>_sd` column if present."""
    df = results_table(results)
    col = _pick_metric(df, metric) if not df.empty else None
    if col is None:
        return _empty_figure("no results yet")
    # spread as written by s2dlab.pipeline.aggregate (`<metric>_sd` over seeds) or common alternatives
    err = next((df[c] for c in (f"{col}_sd", f"{col}_std", f"{col}/std", f"{col}_sem", f"{col}/sem") if c in df),
               None)
    highlight = {"workflow": "#2166ac", "direct_grpo": "#b2182b"}
    fig = go.Figure(go.Bar(x=list(df.index), y=df[col], marker_color=[highlight.get(a, "#969696") for a in df.index],
                           error_y=None if err is None else dict(type="data", array=list(err)),
                           text=[None if finite(v) is None else f"{v:.3g}" for v in df[col]], textposition="outside",
                           hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    values = [v for v in map(finite, df[col]) if v is not None]
    fig.update_layout(title=f"{col} by arm", yaxis_title=col, template="plotly_white", height=360,
                      margin=dict(l=50, r=20, t=50, b=40))
    if values and min(values) >= 0:  # room above the tallest bar for its label
        fig.update_yaxes(range=[0, max(max(values), 1e-9) * 1.2])
    return fig


# --------------------------------------------------------------------------------------------------------------
# C1 / C2 and the token quadrants


def c1_figure(rows, x: str = "sum_implicit_reward", y: str = "correct",
              title: str = "C1: does the dense reward rank correct rollouts first?") -> go.Figure:
    """Each graded rollout at (its summed implicit reward, correct or not), jittered vertically, split at 0.

    A reward-shaped teacher puts correct rollouts to the right of incorrect ones; the title gives the AUROC
    (`s2dlab.diagnostics.auroc`) and the share of rollouts in the two agreeing quadrants. Rows without a grade
    or without `x` are left out.
    """
    pts = [(finite(r.get(x)), float(r[y])) for r in _rows(rows) if finite(r.get(y)) is not None]
    pts = [(a, b) for a, b in pts if a is not None]
    if not pts:
        return _empty_figure("no graded rollouts for C1")
    xs, ys = [a for a, _ in pts], [b for _, b in pts]
    fig = go.Figure()
    for label, flag, color in (("correct", 1.0, "#2166ac"), ("incorrect", 0.0, "#b2182b")):
        idx = [i for i, v in enumerate(ys) if (v > 0.5) == (flag > 0.5)]
        # deterministic jitter, so the same data always draws the same picture
        jit = [flag + ((i * 0.6180339887) % 1.0 - 0.5) * 0.5 for i in idx]
        fig.add_trace(go.Scatter(x=[xs[i] for i in idx], y=jit, mode="markers", name=label,
                                 marker=dict(size=7, opacity=0.7, color=color),
                                 hovertemplate=label + ": summed implicit reward %{x:.3f}<extra></extra>"))
    fig.add_vline(x=0, line_width=1, line_color="#666")
    fig.add_hline(y=0.5, line_width=1, line_color="#666")
    agree = sum(1 for xv, yv in zip(xs, ys) if (xv > 0) == (yv > 0.5))
    sub = f"agreeing quadrants: {100 * agree / len(xs):.0f}% of {len(xs)}"
    au = diagnostics.auroc(xs, [v > 0.5 for v in ys])
    if au is not None:
        sub = f"AUROC {au:.2f}; " + sub
    fig.update_layout(title=f"{title}<br><sup>{sub}</sup>", xaxis_title=x.replace("_", " "), template="plotly_white",
                      height=360, margin=dict(l=60, r=20, t=70, b=40))
    fig.update_yaxes(tickvals=[0, 1], ticktext=["incorrect", "correct"], range=[-0.5, 1.5])
    return fig


def _bin_labels(edges: Sequence[float]) -> list[str]:
    # the last bin is open-ended (c2_closeness stretches its edge to the largest value), so "≥ a" keeps the
    # categories of different series identical
    return [f"[{a:g}, {b:g})" if i < len(edges) - 2 else f"≥ {a:g}" for i, (a, b) in enumerate(zip(edges, edges[1:]))]


# the order C2 snapshots are drawn in (results.json sorts its keys); others follow in the order given
_C2_ORDER = ["before_warmup", "after_warmup", "opd_start", "opd_end", "raw_teacher_before_warmup"]


def c2_histogram_figure(c2: Mapping[str, Mapping] | None, *,
                        title: str = "C2: is the student inside the teacher's support?") -> go.Figure:
    """Per-token reverse KL(pS‖pT) on the student's own rollouts, as share of tokens per bin, one bar group per
    label (e.g. before / after the forward-KL warmup).

    `c2`: label -> `s2dlab.diagnostics.c2_closeness(rows)` output (entries without a `histogram` are skipped,
    so results.json's `c2` section can be passed whole). Mass in the left bins means the student rarely samples
    where the teacher disagrees.
    """
    series = {str(k): v["histogram"] for k, v in (c2 or {}).items()
              if isinstance(v, Mapping) and isinstance(v.get("histogram"), Mapping)}
    if not series:
        return _empty_figure("no C2 data")
    order = [k for k in _C2_ORDER if k in series] + [k for k in series if k not in _C2_ORDER]
    fig = go.Figure()
    palette = pcolors.qualitative.D3
    for i, key in enumerate(order):
        h, name = series[key], key.replace("_", " ")
        total = max(1, sum(h["counts"]))
        fig.add_trace(go.Bar(x=_bin_labels(h["edges"]), y=[c / total for c in h["counts"]], name=name,
                             marker_color=palette[i % len(palette)], customdata=list(h["counts"]),
                             hovertemplate=name + " %{x}: %{y:.1%} (%{customdata} tokens)<extra></extra>"))
    fig.update_layout(barmode="group", title=title, xaxis_title="per-token reverse KL (nats)",
                      yaxis_title="share of tokens", yaxis_tickformat=".0%", template="plotly_white", height=340,
                      margin=dict(l=60, r=20, t=50, b=60))
    return fig


_QUADRANT_TEXT = {
    "low_entropy_low_divergence": "confident, agrees",
    "low_entropy_high_divergence": "confident, teacher disagrees",
    "high_entropy_low_divergence": "unsure, agrees",
    "high_entropy_high_divergence": "unsure, teacher disagrees",
}
_QUADRANT_CORNER = {"low_entropy_low_divergence": (0.02, 0.02), "low_entropy_high_divergence": (0.02, 0.98),
                    "high_entropy_low_divergence": (0.98, 0.02), "high_entropy_high_divergence": (0.98, 0.98)}


def quadrant_figure(rows, *, max_points: int = 5000, cmap: str = "RdBu",
                    title: str = "Where the dense signal sits: student entropy x divergence") -> go.Figure:
    """Tokens by student entropy (x) and per-token reverse KL (y), coloured by implicit reward, split at the
    thresholds of `s2dlab.diagnostics.token_quadrants` (medians); each quadrant is annotated with its share of
    tokens and of |implicit reward|.

    Rows without scores are skipped. At most `max_points` tokens are plotted (evenly thinned); the shares use all.
    """
    hs, kl, rw = [], [], []
    for r in _rows(rows):
        cols = [_seq(r, k) for k in ("student_entropy", "reverse_kl", "implicit_reward")]
        if any(c is None for c in cols):
            continue
        for a, b, c in zip(*cols):
            if None not in (finite(a), finite(b), finite(c)):
                hs.append(float(a))
                kl.append(float(b))
                rw.append(float(c))
    if not hs:
        return _empty_figure("no scored tokens")
    q = diagnostics.token_quadrants([{"student_entropy": hs, "reverse_kl": kl, "implicit_reward": rw}])
    stride = max(1, math.ceil(len(hs) / max_points))
    idx = range(0, len(hs), stride)
    vmax = auto_vmax(rw)
    fig = go.Figure(go.Scattergl(
        x=[hs[i] for i in idx], y=[kl[i] for i in idx], mode="markers",
        marker=dict(size=5, opacity=0.75, color=[color_pair(rw[i], vmax, cmap)[0] for i in idx],
                    line=dict(width=0.3, color="#555")),
        customdata=[rw[i] for i in idx], name="tokens",
        hovertemplate="entropy %{x:.3f}<br>reverse KL %{y:.3f}<br>implicit reward %{customdata:+.3f}<extra></extra>"))
    fig.add_vline(x=q["entropy_threshold"], line_width=1, line_dash="dot", line_color="#666")
    fig.add_hline(y=q["divergence_threshold"], line_width=1, line_dash="dot", line_color="#666")
    for name, (ax, ay) in _QUADRANT_CORNER.items():
        d = q["quadrants"][name]
        share = d["abs_reward_share"]
        fig.add_annotation(x=ax, y=ay, xref="paper", yref="paper", showarrow=False,
                           xanchor="left" if ax < 0.5 else "right", yanchor="bottom" if ay < 0.5 else "top",
                           text=(f"{_QUADRANT_TEXT[name]}<br>{100 * (d['token_share'] or 0):.0f}% of tokens, "
                                 f"{'n/a' if share is None else f'{100 * share:.0f}%'} of |reward|"),
                           font=dict(size=10, color="#333"), bgcolor="rgba(255,255,255,0.7)")
    fig.update_layout(title=title, xaxis_title="student entropy (nats)", yaxis_title="reverse KL(pS‖pT) (nats)",
                      template="plotly_white", height=400, margin=dict(l=60, r=20, t=50, b=40), showlegend=False)
    return fig


# --------------------------------------------------------------------------------------------------------------
# counterfactual branches and the KL estimators


def branches_figure(result: Mapping | None, cmap: str = "RdBu") -> go.Figure:
    """`s2dlab.branches.branch_values` output: each branch's success rate with its 95% Wilson interval (left) beside
    the implicit reward of the branch token at that position (right; blank where it was not computed)."""
    branches = list((result or {}).get("branches") or [])
    if not branches:
        return _empty_figure("no branches sampled yet")
    labels = []
    for b in branches:
        who = "student's token" if b.get("is_student_token") else (
            f"teacher #{b['teacher_rank'] + 1}" if b.get("teacher_rank") is not None else "alternative")
        labels.append(f"{_html.escape(visible_text(str(b.get('token', ''))))}<br>{who}")
    rate = [finite(b.get("success_rate")) for b in branches]
    up = [None if r is None else finite(b.get("wilson_high")) - r for b, r in zip(branches, rate)]
    down = [None if r is None else r - finite(b.get("wilson_low")) for b, r in zip(branches, rate)]
    reward = [finite(b.get("implicit_reward")) for b in branches]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("success rate of the continuations (95% Wilson)",
                                        "implicit reward log pT(c) − log pS(c)"))
    fig.add_trace(go.Bar(x=labels, y=rate, marker_color=["#2166ac" if b.get("is_student_token") else "#969696"
                                                         for b in branches],
                         error_y=dict(type="data", array=up, arrayminus=down, thickness=1.5, width=5),
                         customdata=[[b.get("successes"), b.get("n")] for b in branches],
                         hovertemplate="%{y:.0%} (%{customdata[0]} of %{customdata[1]})<extra></extra>"),
                  row=1, col=1)
    vmax = auto_vmax(reward)
    fig.add_trace(go.Bar(x=labels, y=reward, marker_color=[color_pair(v, vmax, cmap)[0] for v in reward],
                         hovertemplate="%{y:+.3f}<extra></extra>"), row=1, col=2)
    fig.add_hline(y=0, line_width=1, line_color="#888", row=1, col=2)
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%", row=1, col=1)
    n = (result or {}).get("n_samples")
    fig.update_layout(title=dict(text=f"Branches at position {(result or {}).get('position')}: {n} continuations "
                                      f"each, up to {(result or {}).get('max_new_tokens')} new tokens"),
                      showlegend=False, template="plotly_white", height=360, margin=dict(l=50, r=20, t=70, b=60))
    return fig


ESTIMATOR_TRACES = (("reverse_kl", "exact reverse KL", "#000000"), ("k1", "k1", "#1f77b4"),
                    ("k2", "k2", "#ff7f0e"), ("k3", "k3", "#2ca02c"), ("top1_tail", "top-1 + tail", "#9467bd"),
                    ("top8_tail", "top-8 + tail", "#8c564b"), ("top64_tail", "top-64 + tail", "#e377c2"),
                    ("top8_raw", "top-8 raw (no tail)", "#7f7f7f"))


def estimators_figure(row: Mapping | None, tokens: Sequence[str] | None = None) -> go.Figure:
    """One rollout of `s2dlab.estimators.estimate_rollouts`: each estimate of the reverse KL at every position beside
    the exact value (top), and the cosine between the sampled-token and the exact gradient (bottom)."""
    if not row or not row.get("reverse_kl"):
        return _empty_figure("no estimates for this rollout")
    n = len(row["reverse_kl"])
    labels = [_html.escape(visible_text(str(t))) for t in (tokens or [""] * n)]
    x = list(range(n))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, row_heights=[0.68, 0.32],
                        subplot_titles=("estimates of KL(pS‖pT) per position", "gradient cosine (sampled vs exact)"))
    for key, name, color in ESTIMATOR_TRACES:
        if key not in row:
            continue
        fig.add_trace(go.Scatter(x=x, y=[finite(v) for v in row[key]], name=name, customdata=labels,
                                 mode="lines+markers" if key == "reverse_kl" else "markers",
                                 line=dict(color=color, width=2), marker=dict(size=5, color=color),
                                 hovertemplate="pos %{x} %{customdata}<br>" + name + " %{y:.4f}<extra></extra>"),
                      row=1, col=1)
    if "grad_cosine" in row:
        fig.add_trace(go.Bar(x=x, y=[finite(v) for v in row["grad_cosine"]], name="gradient cosine",
                             marker_color="#6a51a3", customdata=labels, showlegend=False,
                             hovertemplate="pos %{x} %{customdata}<br>cosine %{y:.3f}<extra></extra>"), row=2, col=1)
        fig.update_yaxes(range=[-1.05, 1.05], row=2, col=1)
    if 0 < n <= 120:
        fig.update_xaxes(tickmode="array", tickvals=x, ticktext=labels, tickangle=0, tickfont=dict(size=10),
                         row=2, col=1)
    fig.update_layout(template="plotly_white", height=480, margin=dict(l=50, r=20, t=40, b=90),
                      legend=dict(orientation="h", y=-0.12))
    return fig
