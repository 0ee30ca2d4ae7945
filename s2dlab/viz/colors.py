"""The diverging colour scale shared by the token heatmap and the figures: 0 is the neutral centre.

On the default scale ("RdBu") red is negative and blue positive, so for the implicit reward
`log pT(y_t) - log pS(y_t)` red means the teacher likes the student's token less than the student does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import plotly.colors as pcolors

LEVELS = 100  # colour steps on each side of 0: plenty for the eye, and a small lookup table
NAN_COLOR = "#d9d9d9"

_TABLES: dict[str, list[tuple[str, str]]] = {}


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
    """(background, text colour) for levels -LEVELS..LEVELS, at index level + LEVELS."""
    if cmap not in _TABLES:
        try:
            stops = [(float(p), _rgb(c)) for p, c in pcolors.get_colorscale(cmap)]
        except Exception as e:  # plotly raises PlotlyError for unknown names
            raise ValueError(f"unknown colour scale {cmap!r}: use a plotly diverging scale such as 'RdBu'") from e
        rows = []
        for level in range(-LEVELS, LEVELS + 1):
            t = 0.5 + 0.5 * level / LEVELS
            (p0, c0), (p1, c1) = next(((a, b) for a, b in zip(stops, stops[1:]) if t <= b[0]), (stops[-1], stops[-1]))
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            r, g, b = (int(round(x + f * (y - x))) for x, y in zip(c0, c1))
            luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
            rows.append((f"#{r:02x}{g:02x}{b:02x}", "#fff" if luminance < 120 else "#111"))
        _TABLES[cmap] = rows
    return _TABLES[cmap]


def color_pair(value: float | None, vmax: float, cmap: str = "RdBu") -> tuple[str, str]:
    """(background, readable text colour) of `value`, clipped to [-vmax, vmax]; grey for None."""
    if value is None:
        return NAN_COLOR, "#111"
    level = int(round(max(-1.0, min(1.0, value / vmax)) * LEVELS))
    return _table(cmap)[level + LEVELS]


def value_color(value: float | None, vmax: float, cmap: str = "RdBu") -> str:
    """Background colour of `value` on a diverging scale centred at 0 and clipped to [-vmax, vmax]."""
    return color_pair(finite(value), vmax, cmap)[0]


def gradient_stops(cmap: str = "RdBu", n: int = 11) -> list[str]:
    """`n` evenly spaced colours from -vmax to +vmax, for a CSS colour bar."""
    table = _table(cmap)
    return [table[round(k * (len(table) - 1) / (n - 1))][0] for k in range(n)]


def auto_vmax(values: Iterable[float | None]) -> float:
    """The largest |value| (1.0 when there is none or all are 0), where colours saturate."""
    m = max((abs(v) for v in values if v is not None), default=0.0)
    return m if m > 0 else 1.0
