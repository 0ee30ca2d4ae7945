"""The token lens as HTML: one rollout's tokens across the top, one row per (teacher, student) checkpoint pair.

    from s2dlab.instruments.lens import read_lens
    from s2dlab.views import viz
    html = viz.lens_html(read_lens("runs/demo", rollout=3))                 # implicit reward per pair
    html = viz.lens_html(read_lens("runs/demo", rollout=3), value="reverse_kl")

Each cell is one token under one pair, coloured on the heatmap's scale for the quantity shown (`s2dlab.views.viz.colors`:
the implicit reward `log pT(y_t) - log pS(y_t)` diverging around 0, blue positive, red negative; the KLs
sequential from 0), its number in the tooltip (the cell's `title`). Columns whose implicit reward changes sign
between pairs (the lens's stored `sign_change`) are flagged: an outlined header cell marked ⇅. Every row ends with
the pair's stored summed implicit reward and mean reverse KL. Like the heatmap, the HTML is self-contained (inline
CSS, no script), so a saved file, a notebook and the dashboard show the same table; all text is escaped.
"""

from __future__ import annotations

import html as _html
from collections.abc import Mapping, Sequence

from s2dlab.views.viz.colors import (
    LEGEND_CSS,
    Scale,
    auto_vmax,
    color_pair,
    finite,
    legend_html,
    scale_for,
)
from s2dlab.views.viz.heatmap import visible_text

LENS_VALUES = {"implicit_reward": "implicit reward  log pT(y_t) − log pS(y_t)",
               "reverse_kl": "reverse KL(pS‖pT)", "forward_kl": "forward KL(pT‖pS)"}

_CSS = LEGEND_CSS + """
.s2d-lens{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:#111}
.s2d-lens .s2d-scroll{overflow-x:auto;border:1px solid #e3e3e3;border-radius:4px}
.s2d-lens table{border-collapse:collapse}
.s2d-lens th,.s2d-lens td{padding:2px 3px;text-align:center;white-space:pre;border:1px solid #f0f0f0}
.s2d-lens th.s2d-pair{text-align:left;position:sticky;left:0;background:#fafafa;z-index:1;font-weight:600}
.s2d-lens thead th{background:#fafafa;font-weight:400}
.s2d-lens thead th.s2d-flip{outline:2px solid #000;outline-offset:-2px;font-weight:700}
.s2d-lens thead th.s2d-flip::after{content:" \\21C5"}
.s2d-lens td.s2d-flip{box-shadow:inset 0 -2px 0 #000}
.s2d-lens td.s2d-sum{text-align:right;background:#fafafa}
.s2d-lens .s2d-pos{color:#888;font-size:10px}
"""


def _get(row, key):
    return row.get(key) if hasattr(row, "get") else None


def _rows(rows) -> list[Mapping]:
    if rows is None:
        return []
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        return rows.to_dict("records")
    return list(rows)


def pair_label(row: Mapping) -> str:
    """`teacher ▸ student`: the teacher checkpoint that scores, the student checkpoint that is scored."""
    return f"{_get(row, 'teacher')} ▸ {_get(row, 'student')}"


