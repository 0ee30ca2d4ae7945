"""The per-token heatmap: a rollout's text coloured token by token, as a string of HTML.

One pure renderer, `token_heatmap_html(tokens, values, spans=...)`, shared by the dashboard and the notebooks; the
HTML works in Jupyter (`IPython.display.HTML`), in Gradio (`gr.HTML`) and in a saved file alike, with no script.

Input: each token's own text and value, and the display spans (`Span`): runs of consecutive tokens shown as one
piece of text, because a byte-level tokenizer can split one character (é, 数, 😀) over several tokens. Scoring
stores the spans with every rollout row (`span_starts`, `span_texts`, see `s2dlab.core.token_text`); `row_spans`
reads them, and falls back to one span per token for rows written before they existed. A span of several tokens
is coloured by the **sum** of its tokens' values (for the implicit reward: the log-ratio of the span's joint
probabilities); its tooltip still lists every token with its own numbers.

    from s2dlab.core import runs
    from s2dlab.views import viz
    row = runs.open_run("runs/demo").rollouts("opd").iloc[0]
    html = viz.rollout_heatmap_html(row)      # coloured by implicit reward, hover for every number
"""

from __future__ import annotations

import html as _html
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from s2dlab.views.viz.colors import (
    LEGEND_CSS,
    Scale,
    auto_vmax,
    color_pair,
    finite,
    legend_html,
    scale_for,
)

IMPLICIT_REWARD_LABEL = "implicit reward  log pT(y_t) − log pS(y_t)"


class Span(NamedTuple):
    """Tokens `start .. stop-1` shown as one piece of `text`; `special`: a special token shown by name."""

    start: int
    stop: int
    text: str
    special: bool = False


_CSS = LEGEND_CSS + """
.s2d-heatmap{position:relative;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
 line-height:1.9;color:#111}
.s2d-heatmap:hover{z-index:1000}
.s2d-heatmap .s2d-title{font-weight:600;margin-bottom:4px}
.s2d-heatmap .s2d-tokens{white-space:pre-wrap;word-break:break-all;background:#fff;padding:4px;border:1px solid #e3e3e3;
 border-radius:4px}
.s2d-heatmap .s2d-tok{position:relative;border-radius:2px;padding:1px 0;cursor:default}
.s2d-heatmap .s2d-tok:hover{outline:2px solid #000;z-index:5}
.s2d-heatmap .s2d-multi{box-shadow:inset 0 -2px 0 rgba(0,0,0,.35)}
.s2d-heatmap .s2d-ws{box-shadow:inset 0 -1px 0 rgba(0,0,0,.45)}
.s2d-heatmap .s2d-special{font-size:10px;border:1px dashed #777;padding:0 2px;margin:0 1px}
.s2d-heatmap .s2d-nl::before{content:"\\21B5";opacity:.55}
.s2d-heatmap .s2d-empty::before{content:"\\2205";opacity:.55}
.s2d-heatmap .s2d-tok:hover::after{position:fixed;margin-top:1.5em;margin-left:-1ch;z-index:1000;pointer-events:none;
 white-space:pre;background:#222;color:#fff;font-size:11px;line-height:1.45;padding:4px 7px;border-radius:4px;
 box-shadow:0 2px 6px rgba(0,0,0,.3);content:attr(data-tip)}
"""


# --------------------------------------------------------------------------------------------------------------
# spans


def _seq(row: Mapping, key: str) -> list | None:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return list(v)


def row_spans(row: Mapping) -> list[Span]:
    """The display spans a rollout row stores (`span_starts`, `span_texts`, `token_special`), or one span per
    token showing `tokens` for rows written before scoring stored spans."""
    tokens = _seq(row, "tokens") or []
    starts, texts = _seq(row, "span_starts"), _seq(row, "span_texts")
    if starts is None or texts is None:
        return [Span(i, i + 1, str(t)) for i, t in enumerate(tokens)]
    special = _seq(row, "token_special") or [False] * len(tokens)
    stops = [int(s) for s in starts[1:]] + [len(tokens)]
    return [Span(int(a), b, str(t), bool(special[int(a)]) and b == int(a) + 1)
            for a, b, t in zip(starts, stops, texts)]


