"""Exports: one self-contained HTML file per view (inline CSS, no script, nothing fetched), written to a temporary
folder that lives as long as the app.

The token view's export carries the problem, both rollouts' heatmaps and the per-position chart; the chart is drawn
here as inline SVG (the dashboard's chart is plotly, which needs a script), coloured by the same scales as the
heatmaps (`s2dlab.views.viz.colors`: the implicit reward diverging around 0, the reverse KL sequential from 0).
"""

from __future__ import annotations

import atexit
import html
import os
import shutil
import tempfile
import threading
from pathlib import Path

from s2dlab.views import viz
from s2dlab.views.dashboard.rows import pick
from s2dlab.views.dashboard.store import AppError, Store
from s2dlab.views.viz.colors import auto_vmax, color_pair, finite, scale_for


class ExportFolder(os.PathLike):
    """The app's export folder: made on first use (`s2dlab-export-*` in the system's temporary folder) and removed
    when the app stops (`remove`, called by the app's close and at exit), so no export outlives the app."""

    def __init__(self):
        self._path: str | None = None
        self._lock = threading.Lock()
        atexit.register(self.remove)

    def __fspath__(self) -> str:
        with self._lock:
            if self._path is None or not os.path.isdir(self._path):
                self._path = tempfile.mkdtemp(prefix="s2dlab-export-")
            return self._path

    @property
    def exists(self) -> bool:
        return self._path is not None and os.path.isdir(self._path)

    def remove(self) -> None:
        with self._lock:
            if self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)
                self._path = None


def safe_name(*parts) -> str:
    """A file name from `parts`: letters, digits and `._-` only, at most 120 characters."""
    name = "-".join(str(p) for p in parts if p not in (None, ""))
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "view"


def export_file(folder: str | os.PathLike, title: str, parts: list[str], *name_parts) -> str:
    """Write `viz.standalone_html(title, parts)` to `folder/<name>.html` (atomically) and return its path."""
    from s2dlab.core.runs import atomic_write_bytes

    path = Path(folder) / f"{safe_name(*name_parts)}.html"
    atomic_write_bytes(path, viz.standalone_html(title, parts).encode("utf-8"))
    return str(path)


# --------------------------------------------------------------------------------------------------------------
# the token view's chart as SVG

_CHART_CSS = ("<style>.s2d-chart{font-family:system-ui,sans-serif;font-size:11px;color:#333}"
              ".s2d-chart text{fill:#333}</style>")


def _panel(values: list[float | None], tokens: list[str], quantity: str, title: str, y0: int, height: int,
           width: float, left: int) -> list[str]:
    """One bar per position of `values`, coloured on `quantity`'s scale; a diverging one is drawn about a zero
    line in the middle, a sequential one up from the bottom. Each bar's tooltip (`<title>`) names its token."""
    scale = scale_for(quantity)
    vals = [finite(v) for v in values]
    vmax = auto_vmax(vals)
    n = max(1, len(vals))
    step = width / n
    zero = y0 + height / 2 if scale.diverging else y0 + height
    half = height / 2 if scale.diverging else height
    out = [f'<text x="{left}" y="{y0 - 6}" font-weight="600">{html.escape(title)}</text>',
           f'<line x1="{left}" x2="{left + width:.1f}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#888"/>',
           f'<text x="{left - 6}" y="{y0 + 4}" text-anchor="end">{"+" if scale.diverging else ""}{vmax:.3g}</text>',
           f'<text x="{left - 6}" y="{zero + 4:.1f}" text-anchor="end">0</text>']
    if scale.diverging:
        out.append(f'<text x="{left - 6}" y="{y0 + height + 4}" text-anchor="end">−{vmax:.3g}</text>')
    for i, v in enumerate(vals):
        if v is None:
            continue
        shown = max(-1.0, min(1.0, v / vmax)) if scale.diverging else max(0.0, min(1.0, v / vmax))
        h = abs(shown) * half
        y = zero - h if shown >= 0 else zero
        tip = f"#{i} '{viz.visible_text(tokens[i])}'  {title.split(' (')[0]} {v:+.4f}"
        out.append(f'<rect x="{left + i * step:.1f}" y="{y:.1f}" width="{max(step * 0.85, 0.5):.1f}" '
                   f'height="{max(h, 0.5):.1f}" fill="{color_pair(v, vmax, scale)[0]}" stroke="#999" '
                   f'stroke-width="0.3"><title>{html.escape(tip)}</title></rect>')
    return out


def per_token_svg(row, width: int = 960) -> str:
    """The per-position chart of one scored rollout as inline SVG: reverse KL (sequential from 0) above, implicit
    reward (diverging around 0) below, one bar per completion token, the token in each bar's tooltip."""
    tokens = [str(t) for t in (row.get("tokens") if row.get("tokens") is not None else [])]
    left, plot_w, panel_h = 56, width - 72, 110
    parts = []
    for k, (quantity, title) in enumerate((("reverse_kl", "reverse KL(pS‖pT) per position (sequential from 0)"),
                                           ("implicit_reward", "implicit reward log pT − log pS per position "
                                                               "(diverging around 0: red below, blue above)"))):
        values = row.get(quantity)
        values = list(values) if values is not None else [None] * len(tokens)
        parts += _panel(values, tokens, quantity, title, 24 + k * (panel_h + 44), panel_h, plot_w, left)
    height = 24 + 2 * panel_h + 44 + 20
    parts.append(f'<text x="{left}" y="{height - 4}">completion token position 0..{len(tokens) - 1} (hover a bar for '
                 "its token)</text>")
    return (f'{_CHART_CSS}<svg class="s2d-chart" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>')


def token_view_export(store: Store, folder: str | os.PathLike, run_id: str, stage: str, step, prompt_id: str,
                      sample_idx, teacher_idx, student_html: str, teacher_html: str) -> str:
    """The token view as one file: the problem in full, both rollouts' heatmaps as shown, and the student's
    per-position chart (`per_token_svg`); returns its path."""
    df = store.snapshot(run_id, stage, step)
    student = pick(df, prompt_id, "student", sample_idx)
    teacher = pick(df, prompt_id, "teacher", teacher_idx)
    row = student if student is not None else teacher
    if row is None:
        raise AppError(f"Problem {prompt_id!r} is not in this snapshot, so there is nothing to export.")
    shown_step = step if step not in (None, "") else store.steps(run_id, stage)[-1]
    problem = (f"<div class='s2d-head'><b>Problem {html.escape(str(prompt_id))}</b> · run {html.escape(run_id)} · "
               f"{html.escape(stage)} snapshot step {html.escape(str(shown_step))}</div>"
               f"<pre style='white-space:pre-wrap;font-size:14px;background:#f7f7f7;padding:8px;border-radius:4px'>"
               f"{html.escape(str(row.get('prompt') or ''))}</pre>")
    who = "student" if student is not None else "teacher"
    chart = (f"<div class='s2d-head'><b>Per position</b>: the {who}'s sample #{int(row.get('sample_idx', 0))}</div>"
             + per_token_svg(row))
    return export_file(folder, f"s2dlab · {run_id} · {stage} step {shown_step} · problem {prompt_id}",
                       [problem, student_html, teacher_html, chart], run_id, stage, shown_step, prompt_id,
                       sample_idx, "token-view")
