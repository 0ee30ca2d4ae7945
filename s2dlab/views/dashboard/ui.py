"""Plumbing the tabs share: handlers that turn errors into a sentence in a status line, dropdown updates, and the
context a tab is built in (`Context`: the store, the run/stage/step pickers, the export folder).

Handlers return named outputs, a dict {component: value}; `guard` wraps one so that an exception becomes a message
in its status line (and the outputs named in `empties` are cleared) instead of a traceback.
"""

from __future__ import annotations

import functools
import html
import logging
import math
import os
import re
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from s2dlab.core.errors import S2DLabError
from s2dlab.views.dashboard.store import Store

log = logging.getLogger("s2dlab.app")

# Every handler that loads or runs a model joins one queue, MODEL_QUEUE, which runs MODEL_WORKERS of them at a time
# (the data layer holds a lock around each as well, `s2dlab.views.dashboard.models.MODEL_LOCK`); a participant whose
# request waits sees its place in that queue in the panel's status line. The handlers that only read files run
# READ_WORKERS at a time each. QUEUE_SIZE bounds the requests waiting in all (a full queue answers "queue full").
MODEL_QUEUE, MODEL_WORKERS = "models", 1
READ_WORKERS, QUEUE_SIZE = 4, 256


def message(err: Exception) -> str:
    """The status-line sentence of an error: its own words for an expected problem, its type for anything else."""
    if isinstance(err, S2DLabError):  # AppError and every other expected problem (InputError, MissingError, ...)
        return f"⚠ {html.escape(str(err), quote=False)}"
    log.exception("unexpected error in an app callback")
    return f"⚠ Something went wrong: {type(err).__name__}: {html.escape(str(err), quote=False)}"


def _fill(value):
    return value() if callable(value) else value


def guard(fn, empties, clear: bool = True, status=None):
    """`fn` made safe for the UI.

    Named outputs (`fn` returns a dict, `empties` is a dict {component: value or factory}, `status` the status
    component): on success the dict, with `status` cleared when `clear`; on an error the `empties` plus the message
    in `status`. Positional outputs (`fn` returns a tuple, `empties` a list): the same with the status last.
    `clear=False` leaves the status as it is on success (a handler chained after another, so an earlier message
    stays visible)."""

    @functools.wraps(fn)  # keeps the signature: Gradio passes event data (gr.SelectData) by annotation
    def wrapper(*args):
        try:
            out = fn(*args)
        except Exception as err:  # every failure becomes a message in the UI
            if isinstance(empties, dict):
                return {**{c: _fill(v) for c, v in empties.items()}, status: message(err)}
            return (*[_fill(e) for e in empties], message(err))
        if isinstance(out, dict):
            if clear and status is not None:
                return {**out, status: ""}
            # an empty dict would read as one output value: say "nothing changes" with the status line instead
            return out or {status: gr.skip()}
        return (*out, "" if clear else gr.update())

    return wrapper