def _check_spans(spans: Sequence[Span], n: int) -> None:
    pos = 0
    for s in spans:
        if s.start != pos or s.stop <= s.start:
            raise ValueError(f"spans must cover tokens 0..{n - 1} in order without gaps; got span "
                             f"{s.start}..{s.stop - 1} where token {pos} was expected")
        pos = s.stop
    if pos != n:
        raise ValueError(f"spans cover {pos} tokens but there are {n}")


def span_values(values: Sequence[float | None], spans: Sequence[Span]) -> list[float | None]:
    """The value each span is coloured by: the sum of its tokens' values (None if any of them is missing)."""
    out = []
    for s in spans:
        vals = [finite(values[i]) for i in range(s.start, s.stop)]
        out.append(None if any(v is None for v in vals) else math.fsum(vals))
    return out


def heatmap_vmax(rows: Iterable[Mapping | None], value: str = "implicit_reward") -> float | None:
    """The largest |span value| over the rows' heatmaps, so several heatmaps can share one colour range."""
    m = 0.0
    for row in rows:
        vals = _seq(row, value) if row is not None else None
        if vals is None:
            continue
        m = max([m] + [abs(v) for v in span_values(vals, row_spans(row)) if v is not None])
    return m if m > 0 else None


# --------------------------------------------------------------------------------------------------------------
# hover text


# per_token_info key -> (tooltip name, number format)
_INFO = [
    ("implicit_reward", "implicit reward", "{:+.3f}"),
    ("student_prob", "p student", "{:.3f}"),
    ("teacher_prob", "p teacher", "{:.3f}"),
    ("reverse_kl", "reverse KL", "{:.3f}"),
    ("forward_kl", "forward KL", "{:.3f}"),
    ("student_entropy", "entropy student", "{:.3f}"),
    ("teacher_entropy", "entropy teacher", "{:.3f}"),
]


def visible_text(text: str) -> str:
    """A token's text for a one-line label: newline, tab and blank made visible."""
    if text == "":
        return "∅"
    return text.replace("\n", "↵").replace("\t", "⇥").replace(" ", "␣")


def _fmt(fmt: str, v: Any) -> str:
    f = finite(v)
    return "n/a" if f is None else fmt.format(f)


def _fmt_top(top: Any) -> str:
    if not top:
        return "–"
    parts = []
    for item in top:
        tok, p = (item.get("token"), item.get("prob")) if isinstance(item, Mapping) else item
        parts.append(f"{visible_text(str(tok))} {_fmt('{:.2f}', p)}")
    return ", ".join(parts)


def _token_lines(i: int, text: str, value: float | None, info: Mapping | None, label: str) -> list[str]:
    head = f"#{i} '{visible_text(text)}'"
    if not info:
        return [f"{head}   {label} {_fmt('{:+.3f}', value)}"]
    nums = [f"{name} {_fmt(fmt, info.get(key))}" for key, name, fmt in _INFO]
    return [f"{head}   {'   '.join(nums[:3])}", f"   {'   '.join(nums[3:5])}", f"   {'   '.join(nums[5:])}",
            f"   teacher top: {_fmt_top(info.get('teacher_top'))}",
            f"   student top: {_fmt_top(info.get('student_top'))}"]


def _tooltip(span: Span, tokens: Sequence[str], values: Sequence[float | None], value: float | None,
             per_token_info: Sequence[Mapping] | None, label: str) -> str:
    members = range(span.start, span.stop)
    label = label.split("  ")[0]  # the name without the formula (IMPLICIT_REWARD_LABEL) is enough here
    lines = []
    if len(members) > 1:
        lines.append(f"{visible_text(span.text)} = {len(members)} tokens #{span.start}–{span.stop - 1}; colour: "
                     f"their summed {label} {_fmt('{:+.3f}', value)}")
    for i in members:
        lines += _token_lines(i, str(tokens[i]), values[i], per_token_info[i] if per_token_info else None, label)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# the renderer


def _inner(text: str) -> str:
    # each newline keeps its line break and gets a marker drawn by CSS (not part of the page's text)
    return '<span class="s2d-nl"></span>\n'.join(_html.escape(part) for part in text.split("\n"))