def lens_html(rows, value: str = "implicit_reward", *, vmax: float | None = None, title: str | None = None,
              cmap: str | Scale | None = None) -> str:
    """The lens rows of one rollout (`s2dlab.instruments.lens.read_lens(run, rollout)`: one per pair, same tokens) as an HTML
    table coloured by `value` (`implicit_reward`, `reverse_kl` or `forward_kl`) on that quantity's scale
    (`scale_for(value)`, unless `cmap` names another), sign changes flagged.

    `vmax`: where colours saturate (default: the largest |value| in the table). ValueError when the rows are not
    of one rollout (different tokens) or a row's values do not match its tokens.
    """
    rows = _rows(rows)
    if value not in LENS_VALUES:
        raise ValueError(f"value={value!r}: use one of {', '.join(LENS_VALUES)}")
    if not rows:
        return "<div class='s2d-lens'>No lens rows.</div>"
    tokens = [str(t) for t in (_get(rows[0], "tokens") or [])]
    n = len(tokens)
    for r in rows:
        if [str(t) for t in (_get(r, "tokens") or [])] != tokens:
            raise ValueError("lens rows of different rollouts: pass the rows of one rollout (read_lens(run, rollout))")
        if len(_get(r, value) or []) != n:
            raise ValueError(f"{pair_label(r)}: {value} has {len(_get(r, value) or [])} entries for {n} tokens")
    flips = [bool(x) for x in (_get(rows[0], "sign_change") or [False] * n)]
    values = [[finite(v) for v in _get(r, value)] for r in rows]
    if vmax is None:
        vmax = auto_vmax(v for vs in values for v in vs)
    esc = _html.escape
    scale = scale_for(cmap or value)
    head = ['<th class="s2d-pair">pair (teacher ▸ student)</th>']
    for i, t in enumerate(tokens):
        cls = ' class="s2d-flip"' if flips[i] else ""
        tip = f"#{i} '{visible_text(t)}'" + ("  implicit reward changes sign between pairs" if flips[i] else "")
        head.append(f'<th{cls} data-i="{i}" title="{esc(tip)}"><span class="s2d-pos">{i}</span><br>'
                    f"{esc(visible_text(t))}</th>")
    head.append("<th>Σ implicit reward</th><th>mean reverse KL</th>")
    # one CSS class per colour used (a long rollout under many pairs repeats few colours), the value in the title
    classes: dict[tuple[str, str], str] = {}
    body = []
    for r, vals in zip(rows, values):
        label = esc(pair_label(r))
        cells = [f'<th class="s2d-pair">{label}</th>']
        for i, v in enumerate(vals):
            colour = color_pair(v, vmax, scale)
            cls = classes.setdefault(colour, f"c{len(classes)}")
            flip = " s2d-flip" if flips[i] else ""
            shown = "n/a" if v is None else f"{v:+.3f}"
            cells.append(f'<td class="{cls}{flip}" data-i="{i}" title="{label} #{i}: {shown}">'
                         f"{esc(visible_text(tokens[i]))}</td>")
        total, mean_kl = finite(_get(r, "sum_implicit_reward")), finite(_get(r, "mean_reverse_kl"))
        cells.append(f'<td class="s2d-sum">{"n/a" if total is None else f"{total:+.3f}"}</td>'
                     f'<td class="s2d-sum">{"n/a" if mean_kl is None else f"{mean_kl:.3f}"}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    palette = "".join(f".s2d-lens td.{c}{{background:{bg};color:{fg}}}" for (bg, fg), c in classes.items())
    n_flip = sum(flips)
    legend = legend_html(LENS_VALUES[value], vmax, scale, f"{n} tokens x {len(rows)} pairs; {n_flip} token"
                         f"{'' if n_flip == 1 else 's'} ⇅ change sign of implicit reward between pairs")
    top = f"<div style='font-weight:600;margin-bottom:4px'>{esc(title)}</div>" if title else ""
    return (f'<div class="s2d-lens" data-pairs="{len(rows)}" data-n="{n}" data-flips="{n_flip}"><style>{_CSS}'
            f"{palette}</style>{top}{legend}<div class='s2d-scroll'><table><thead><tr>{''.join(head)}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div></div>")


def standalone_html(title: str, parts: Sequence[str]) -> str:
    """One self-contained HTML document of rendered pieces (heatmaps, lens tables, headers): inline CSS, no script,
    nothing fetched, so a browser opens it from disk and a notebook or a slide can embed it (`<iframe srcdoc>`,
    `IPython.display.HTML`)."""
    esc = _html.escape
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{esc(title)}</title><style>body{{font-family:system-ui,sans-serif;margin:16px;color:#111}}"
            "h1{font-size:16px;margin:0 0 8px 0}.s2d-part{margin:10px 0}</style></head><body>"
            f"<h1>{esc(title)}</h1>" + "".join(f"<div class='s2d-part'>{p}</div>" for p in parts)
            + "</body></html>\n")
