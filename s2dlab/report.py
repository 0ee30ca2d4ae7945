"""The paper-style table and figure of a run (or of several seeds), rendered from its summary.

    s2dlab report runs/table2                      # prints the Markdown table
    s2dlab report runs/table2 --html table2.html   # and writes the figure as one self-contained HTML file

Everything here renders `summary.json` (`s2dlab.summary`): the accuracy of each arm with its 95% interval and
budget, and the paper's predictions with the interval of each difference. Nothing is recomputed.
"""

from __future__ import annotations

from s2dlab.summary import read_summary

# The paper's Table 2 rows in its order, then the halves, then our reference row.
ROW_ORDER = ("bridge", "bridge_raw_teacher", "bridge_no_warmup", "bridge_no_opd", "bridge_sft_teacher", "cold_grpo",
             "bridge_1h_stage3", "bridge_1h", "bridge_1h_replay", "gold_sft")
BLOCK_COLORS = {"top": "#2166ac", "halves": "#b2182b", "reference": "#777777"}


def _pct(x, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def ordered_arms(summary: dict) -> list[str]:
    arms = summary.get("arms", {})
    return [a for a in ROW_ORDER if a in arms] + [a for a in arms if a not in ROW_ORDER]


def markdown_table(summary: dict) -> str:
    """The arms as a Markdown table: accuracy with its 95% interval, greedy, and what each arm spent."""
    k = summary.get("eval", {}).get("k", "k")
    seeds = summary.get("seeds")
    where = f"mean over {len(seeds)} seeds" if seeds else f"seed {summary.get('seed')}"
    lines = [f"| arm | paper row | avg@{k} % (95% CI, {where}) | greedy % | labels | student steps | student "
             f"sequences | teacher steps | teacher-scored sequences |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in ordered_arms(summary):
        m = summary["arms"][name]
        ci = (m.get("interval") or {}).get("ci") or [None, None]
        acc = f"**{_pct(m.get('accuracy'))}** [{_pct(ci[0])}, {_pct(ci[1])}]"
        kind = "" if m.get("labels_kind") in (None, [], ["answers"]) else f" ({', '.join(m['labels_kind'])})"
        lines.append(f"| `{name}` | {m.get('row', '')} | {acc} | {_pct(m.get('greedy'))} | {m.get('labels')}{kind} | "
                     f"{m.get('student_steps')} | {m.get('student_sequences')} | {m.get('teacher_steps')} | "
                     f"{m.get('teacher_scored_sequences')} |")
    base = summary.get("base", {})
    if base.get("student") is not None:
        lines.append(f"| base student | (before any arm) | {_pct(base['student'])} | | 0 | 0 | 0 | 0 | 0 |")
    return "\n".join(lines)


def claims_table(summary: dict) -> str:
    lines = ["| prediction | difference (points, 95% CI) | verdict |", "|---|---|---|"]
    for c in summary.get("claims", []):
        lo, hi = c["ci"]
        lines.append(f"| {c['claim']} (`{c['a']}` − `{c['b']}`) | {_pct(c['difference'], True)} "
                     f"[{_pct(lo, True)}, {_pct(hi, True)}] | {c['status']} |")
    return "\n".join(lines)


def arms_figure(summary: dict):
    """Accuracy by arm with 95% intervals (a plotly Figure), coloured by block, the base student as a line."""
    import plotly.graph_objects as go

    names = ordered_arms(summary)
    arms = summary.get("arms", {})
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


def report(run_path, html: str | None = None) -> str:
    summary = read_summary(run_path)
    text = markdown_table(summary) + "\n\n" + claims_table(summary)
    if html:
        arms_figure(summary).write_html(html, include_plotlyjs=True, full_html=True)
    return text
