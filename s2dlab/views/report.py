"""The paper-style table and figure of a run (or of several seeds), rendered from its summary.

    s2dlab report runs/table2                      # prints the Markdown table
    s2dlab report runs/table2 --html table2.html   # and writes the figure as one self-contained HTML file

Everything here renders `summary.json` (`s2dlab.workflow.summary`): the accuracy of each arm with its 95% interval and
budget, and the paper's predictions with the interval of each difference. Nothing is recomputed.
"""

from __future__ import annotations

from s2dlab.core.errors import InputError
from s2dlab.views.viz.figures import arms_figure, ordered_arms
from s2dlab.workflow.summary import read_summary


def _pct(x, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


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


def report(run_path, html: str | None = None) -> str:
    summary = read_summary(run_path)
    text = markdown_table(summary) + "\n\n" + claims_table(summary)
    if html:
        from pathlib import Path

        from s2dlab.core.runs import atomic_write_bytes

        if Path(html).is_dir():
            raise InputError(f"--html {html} is a folder; give a file name such as {Path(html) / 'arms.html'}")
        page = arms_figure(summary).to_html(include_plotlyjs=True, full_html=True)
        atomic_write_bytes(html, page.encode("utf-8"))  # makes a missing parent folder; never half a page
    return text