def token_heatmap_html(tokens: Sequence[str], values: Sequence[float | None], *, spans: Sequence[Span] | None = None,
                       vmax: float | None = None, title: str | None = None,
                       per_token_info: Sequence[Mapping] | None = None, cmap: str | Scale | None = None,
                       label: str = "value", max_height: int | None = None) -> str:
    """A rollout's text coloured token by token, with a colour-bar legend that says which scale it is; returns HTML.

    tokens: each token's own text (named in the tooltip). values: one number per token (None/NaN: grey).
    spans: the display spans (`Span`s covering tokens 0..n-1 in order, e.g. `row_spans(row)`); default one span
        per token showing its text. A span of several tokens is coloured by the sum of their values.
    vmax: where colours saturate (default: the largest |span value|).
    cmap: the colour scale (`s2dlab.views.viz.colors.scale_for`): a quantity (`"implicit_reward"`, the default: diverging
        around 0; `"reverse_kl"`, `"forward_kl"`, an entropy: sequential from 0), a plotly scale's name or a `Scale`.
    per_token_info: optional, one dict per token with any of `student_prob`, `teacher_prob`, `implicit_reward`,
        `reverse_kl`, `forward_kl`, `student_entropy`, `teacher_entropy` and `teacher_top` / `student_top`
        (lists of `(token, prob)`), shown in a CSS tooltip on hover (no script: Gradio's `gr.HTML` runs none).
    label: what the values are, written next to the colour bar and in the tooltip.

    All text is HTML-escaped (a completion holding `<script>` shows as text). Whitespace is kept as it is; a
    newline breaks the line and is marked with ↵, an empty token with ∅, a whitespace-only span is underlined and
    a special token is boxed. Raises ValueError when the lengths differ or the spans do not cover the tokens.
    """
    n = len(tokens)
    if len(values) != n:
        raise ValueError(f"tokens and values differ in length: {n} tokens, {len(values)} values")
    if per_token_info is not None and len(per_token_info) != n:
        raise ValueError(f"tokens and per_token_info differ in length: {n} tokens, {len(per_token_info)} entries")
    spans = [Span(i, i + 1, str(t)) for i, t in enumerate(tokens)] if spans is None else [Span(*s) for s in spans]
    _check_spans(spans, n)
    vals = [finite(v) for v in values]
    colour_vals = span_values(vals, spans)
    if vmax is None:
        vmax = auto_vmax(colour_vals)
    elif not (vmax > 0 and math.isfinite(vmax)):
        raise ValueError(f"vmax must be a positive number, got {vmax}")
    esc = _html.escape
    scale = scale_for(cmap)

    out = []
    multi = 0
    for span, v in zip(spans, colour_vals):
        bg, fg = color_pair(v, vmax, scale)
        cls = ["s2d-tok"]
        if span.stop - span.start > 1:
            cls.append("s2d-multi")
            multi += 1
        if span.special:
            cls.append("s2d-special")
        elif span.text == "":
            cls.append("s2d-empty")
        elif not span.text.strip() and "\n" not in span.text:
            cls.append("s2d-ws")
        pos = str(span.start) if span.stop - span.start == 1 else f"{span.start}–{span.stop - 1}"
        tip = _tooltip(span, tokens, vals, v, per_token_info, label)
        # html.escape also escapes quotes, so the tooltip is a safe attribute value; its newlines stay newlines,
        # which the tooltip's `white-space:pre` shows
        out.append(f'<span class="{" ".join(cls)}" style="background:{bg};color:{fg}" data-i="{pos}" '
                   f'data-v="{_fmt("{:+.3f}", v)}" data-tip="{esc(tip)}">{_inner(span.text)}</span>')

    counts = f"{n} tokens" if multi == 0 else (f"{n} tokens in {len(spans)} spans; a span of several tokens (one "
                                               f"character split across tokens) is coloured by their sum")
    legend = legend_html(label, vmax, scale, counts)
    head = f'<div class="s2d-title">{esc(title)}</div>' if title else ""
    box_style = f' style="max-height:{int(max_height)}px;overflow:auto"' if max_height else ""
    return (f'<div class="s2d-heatmap" data-n="{n}" data-spans="{len(spans)}"><style>{_CSS}</style>{head}{legend}'
            f'<div class="s2d-tokens"{box_style}>{"".join(out)}</div></div>')


