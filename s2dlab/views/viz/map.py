"""The C1 x C2 map (`s2dlab map`, `s2dlab.workflow.cmap`) as one plotly figure, drawn from its map.json and never recomputed:
the dashboard and notebook 04 both call `map_figure`.

    from s2dlab.views.viz.map import map_figure
    map_figure("runs/map/map.json").show()        # or a folder holding map.json, or the parsed dict

Three panels: the gain (bridge minus cold GRPO, points) of every teacher x student cell as a heatmap (red: the
bridge loses, blue: it wins; each cell's 95% interval in its text, C1 and C2 with theirs on hover), then the gain
against C1 (the AUROC difference of the teacher's summed implicit reward against the raw teacher's) and against C2
(the per-token reverse KL from the student before the bridge, log axis), each point with both intervals as error
bars, one colour per student.
"""

from __future__ import annotations

import html as _html
import json
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

STUDENT_COLORS = {"close": "#1f77b4", "middle": "#2ca02c", "far": "#d62728"}
OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def _load(map_json) -> Mapping:
    if isinstance(map_json, Mapping):
        return map_json
    path = Path(map_json)
    if path.is_dir():
        path = path / "map.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _iv(v: Mapping | None, scale: float = 1.0, fmt: str = "{:+.3f}") -> str:
    if not v or v.get("mean") is None:
        return "-"
    ci = v.get("ci") or [None, None]
    text = fmt.format(scale * v["mean"])
    if ci[0] is not None:
        text += f" [{fmt.format(scale * ci[0])}, {fmt.format(scale * ci[1])}]"
    return text


def _err(v: Mapping | None, scale: float = 1.0) -> tuple[float | None, float | None, float | None]:
    """(value, +error, -error) of an interval for plotly's asymmetric error bars."""
    if not v or v.get("mean") is None:
        return None, None, None
    m = scale * v["mean"]
    ci = v.get("ci") or [None, None]
    if ci[0] is None:
        return m, 0.0, 0.0
    return m, scale * ci[1] - m, m - scale * ci[0]


def _hover(c: Mapping) -> str:
    acc = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = [f"<b>{_html.escape(str(c['teacher']))} x {_html.escape(str(c['student']))}</b>",
             f"gain (bridge - cold GRPO): {_iv(c.get('gain'), 100, '{:+.1f}')} points",
             f"C1 (AUROC diff vs raw teacher): {_iv(c.get('c1'))}",
             f"C2 (reverse KL before the bridge): {_iv(c.get('c2'), fmt='{:.3f}')} nats/token",
             f"bridge {_iv(c.get('bridge'), 100, '{:.1f}')}, cold GRPO {_iv(c.get('cold_grpo'), 100, '{:.1f}')}",
             f"teacher {acc(c.get('teacher_accuracy'))}, base student {acc(c.get('base_student_accuracy'))}, "
             f"after the warmup {acc(c.get('warmup_accuracy'))}",
             f"seeds: {len(c.get('seeds') or [])}"]
    return "<br>".join(lines)


def map_figure(map_json, height: int = 520) -> go.Figure:
    """The map's three panels (module docstring) from a map.json dict, file or folder."""
    m = _load(map_json)
    cells = [c for c in m.get("cells") or [] if c.get("gain", {}).get("mean") is not None]
    if not cells:
        fig = go.Figure()
        fig.add_annotation(text="no finished cell in this map yet", showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper")
        fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
        return fig
    grid = m.get("grid") or {}
    teachers = [t for t in grid.get("teachers") or dict.fromkeys(c["teacher"] for c in cells)
                if any(c["teacher"] == t for c in cells)]
    students = [s for s in grid.get("students") or dict.fromkeys(c["student"] for c in cells)
                if any(c["student"] == s for c in cells)]
    by = {(c["teacher"], c["student"]): c for c in cells}
    n_seeds = len(m.get("seeds") or [])
    fig = make_subplots(rows=1, cols=3, column_widths=[0.3, 0.35, 0.35], horizontal_spacing=0.08,
                        subplot_titles=["gain of the bridge over cold GRPO (points)",
                                        "gain against C1 (is the teacher reward-shaped?)",
                                        "gain against C2 (how far does the student start?)"])
    z = [[100 * by[(t, s)]["gain"]["mean"] if (t, s) in by else None for s in students] for t in teachers]
    text = [[_iv(by[(t, s)]["gain"], 100, "{:+.1f}").replace(" [", "<br>[") if (t, s) in by else "" for s in students]
            for t in teachers]
    hover = [[_hover(by[(t, s)]) if (t, s) in by else "" for s in students] for t in teachers]
    zmax = max(abs(v) for row in z for v in row if v is not None) or 1.0
    fig.add_trace(go.Heatmap(z=z, x=students, y=teachers, text=text, texttemplate="%{text}", hovertext=hover,
                             hoverinfo="text", colorscale="RdBu", zmid=0, zmin=-zmax, zmax=zmax,
                             showscale=False), row=1, col=1)  # each cell prints its value and interval
    fig.update_yaxes(autorange="reversed", title_text="teacher", row=1, col=1)
    fig.update_xaxes(title_text="student", row=1, col=1)
    extra = iter(OTHER_COLORS * 4)
    for s in students:
        color = STUDENT_COLORS.get(s) or next(extra)
        pts = [by[(t, s)] for t in teachers if (t, s) in by]
        gains = [_err(c["gain"], 100) for c in pts]
        for col, key in ((2, "c1"), (3, "c2")):
            xs = [_err(c.get(key)) for c in pts]
            keep = [i for i, x in enumerate(xs) if x[0] is not None]
            fig.add_trace(go.Scatter(
                x=[xs[i][0] for i in keep], y=[gains[i][0] for i in keep], mode="markers+text",
                text=[pts[i]["teacher"] for i in keep], textposition="top center", textfont=dict(size=10),
                marker=dict(color=color, size=9), name=f"student: {s}", legendgroup=s, showlegend=col == 2,
                error_x=dict(type="data", symmetric=False, array=[xs[i][1] for i in keep],
                             arrayminus=[xs[i][2] for i in keep], thickness=1, width=2),
                error_y=dict(type="data", symmetric=False, array=[gains[i][1] for i in keep],
                             arrayminus=[gains[i][2] for i in keep], thickness=1, width=2),
                hovertext=[_hover(pts[i]) for i in keep], hoverinfo="text"), row=1, col=col)
    for col in (2, 3):
        fig.add_hline(y=0, line=dict(color="#888", width=1, dash="dot"), row=1, col=col)
        fig.update_yaxes(title_text="gain (points, 95% CI)", row=1, col=col)
    fig.update_xaxes(title_text="C1: AUROC of the summed implicit reward, teacher - raw teacher", row=1, col=2)
    fig.update_xaxes(title_text="C2: reverse KL(student || teacher), nats/token", type="log", row=1, col=3)
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}" if n_seeds else ""
    fig.update_layout(height=height, width=1500, template="plotly_white",
                      title=f"When does the bridge beat cold GRPO? The C1 x C2 map ({seeds}; 95% intervals"
                            f"{'' if m.get('complete', True) else '; incomplete'})",
                      legend=dict(orientation="h", y=-0.18), margin=dict(t=80, b=90))
    return fig
