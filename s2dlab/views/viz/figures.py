"""Plotly figures of a run, shared by the dashboard and the notebooks; each takes one kind of input.

    per_token_figure(row)             one scored rollout row: reverse KL and implicit reward per position
    stage_curves_figure(run)          a `s2dlab.core.runs.Run`: every metric its stages logged, stages end to end
    arms_figure(summary)              summary.json: accuracy by arm with its 95% interval, coloured by block
    branches_figure(result)           `s2dlab.instruments.branches.branch_values` output: success rate per branch, with its
                                      Wilson interval, beside the branch token's implicit reward
    estimators_figure(rows, i)        `s2dlab.instruments.estimators.estimate_rollouts` rows: each estimate beside the exact KL

The run's C1, C2, quadrants and arms as `summary.json` holds them are drawn by `s2dlab.views.viz.conditions` (what the
dashboard and the notebooks show). Rows are dicts or a DataFrame of rollout rows as
`s2dlab.core.scoring.score_rollouts` writes them.
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Mapping, Sequence

import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from s2dlab.views.viz.colors import auto_vmax, color_pair, finite
from s2dlab.views.viz.heatmap import visible_text
from s2dlab.workflow.arms import ordered


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
BLOCK_COLORS = {"top": "#2166ac", "halves": "#b2182b", "reference": "#777777"}


def ordered_arms(summary: dict) -> list[str]:
    """The summary's arms in the paper's row order (`s2dlab.workflow.arms.ARM_ORDER`), any others after."""
    return ordered(summary.get("arms", {}))


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
    xs, ys = [], []  # a folder of seeds: each seed's accuracy as a dot on its bar
    for a in names:
        per_seed = (arms[a].get("interval") or {}).get("per_seed") or []
        if len(per_seed) > 1:
            xs += [a] * len(per_seed)
            ys += [100 * v for v in per_seed]
    if xs:
        fig.add_scatter(x=xs, y=ys, mode="markers", name="each seed", marker=dict(color="#111", size=5, opacity=0.7),
                        hovertemplate="%{x}, one seed: %{y:.1f}%<extra></extra>")
    base = summary.get("base", {}).get("student")
    if base is not None:
        # a line trace, not an annotated hline: its label sits in the legend instead of over a bar
        fig.add_scatter(x=names, y=[100 * base] * len(names), mode="lines", name=f"base student {100 * base:.1f}%",
                        line=dict(color="#444", dash="dot"), hovertemplate="base student: %{y:.1f}%<extra></extra>")
    seeds = summary.get("seeds")
    fig.update_layout(title=f"Student avg@{k} by arm, 95% intervals"
                            f"{f' ({len(seeds)} seeds, problems and seeds)' if seeds else ' (over problems)'}",
                      yaxis_title=f"avg@{k} (%)", barmode="group", template="plotly_white", height=460,
                      legend=dict(orientation="h", y=-0.25))
    return fig


# --------------------------------------------------------------------------------------------------------------
# counterfactual branches and the KL estimators


def branches_figure(result: Mapping | None, cmap: str = "RdBu") -> go.Figure:
    """`s2dlab.instruments.branches.branch_values` output: each branch's success rate with its 95% Wilson interval (left) beside
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
    """One rollout of `s2dlab.instruments.estimators.estimate_rollouts`: each estimate of the reverse KL at every position beside
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
