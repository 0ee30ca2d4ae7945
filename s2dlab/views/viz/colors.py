"""The colour scales of s2dlab's figures: one scale per meaning, chosen by the quantity shown (`scale_for`).

- The implicit reward `log pT(y_t) - log pS(y_t)` is signed: a **diverging** scale around 0 ("RdBu"), red negative
  (the teacher likes the student's token less than the student does), blue positive, 0 the neutral near-white
  centre, clipped to [-vmax, vmax].
- KLs and entropies are never negative: a **sequential** scale from 0 in one hue ("Purples"), near-white at 0 and
  darker as the value grows, clipped to [0, vmax].

The token heatmap, the lens table, the dashboard's export and the notebooks all colour through `color_pair`, and
their legends through `legend_html`, which says which kind of scale it is, so a colour means one thing everywhere.
Any plotly colour scale can be named instead (`cmap="Blues"`): the diverging ones of `plotly.colors.diverging`
centre on 0, every other one runs from 0.
"""

from __future__ import annotations

import html as _html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import plotly.colors as pcolors

LEVELS = 100  # colour steps on each side of the scale's middle: plenty for the eye, and a small lookup table
NAN_COLOR = "#d9d9d9"


@dataclass(frozen=True)
class Scale:
    """A colour scale: a plotly colour scale's name, and whether it diverges around 0 or runs from 0."""

    cmap: str
    diverging: bool

    @property
    def kind(self) -> str:
        return "diverging" if self.diverging else "sequential"

    @property
    def meaning(self) -> str:
        """What the legend says about the scale."""
        if self.diverging:
            return "diverging around 0: red below 0, blue above, white at 0" if self.cmap == "RdBu" else \
                "diverging around 0"
        return "sequential from 0: white at 0, darker = larger"


DIVERGING = Scale("RdBu", True)  # signed quantities: the implicit reward
SEQUENTIAL = Scale("Purples", False)  # quantities >= 0: KLs, entropies
# the scale of each per-token quantity the run store holds (a rollout row's columns)
QUANTITY_SCALES = {"implicit_reward": DIVERGING, "reverse_kl": SEQUENTIAL, "forward_kl": SEQUENTIAL,
                   "student_entropy": SEQUENTIAL, "teacher_entropy": SEQUENTIAL}

_TABLES: dict[str, list[tuple[str, str]]] = {}


def _diverging_names() -> set[str]:
    names = {n.lower() for n in dir(pcolors.diverging) if not n.startswith("_") and not n.startswith("swatches")}
    return names | {n + "_r" for n in names}


def scale_for(what: str | Scale | None = None) -> Scale:
    """The scale of `what`: a per-token quantity (`implicit_reward` diverging, `reverse_kl`, `forward_kl`,
    `student_entropy`, `teacher_entropy` sequential), a plotly colour scale's name (diverging when plotly lists it
    among its diverging scales, else sequential), or a `Scale`; None is the implicit reward's."""
    if what is None:
        return DIVERGING
    if isinstance(what, Scale):
        return what
    if what in QUANTITY_SCALES:
        return QUANTITY_SCALES[what]
    return Scale(str(what), str(what).lower() in _diverging_names())


def finite(v: Any) -> float | None:
    """`v` as a float, or None when it is missing, not a number, NaN or infinite."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _rgb(c: str) -> tuple[int, int, int]:
    c = c.strip()
    if c.startswith("#"):
        r, g, b = pcolors.hex_to_rgb(c)
        return int(r), int(g), int(b)
    r, g, b = (int(round(float(x))) for x in re.findall(r"[\d.]+", c)[:3])
    return r, g, b


def _table(cmap: str) -> list[tuple[str, str]]:
    """(background, text colour) at 2 * LEVELS + 1 evenly spaced points of the colour scale, from its low end."""
    if cmap not in _TABLES:
        try:
            stops = [(float(p), _rgb(c)) for p, c in pcolors.get_colorscale(cmap)]
        except Exception as e:  # plotly raises PlotlyError for unknown names
            raise ValueError(f"unknown colour scale {cmap!r}: use a plotly colour scale such as 'RdBu' (diverging) "
                             "or 'Purples' (sequential)") from e
        rows = []
        for k in range(2 * LEVELS + 1):
            t = k / (2 * LEVELS)
            (p0, c0), (p1, c1) = next(((a, b) for a, b in zip(stops, stops[1:]) if t <= b[0]), (stops[-1], stops[-1]))
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            r, g, b = (int(round(x + f * (y - x))) for x, y in zip(c0, c1))
            luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
            rows.append((f"#{r:02x}{g:02x}{b:02x}", "#fff" if luminance < 120 else "#111"))
        _TABLES[cmap] = rows
    return _TABLES[cmap]


def color_pair(value: float | None, vmax: float, cmap: str | Scale = "RdBu") -> tuple[str, str]:
    """(background, readable text colour) of `value` on the scale `cmap` (a `Scale`, a quantity or a plotly name,
    see `scale_for`): a diverging scale clips to [-vmax, vmax] with 0 in its middle, a sequential one clips to
    [0, vmax] with 0 at its low end; grey for None."""
    if value is None:
        return NAN_COLOR, "#111"
    scale = scale_for(cmap)
    x = max(-1.0, min(1.0, value / vmax))
    index = int(round(x * LEVELS)) + LEVELS if scale.diverging else int(round(max(0.0, x) * 2 * LEVELS))
    return _table(scale.cmap)[index]


def value_color(value: float | None, vmax: float, cmap: str | Scale = "RdBu") -> str:
    """Background colour of `value` (`color_pair`); by default on the diverging scale centred at 0."""
    return color_pair(finite(value), vmax, cmap)[0]


def gradient_stops(cmap: str | Scale = "RdBu", n: int = 11) -> list[str]:
    """`n` evenly spaced colours from the low end of the scale to its high end, for a CSS colour bar."""
    table = _table(scale_for(cmap).cmap)
    return [table[round(k * (len(table) - 1) / (n - 1))][0] for k in range(n)]


def auto_vmax(values: Iterable[float | None]) -> float:
    """The largest |value| (1.0 when there is none or all are 0), where colours saturate."""
    m = max((abs(v) for v in values if v is not None), default=0.0)
    return m if m > 0 else 1.0


LEGEND_CSS = (".s2d-legend{display:flex;flex-wrap:wrap;align-items:center;gap:6px;font-size:11px;margin:2px 0 6px 0;"
              "color:#333}.s2d-legend .s2d-bar{display:inline-block;width:160px;height:10px;border:1px solid #999;"
              "border-radius:2px}")


def legend_html(label: str, vmax: float, cmap: str | Scale = "RdBu", note: str = "") -> str:
    """The colour bar of a figure as HTML: what is shown (`label`), the ends of the scale (−vmax and +vmax on a
    diverging scale, 0 and vmax on a sequential one) and which kind of scale it is; `note` is appended."""
    scale = scale_for(cmap)
    esc = _html.escape
    low = f"−{vmax:.3g}" if scale.diverging else "0"
    high = f"+{vmax:.3g}" if scale.diverging else f"{vmax:.3g}"
    stops = ", ".join(gradient_stops(scale))
    said = scale.meaning + (f"; {note}" if note else "")
    return (f'<div class="s2d-legend" data-scale="{scale.kind}"><span>{esc(label)}</span><span>{low}</span>'
            f'<span class="s2d-bar" style="background:linear-gradient(to right, {stops})"></span>'
            f"<span>{high}</span><span>({esc(said)})</span></div>")