def dd(choices, value=None):
    """A dropdown update; `value` defaults to the first choice."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    if value not in values:
        value = values[0] if values else None
    return gr.update(choices=choices, value=value)


def multi(choices, value):
    """A multiselect update keeping the values still among the choices."""
    return gr.update(choices=choices, value=[v for v in value if v in choices])


def empty_dd():
    return gr.update(choices=[], value=None)


def empty_multi():
    return gr.update(choices=[], value=[])


# --------------------------------------------------------------------------------------------------------------
# tables: whole words, widths that fit the words, numbers as precise as their interval

_NUM = r"[+\-−]?\d+(?:\.\d+)?"
_INTERVAL = re.compile(rf"^\s*({_NUM}) \[({_NUM}), ({_NUM})\]\s*$")
# the tables' monospace advance (14 px IBM Plex Mono: 8.4 px), a header's padding (16 px) and room for its sort
# menu, a cell's padding (16 px) and a little room, a line
CHAR_PX, CELL_PAD_PX, TEXT_PAD_PX, WRAP_CHARS = 8.6, 28, 20, 36
# the width a table's columns share before it scrolls sideways: its box on a laptop's 1366-px-wide window (1188 px
# inside a section, 1214 outside), less room for a vertical scrollbar
FIT_PX = 1170
_SPACE = re.compile(r"[ \t\r\n]+")  # where a line may break (not at a no-break space, which holds an interval)


def _number(text: str) -> float:
    return float(text.replace("−", "-"))


def _shown(x: float, decimals: int, signed: bool) -> str:
    """`x` to `decimals` places, with a sign when the original carried one; a value that rounds to 0 shows 0."""
    r = round(x, decimals)
    if r == 0:
        return f"{0:.{decimals}f}"
    return f"{r:+.{decimals}f}" if signed else f"{r:.{decimals}f}"


def round_interval(text):
    """"43.8 [31.5, 56.0]" -> "44 [32, 56]": a value with its interval, to two significant digits of the interval's
    width (a width of 24.5 supports whole units, one of 0.52 two decimals); anything else unchanged. The digits come
    from the summary as written; only their display is rounded."""
    m = _INTERVAL.match(text) if isinstance(text, str) else None
    if not m:
        return text
    value, low, high = (_number(g) for g in m.groups())
    width = abs(high - low)
    if width == 0 or not math.isfinite(width):
        return text
    decimals = max(0, 1 - math.floor(math.log10(width)))
    have = max(len(g.split(".")[1]) if "." in g else 0 for g in m.groups())
    if decimals >= have:
        return text
    signed = [g[0] in "+-−" for g in m.groups()]
    v, lo, hi = (_shown(x, decimals, s) for x, s in zip((value, low, high), signed))
    return f"{v} [{lo}, {hi}]"


def column_widths(df: pd.DataFrame | None, fit_px: float | None = FIT_PX) -> list[str] | None:
    """A width per column that holds its longest word (a header may wrap between its words), so headers and cells
    wrap between whole words, and its text on lines of at most WRAP_CHARS characters. When the columns would be
    wider than `fit_px` together, the longest lines are shortened (never below a column's longest word) until they
    fit; a table whose longest words alone are wider than that scrolls inside its box."""
    if df is None or not len(df.columns):
        return None
    cols = []
    for col in df.columns:
        cells = ["" if v is None else str(v) for v in df[col].head(200)]
        word = max([len(w) * CHAR_PX + CELL_PAD_PX for w in _words(str(col))]
                   + [len(w) * CHAR_PX + TEXT_PAD_PX for t in cells for w in _words(t)])
        cols.append((word, max(len(t) for t in [str(col), *cells])))

    def widths(chars: int) -> list[float]:
        return [max(word, min(longest, chars) * CHAR_PX + CELL_PAD_PX) for word, longest in cols]

    chars = WRAP_CHARS
    while chars > 1 and fit_px and sum(widths(chars)) > fit_px:
        chars -= 1
    return [f"{int(w)}px" for w in widths(chars)]


def _words(text: str) -> list[str]:
    return [w for w in _SPACE.split(text) if w] or [""]


def hold_interval(text):
    """"0.30 [0.22, 0.38]" with a no-break space inside its brackets, so a wrapped cell breaks only before the
    interval, never inside it."""
    m = _INTERVAL.match(text) if isinstance(text, str) else None
    return text.replace(", ", ",\u00a0") if m else text


def table(df: pd.DataFrame | None, intervals: bool = False):
    """A Dataframe update showing `df` with `column_widths`; `intervals` rounds its "x [lo, hi]" cells
    (`round_interval`) and keeps each interval on one line (`hold_interval`)."""
    if df is None:
        return gr.update(value=None)
    if intervals:
        df = df.apply(lambda col: col.map(lambda v: hold_interval(round_interval(v)))) if len(df) else df
    return gr.update(value=df, column_widths=column_widths(df))


def new_table(columns, elem_id: str | None = None, **kw) -> gr.Dataframe:
    """An empty read-only table with its column names (never the "1 2 3" of a table without columns), wrapping
    whole words."""
    empty = pd.DataFrame(columns=list(columns))
    return gr.Dataframe(value=empty, interactive=False, wrap=True, column_widths=column_widths(empty),
                        elem_id=elem_id, elem_classes=["s2d-table"], **kw)


def status_line(elem_id: str) -> gr.Markdown:
    """A panel's own status line: its errors appear here, beside what caused them, and nowhere else."""
    return gr.Markdown(elem_id=elem_id, elem_classes=["s2d-status"])


def clear_on_input(status: gr.Markdown, *components) -> None:
    """Empty `status` as soon as one of `components` changes (in the page: no request), so a message about an
    input's old value never stays beside its new one."""
    for comp in components:
        comp.input(fn=None, inputs=None, outputs=[status], js="() => ''", queue=False, api_visibility="private")


@dataclass
class Context:
    """What every tab is built with: the store, the export folder, the shared pickers and the status line, and
    the chains a tab joins (`on_run`: after the run changes; `on_snapshot`: after the snapshot changes). Each chain
    entry is the keyword arguments of one `.then` step."""

    store: Store
    exports: os.PathLike  # the app's export folder (`s2dlab.views.dashboard.export.ExportFolder`)
    run_dd: gr.Dropdown
    stage_dd: gr.Dropdown
    step_dd: gr.Dropdown
    status: gr.Markdown
    tabs: gr.Tabs | None = None
    on_run: list[dict] = field(default_factory=list)
    on_snapshot: list[dict] = field(default_factory=list)
    # (fn, inputs, outputs) of the tabs that follow a run in progress: fn(run_id, change, *inputs) -> named outputs,
    # called when the run changed (`s2dlab.views.dashboard.follow.changes`)
    followers: list[tuple] = field(default_factory=list)

    def step(self, run_id, stage, step):
        """The chosen snapshot step (0 is a step), else the stage's latest."""
        return self.store.steps(run_id, stage)[-1] if step in (None, "") else step

    def then_snapshot(self, event):
        """`event` followed by every tab's refresh for a new snapshot."""
        for kw in self.on_snapshot:
            event = event.then(**kw)
        return event

    def then_run(self, event):
        """`event` followed by every tab's refresh for a new run (the snapshot chain first: what the user sees)."""
        for kw in self.on_run:
            event = event.then(**kw)
        return event


def handler(fn, inputs, outputs, status, empties=None, clear: bool = True, models: bool = False,
            needs_run: bool = False, **kw) -> dict:
    """The keyword arguments of one event listener (or one `.then` step): `fn` guarded (`guard`), its named outputs
    plus the status line. `empties`: what the outputs show when `fn` fails. `models`: `fn` loads or runs a model,
    so it waits in the one model queue, its place shown in the status line. `needs_run`: with no run chosen (the
    first input empty) the outputs are emptied without a word: the pickers above already say why."""
    if models:
        kw.update(concurrency_id=MODEL_QUEUE, concurrency_limit=MODEL_WORKERS, show_progress_on=[status])
    empties = dict(empties or {})
    fn = guard(fn, empties, clear, status)
    if needs_run:
        fn = _needs_run(fn, empties, status)
    return dict(fn=fn, inputs=list(inputs), outputs=[*outputs, status], **kw)


def _needs_run(fn, empties: dict, status):
    @functools.wraps(fn)
    def wrapper(*args):
        if not args or not args[0]:  # the status line keeps what the run picker's own handler said there
            return {**{c: _fill(v) for c, v in empties.items()}, status: gr.skip()}
        return fn(*args)

    return wrapper