# --------------------------------------------------------------------------------------------------------------
# rollout rows of the run store -> renderer inputs


def row_token_info(row: Mapping, id_to_text: Mapping[int, str] | None = None, top: int = 3) -> list[dict] | None:
    """Per-token info dicts for `token_heatmap_html` from a scored rollout row (None when it is not scored).

    `id_to_text` names the top-k alternatives; ids it does not know show as `#id`.
    """
    tokens = _seq(row, "tokens")
    s_lp, t_lp = _seq(row, "student_logprob"), _seq(row, "teacher_logprob")
    if tokens is None or s_lp is None or t_lp is None:
        return None
    id_to_text = id_to_text or {}
    cols = {k: _seq(row, k) for k in ("implicit_reward", "reverse_kl", "forward_kl", "student_entropy",
                                     "teacher_entropy", "teacher_topk_ids", "teacher_topk_logprobs",
                                     "student_topk_ids", "student_topk_logprobs")}

    def at(key, t):
        col = cols[key]
        return col[t] if col is not None and t < len(col) else None

    def alternatives(ids, logps):
        if ids is None or logps is None:
            return None
        out = []
        for i, lp in zip(list(ids)[:top], list(logps)[:top]):
            if i is None or i < 0:
                continue  # a masked top-k slot (s2dlab.core.scoring.MASKED_TOPK_ID)
            i = int(i)
            out.append((id_to_text.get(i, f"#{i}"), math.exp(lp) if finite(lp) is not None else None))
        return out

    def prob(lps, t):
        lp = finite(lps[t]) if t < len(lps) else None
        return None if lp is None else math.exp(lp)

    return [{
        "student_prob": prob(s_lp, t),
        "teacher_prob": prob(t_lp, t),
        "implicit_reward": at("implicit_reward", t),
        "reverse_kl": at("reverse_kl", t),
        "forward_kl": at("forward_kl", t),
        "student_entropy": at("student_entropy", t),
        "teacher_entropy": at("teacher_entropy", t),
        "teacher_top": alternatives(at("teacher_topk_ids", t), at("teacher_topk_logprobs", t)),
        "student_top": alternatives(at("student_topk_ids", t), at("student_topk_logprobs", t)),
    } for t in range(len(tokens))]


def vocab_from_rows(df) -> dict[int, str]:
    """id -> token text gathered from the `token_ids` / `tokens` columns of a DataFrame of rollout rows (names
    top-k ids when no tokenizer is at hand)."""
    vocab: dict[int, str] = {}
    if df is None or df.empty or "token_ids" not in df or "tokens" not in df:
        return vocab
    for ids, toks in zip(df["token_ids"], df["tokens"]):
        if ids is None or toks is None:
            continue
        for i, t in zip(ids, toks):
            vocab.setdefault(int(i), t)
    return vocab


def rollout_heatmap_html(row: Mapping, *, value: str = "implicit_reward", vmax: float | None = None,
                         title: str | None = None, id_to_text: Mapping[int, str] | None = None,
                         cmap: str | Scale | None = None, max_height: int | None = None) -> str:
    """`token_heatmap_html` for a rollout row (a dict or a DataFrame row): its stored display spans, coloured by
    `value` (default the implicit reward) on that quantity's scale (`scale_for(value)`, unless `cmap` names
    another), the row's scores in the tooltip."""
    tokens = [str(t) for t in (_seq(row, "tokens") or [])]
    vals = _seq(row, value)
    if vals is None:
        vals = [None] * len(tokens)
    label = IMPLICIT_REWARD_LABEL if value == "implicit_reward" else value.replace("_", " ")
    return token_heatmap_html(tokens, vals, spans=row_spans(row), vmax=vmax, title=title,
                              per_token_info=row_token_info(row, id_to_text), cmap=cmap or scale_for(value),
                              label=label, max_height=max_height)
