"""Figures shared by the notebooks and the app: a per-token heatmap as plain HTML, and plotly figures.

Nothing here imports gradio or IPython. The heatmap is a string of HTML that works in Jupyter
(`IPython.display.HTML(html)`), in Gradio (`gr.HTML(html)`) and in a saved file alike; the figures are
`plotly.graph_objects.Figure`s.

    from s2dlab import runs, viz
    row = runs.open_run("runs/demo").rollouts("opd").iloc[0]
    html = viz.rollout_heatmap_html(row)          # coloured by implicit reward, hover for every number
    fig = viz.per_token_figure(row)                # reverse KL and implicit reward per position

Colours follow DESIGN.md's sign convention for the implicit reward `log pT(y_t) - log pS(y_t)`: on the default
diverging scale ("RdBu") red is negative (the teacher likes the student's token less than the student does),
blue positive, and 0 is the neutral near-white centre.
"""

from __future__ import annotations

import html as _html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "token_heatmap_html",
    "rollout_heatmap_html",
    "row_token_info",
    "token_display_bytes",
    "value_color",
    "per_token_figure",
    "stage_curves_figure",
    "results_table",
    "results_bar_figure",
    "c1_figure",
    "c2_histogram_figure",
    "quadrant_figure",
    "CURVE_METRICS",
]

IMPLICIT_REWARD_LABEL = "implicit reward  log pT(y_t) − log pS(y_t)"
_LEVELS = 100  # colour steps on each side of 0 is plenty for the eye, and keeps the lookup table small
_NAN_COLOR = "#d9d9d9"

# --------------------------------------------------------------------------------------------------------------
# colours


def _parse_color(c: str) -> tuple[int, int, int]:
    c = c.strip()
    if c.startswith("#"):
        r, g, b = pcolors.hex_to_rgb(c)
        return int(r), int(g), int(b)
    nums = re.findall(r"[\d.]+", c)
    return tuple(int(round(float(x))) for x in nums[:3])  # type: ignore[return-value]


_SCALES: dict[str, list[tuple[float, tuple[int, int, int]]]] = {}
_TABLES: dict[str, list[tuple[str, str]]] = {}


def _scale(cmap: str) -> list[tuple[float, tuple[int, int, int]]]:
    if cmap not in _SCALES:
        try:
            stops = pcolors.get_colorscale(cmap)
        except Exception as e:  # plotly raises PlotlyError for unknown names
            raise ValueError(f"unknown colour scale {cmap!r}: use a plotly diverging scale such as 'RdBu'") from e
        _SCALES[cmap] = [(float(pos), _parse_color(col)) for pos, col in stops]
    return _SCALES[cmap]


def _interp(cmap: str, t: float) -> tuple[int, int, int]:
    stops = _scale(cmap)
    t = min(1.0, max(0.0, t))
    for (p0, c0), (p1, c1) in zip(stops, stops[1:]):
        if t <= p1:
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            return tuple(int(round(a + f * (b - a))) for a, b in zip(c0, c1))  # type: ignore[return-value]
    return stops[-1][1]


def _table(cmap: str) -> list[tuple[str, str]]:
    """(background, text colour) for levels -_LEVELS.._LEVELS, index level + _LEVELS."""
    if cmap not in _TABLES:
        rows = []
        for level in range(-_LEVELS, _LEVELS + 1):
            r, g, b = _interp(cmap, 0.5 + 0.5 * level / _LEVELS)
            luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
            rows.append((f"#{r:02x}{g:02x}{b:02x}", "#fff" if luminance < 120 else "#111"))
        _TABLES[cmap] = rows
    return _TABLES[cmap]


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def value_color(value: float | None, vmax: float, cmap: str = "RdBu") -> str:
    """Background colour of `value` on a diverging scale centred at 0 and clipped to [-vmax, vmax]."""
    return _color_pair(_finite(value), vmax, cmap)[0]


def _color_pair(v: float | None, vmax: float, cmap: str) -> tuple[str, str]:
    if v is None:
        return _NAN_COLOR, "#111"
    level = int(round(max(-1.0, min(1.0, v / vmax)) * _LEVELS))
    return _table(cmap)[level + _LEVELS]


def _auto_vmax(values: Sequence[float | None]) -> float:
    finite = [abs(v) for v in values if v is not None]
    m = max(finite, default=0.0)
    return m if m > 0 else 1.0


# --------------------------------------------------------------------------------------------------------------
# the token heatmap


_CSS = """
.s2d-heatmap{position:relative;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;
 line-height:1.9;color:#111}
.s2d-heatmap:hover{z-index:1000}
.s2d-heatmap .s2d-title{font-weight:600;margin-bottom:4px}
.s2d-heatmap .s2d-legend{display:flex;align-items:center;gap:6px;font-size:11px;margin:2px 0 6px 0;color:#333}
.s2d-heatmap .s2d-bar{display:inline-block;width:160px;height:10px;border:1px solid #999;border-radius:2px}
.s2d-heatmap .s2d-tokens{white-space:pre-wrap;word-break:break-all;background:#fff;padding:4px;border:1px solid #e3e3e3;
 border-radius:4px}
.s2d-heatmap .s2d-tok{position:relative;border-radius:2px;padding:1px 0;cursor:default}
.s2d-heatmap .s2d-tok:hover{outline:2px solid #000;z-index:5}
.s2d-heatmap .s2d-nl::before{content:"\\21B5";opacity:.55}
.s2d-heatmap .s2d-empty::before{content:"\\2205";opacity:.55}
.s2d-heatmap .s2d-tok:hover::after{position:fixed;margin-top:1.5em;margin-left:-1ch;z-index:1000;pointer-events:none;
 white-space:pre;background:#222;color:#fff;font-size:11px;line-height:1.45;padding:4px 7px;border-radius:4px;
 box-shadow:0 2px 6px rgba(0,0,0,.3);content:"pos " attr(data-i) "   value " attr(data-v)}
.s2d-heatmap .s2d-tok[data-ps]:hover::after{content:"pos " attr(data-i) "   implicit reward " attr(data-r)
 "\\A p student " attr(data-ps) "   p teacher " attr(data-pt)
 "\\A reverse KL " attr(data-rkl) "   forward KL " attr(data-fkl)
 "\\A entropy student " attr(data-hs) "   teacher " attr(data-ht)
 "\\A teacher top: " attr(data-ttop) "\\A student top: " attr(data-stop)}
"""

# per_token_info key -> (data attribute, number format)
_INFO_ATTRS = [
    ("student_prob", "ps", "{:.3f}"),
    ("teacher_prob", "pt", "{:.3f}"),
    ("implicit_reward", "r", "{:+.3f}"),
    ("reverse_kl", "rkl", "{:.3f}"),
    ("forward_kl", "fkl", "{:.3f}"),
    ("student_entropy", "hs", "{:.3f}"),
    ("teacher_entropy", "ht", "{:.3f}"),
]


def _visible(text: str) -> str:
    """A token's text for a one-line label: newline, tab and blank made visible."""
    if text == "":
        return "∅"
    return text.replace("\n", "↵").replace("\t", "⇥").replace(" ", "␣")


def _fmt(fmt: str, v: Any) -> str:
    f = _finite(v)
    return "n/a" if f is None else fmt.format(f)


def _fmt_top(top: Any) -> str:
    if not top:
        return "–"
    parts = []
    for item in top:
        tok, p = (item.get("token"), item.get("prob")) if isinstance(item, Mapping) else item
        parts.append(f"{_visible(str(tok))} {_fmt('{:.2f}', p)}")
    return ", ".join(parts)


def _group_tokens(tokens: Sequence[str | bytes]) -> list[tuple[int, int, str]]:
    """(first, last + 1, text) spans. `str` tokens stand alone; adjacent `bytes` tokens are joined until they
    decode as UTF-8, so a character split across byte-level tokens is never cut in two."""
    groups: list[tuple[int, int, str]] = []
    pending = b""
    start = 0
    for i, tok in enumerate(tokens):
        if isinstance(tok, (bytes, bytearray)):
            if not pending:
                start = i
            pending += bytes(tok)
            try:
                text = pending.decode("utf-8")
            except UnicodeDecodeError as e:
                # Keep waiting only while the error is an unfinished character at the end.
                if e.reason == "unexpected end of data" and len(pending) - e.start < 4:
                    continue
                text = pending.decode("utf-8", errors="replace")
            groups.append((start, i + 1, text))
            pending = b""
        else:
            if pending:
                groups.append((start, i, pending.decode("utf-8", errors="replace")))
                pending = b""
            groups.append((i, i + 1, str(tok)))
    if pending:
        groups.append((start, len(tokens), pending.decode("utf-8", errors="replace")))
    return groups


def token_heatmap_html(tokens: Sequence[str | bytes], values: Sequence[float | None], *, vmax: float | None = None,
                       title: str | None = None, per_token_info: Sequence[Mapping] | None = None,
                       cmap: str = "RdBu", label: str = "value", max_height: int | None = None) -> str:
    """Tokens as coloured spans on a diverging scale centred at 0, with a colour-bar legend; returns HTML.

    tokens: each token's text. `bytes` tokens (byte-level pieces, see `token_display_bytes`) are joined with
        their neighbours until they form whole UTF-8 characters; such a span shows the mean value of its tokens.
    values: one number per token (None/NaN: grey). Colours saturate at `vmax` (default: the largest |value|).
    per_token_info: optional, one dict per token with any of `student_prob`, `teacher_prob`, `implicit_reward`,
        `reverse_kl`, `forward_kl`, `student_entropy`, `teacher_entropy` and `teacher_top` / `student_top`
        (lists of `(token, prob)`); they become `data-*` attributes shown by a CSS tooltip on hover (no script,
        so it works where scripts do not run, such as Gradio's `gr.HTML`).
    label: what the values are, written next to the colour bar.

    All text is HTML-escaped (a completion holding `<script>` shows as text); newlines break lines and are marked
    with ↵. Raises ValueError when `tokens`, `values` and `per_token_info` differ in length.
    """
    n = len(tokens)
    if len(values) != n:
        raise ValueError(f"tokens and values differ in length: {n} tokens, {len(values)} values")
    if per_token_info is not None and len(per_token_info) != n:
        raise ValueError(f"tokens and per_token_info differ in length: {n} tokens, {len(per_token_info)} entries")
    vals = [_finite(v) for v in values]
    if vmax is None:
        vmax = _auto_vmax(vals)
    elif not (vmax > 0 and math.isfinite(vmax)):
        raise ValueError(f"vmax must be a positive number, got {vmax}")
    esc = _html.escape

    spans = []
    for first, last, text in _group_tokens(tokens):
        members = range(first, last)
        group_vals = [vals[i] for i in members if vals[i] is not None]
        v = sum(group_vals) / len(group_vals) if group_vals else None
        bg, fg = _color_pair(v, vmax, cmap)
        cls = "s2d-tok"
        if text == "":
            cls += " s2d-empty"
        elif text.strip(" \t\r") == "\n" or (text.endswith("\n") and not text.strip()):
            cls += " s2d-nl"
        pos = str(first) if last - first == 1 else f"{first}–{last - 1}"
        # formatted numbers ("+0.123", "n/a") hold nothing to escape; token texts and alternatives are escaped
        attrs = [f'class="{cls}"', f'style="background:{bg};color:{fg}"', f'data-i="{pos}"',
                 f'data-v="{" | ".join(_fmt("{:+.3f}", vals[i]) for i in members)}"']
        if per_token_info is not None:
            infos = [per_token_info[i] or {} for i in members]
            for key, attr, fmt in _INFO_ATTRS:
                attrs.append(f'data-{attr}="{" | ".join(_fmt(fmt, info.get(key)) for info in infos)}"')
            for key, attr in (("teacher_top", "ttop"), ("student_top", "stop")):
                attrs.append(f'data-{attr}="{esc(" | ".join(_fmt_top(info.get(key)) for info in infos))}"')
        spans.append(f"<span {' '.join(attrs)}>{esc(text)}</span>")

    stops = ", ".join(_table(cmap)[i][0] for i in range(0, 2 * _LEVELS + 1, _LEVELS // 5))
    legend = (f'<div class="s2d-legend"><span>{esc(label)}</span><span>−{vmax:.3g}</span>'
              f'<span class="s2d-bar" style="background:linear-gradient(to right, {stops})"></span>'
              f'<span>+{vmax:.3g}</span><span>(0 = neutral; {n} tokens)</span></div>')
    head = f'<div class="s2d-title">{esc(title)}</div>' if title else ""
    box_style = f' style="max-height:{int(max_height)}px;overflow:auto"' if max_height else ""
    return (f'<div class="s2d-heatmap" data-n="{n}"><style>{_CSS}</style>{head}{legend}'
            f'<div class="s2d-tokens"{box_style}>{"".join(spans)}</div></div>')


# --------------------------------------------------------------------------------------------------------------
# rows of the run store -> heatmap inputs


def _seq(row: Mapping | pd.Series, key: str) -> list | None:
    v = row.get(key) if hasattr(row, "get") else None
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return list(v)


def token_display_bytes(tokenizer, token_ids: Sequence[int]) -> list[str | bytes]:
    """Each token as the heatmap should receive it: raw bytes for byte-level BPE tokenizers (so characters split
    over several tokens are rejoined), otherwise the token's own decoded text."""
    from tokenizers import decoders  # a dependency of transformers; imported here to keep viz light

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and isinstance(backend.decoder, decoders.ByteLevel):
        inverse = {c: b for b, c in _bytes_to_unicode().items()}
        pieces = tokenizer.convert_ids_to_tokens(list(token_ids))
        special = set(getattr(tokenizer, "all_special_tokens", []))
        out: list[str | bytes] = []
        for piece in pieces:
            if piece in special or any(ch not in inverse for ch in piece):
                out.append(piece)
            else:
                out.append(bytes(inverse[ch] for ch in piece))
        return out
    return [tokenizer.decode([int(t)]) for t in token_ids]


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's reversible byte <-> printable-character map used by byte-level BPE (Qwen, Llama 3, GPT-2).
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def row_token_info(row: Mapping | pd.Series, id_to_text: Mapping[int, str] | None = None,
                   top: int = 3) -> list[dict] | None:
    """Per-token info dicts for `token_heatmap_html` from a rollout row of the run store (None if not scored).

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
        for i, lp in zip(ids[:top], logps[:top]):
            if i is None or i < 0:
                continue
            i = int(i)
            out.append((id_to_text.get(i, f"#{i}"), math.exp(lp) if lp is not None and math.isfinite(lp) else None))
        return out

    infos = []
    for t in range(len(tokens)):
        sl, tl = (_finite(s_lp[t]) if t < len(s_lp) else None), (_finite(t_lp[t]) if t < len(t_lp) else None)
        infos.append({
            "student_prob": None if sl is None else math.exp(sl),
            "teacher_prob": None if tl is None else math.exp(tl),
            "implicit_reward": at("implicit_reward", t),
            "reverse_kl": at("reverse_kl", t),
            "forward_kl": at("forward_kl", t),
            "student_entropy": at("student_entropy", t),
            "teacher_entropy": at("teacher_entropy", t),
            "teacher_top": alternatives(at("teacher_topk_ids", t), at("teacher_topk_logprobs", t)),
            "student_top": alternatives(at("student_topk_ids", t), at("student_topk_logprobs", t)),
        })
    return infos


def vocab_from_rows(df: pd.DataFrame) -> dict[int, str]:
    """id -> token text gathered from the `token_ids` / `tokens` columns of rollout rows (names top-k ids when no
    tokenizer is at hand)."""
    vocab: dict[int, str] = {}
    if df is None or df.empty or "token_ids" not in df or "tokens" not in df:
        return vocab
    for ids, toks in zip(df["token_ids"], df["tokens"]):
        if ids is None or toks is None:
            continue
        for i, t in zip(ids, toks):
            vocab.setdefault(int(i), t)
    return vocab


def rollout_heatmap_html(row: Mapping | pd.Series, *, value: str = "implicit_reward", vmax: float | None = None,
                         title: str | None = None, id_to_text: Mapping[int, str] | None = None,
                         tokens: Sequence[str | bytes] | None = None, cmap: str = "RdBu",
                         max_height: int | None = None) -> str:
    """`token_heatmap_html` for a rollout row: coloured by `value` (default the implicit reward), hover info
    from the row's scores. `tokens` overrides the row's token strings (e.g. `token_display_bytes` output)."""
    toks = list(tokens) if tokens is not None else (_seq(row, "tokens") or [])
    vals = _seq(row, value)
    if vals is None:
        vals = [None] * len(toks)
    label = IMPLICIT_REWARD_LABEL if value == "implicit_reward" else value.replace("_", " ")
    return token_heatmap_html(toks, vals, vmax=vmax, title=title, per_token_info=row_token_info(row, id_to_text),
                              cmap=cmap, label=label, max_height=max_height)


# --------------------------------------------------------------------------------------------------------------
# per-position chart


def _axis_labels(tokens: Sequence[str | bytes]) -> list[str]:
    out = []
    for t in tokens:
        text = t.decode("utf-8", errors="replace") if isinstance(t, (bytes, bytearray)) else str(t)
        # plotly reads a small HTML subset in labels; escaping makes every token literal text
        out.append(_html.escape(_visible(text)))
    return out


def per_token_figure(row: Mapping | pd.Series, *, max_tick_labels: int = 120, cmap: str = "RdBu",
                     vmax: float | None = None, height: int = 380) -> go.Figure:
    """Reverse KL (top) and implicit reward (bottom, coloured like the heatmap) at each completion position.

    The x axis is the token position; tokens label the ticks when there are at most `max_tick_labels` of them,
    and always appear on hover. Long rollouts (> 2,048 tokens) draw lines instead of bars to stay light.
    """
    tokens = _seq(row, "tokens") or []
    n = len(tokens)
    labels = _axis_labels(tokens)
    x = list(range(n))

    def column(key):
        col = _seq(row, key)
        if col is None:
            return [None] * n
        if len(col) != n:
            raise ValueError(f"{key} has {len(col)} entries for {n} tokens")
        return [_finite(v) for v in col]

    rkl, reward = column("reverse_kl"), column("implicit_reward")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("reverse KL(pS‖pT) per position", "implicit reward log pT − log pS"))
    hover = "pos %{x}  token %{customdata}<br>%{fullData.name} %{y:.4f}<extra></extra>"
    vmax = vmax if vmax is not None else _auto_vmax(reward)
    colors = [_color_pair(v, vmax, cmap)[0] for v in reward]
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


# Metric names in display order: s2dlab's probes first, then TRL's logged names (GRPOTrainer, SFTTrainer,
# DistillationTrainer). Whichever exist in metrics.jsonl are drawn.
CURVE_METRICS = [
    "probe/accuracy",
    "eval/accuracy",
    "accuracy",
    "reward",
    "rewards/accuracy_reward/mean",
    "probe/mean_reverse_kl",
    "probe/mean_forward_kl",
    "kl",
    "loss",
    "mean_token_accuracy",
    "entropy",
    "completions/mean_length",
]


def _step_of(rec: Mapping, i: int) -> float:
    for key in ("step", "global_step"):
        v = _finite(rec.get(key))
        if v is not None:
            return v
    return float(i)


def stage_curves_figure(run, metrics: Sequence[str] | None = None, stages: Sequence[str] | None = None,
                        height_per_metric: int = 180) -> go.Figure:
    """One panel per metric; stages laid end to end on a shared step axis, in workflow order, with their names.

    `run`: an `s2dlab.runs.Run` or a mapping `stage -> list of metrics records`. `metrics` defaults to the names
    in `CURVE_METRICS` that appear in any stage.
    """
    if isinstance(run, Mapping):
        records = {s: list(r) for s, r in run.items()}
        order = list(stages) if stages is not None else list(records)
    else:
        order = list(stages) if stages is not None else run.stages()
        records = {s: run.metrics(s) for s in order}
    records = {s: records.get(s, []) for s in order}
    present = {k for recs in records.values() for rec in recs for k, v in rec.items() if _finite(v) is not None}
    names = [m for m in (metrics if metrics is not None else CURVE_METRICS) if m in present]
    if not names:
        fig = go.Figure()
        fig.add_annotation(text="no metrics logged yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
        return fig

    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=min(0.08, 0.3 / len(names)),
                        subplot_titles=names)
    palette = pcolors.qualitative.D3
    offset = 0.0
    for si, stage in enumerate(s for s in order if records[s]):
        recs = records[stage]
        steps = [_step_of(r, i) for i, r in enumerate(recs)]
        base = offset - min(steps)
        color = palette[si % len(palette)]
        shown = False
        for mi, name in enumerate(names, start=1):
            pts = [(base + s, _finite(r.get(name))) for s, r in zip(steps, recs)]
            pts = [(x, y) for x, y in pts if y is not None]
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
# results.json


ARM_DISPLAY_ORDER = ["workflow", "direct_grpo", "raw_teacher", "no_warmup", "no_opd", "gold_sft"]


def _flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        elif isinstance(v, (list, tuple)):
            continue  # per-seed lists and figure data stay out of the table
        else:
            out[key] = v
    return out


def results_table(results: Mapping | None) -> pd.DataFrame:
    """Arms x metrics from results.json's `"arms"` (nested dicts flattened to `a/b` columns), workflow first."""
    arms = (results or {}).get("arms") or {}
    if not isinstance(arms, Mapping) or not arms:
        return pd.DataFrame(index=pd.Index([], name="arm"))
    order = [a for a in ARM_DISPLAY_ORDER if a in arms] + sorted(a for a in arms if a not in ARM_DISPLAY_ORDER)
    rows = {arm: _flatten(arms[arm]) if isinstance(arms[arm], Mapping) else {"value": arms[arm]} for arm in order}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "arm"
    return df


def _pick_metric(df: pd.DataFrame, metric: str | None) -> str | None:
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not _is_spread(c)]
    if metric is not None:
        return metric if metric in df.columns else None
    for pref in ("accuracy",):
        if pref in numeric:
            return pref
    for c in numeric:
        if "accuracy" in c or "avg@" in c:
            return c
    return numeric[0] if numeric else None


def _is_spread(col: str) -> bool:
    return col.endswith(("_std", "/std", "_sd", "_sem", "/sem", "_stderr", "_n"))


def results_bar_figure(results: Mapping | None, metric: str | None = None) -> go.Figure:
    """Bars of one metric per arm (default `accuracy`), with error bars from a `<metric>_sd` column if present."""
    df = results_table(results)
    col = _pick_metric(df, metric) if not df.empty else None
    fig = go.Figure()
    if col is None:
        fig.add_annotation(text="no results yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
        return fig
    # spread as written by s2dlab.pipeline.aggregate (`<metric>_sd` over seeds) or common alternatives
    err = next((df[c] for c in (f"{col}_sd", f"{col}_std", f"{col}/std", f"{col}_sem", f"{col}/sem") if c in df),
               None)
    highlight = {"workflow": "#2166ac", "direct_grpo": "#b2182b"}
    fig.add_trace(go.Bar(x=list(df.index), y=df[col], marker_color=[highlight.get(a, "#969696") for a in df.index],
                         error_y=None if err is None else dict(type="data", array=list(err)),
                         text=[None if _finite(v) is None else f"{v:.3g}" for v in df[col]], textposition="outside",
                         hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    finite = [v for v in map(_finite, df[col]) if v is not None]
    fig.update_layout(title=f"{col} by arm", yaxis_title=col, template="plotly_white", height=360,
                      margin=dict(l=50, r=20, t=50, b=40))
    if finite and min(finite) >= 0:  # room above the tallest bar for its label
        fig.update_yaxes(range=[0, max(max(finite), 1e-9) * 1.2])
    return fig


# --------------------------------------------------------------------------------------------------------------
# C1 / C2 diagnostics (the measures themselves live in s2dlab.diagnostics; these only draw them)


def _diagnostics():
    try:
        from s2dlab import diagnostics
    except ImportError:
        return None
    return diagnostics


def _rows(rows) -> list[dict]:
    if rows is None:
        return []
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records")
    return [dict(r) for r in rows]


def _empty_figure(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=200, template="plotly_white", xaxis_visible=False, yaxis_visible=False)
    return fig


def c1_figure(rows, x: str = "sum_implicit_reward", y: str = "correct",
              title: str = "C1: does the dense reward rank correct rollouts first?") -> go.Figure:
    """Each graded rollout at (its summed implicit reward, correct or not), jittered vertically, split at 0.

    A reward-shaped teacher puts correct rollouts to the right of incorrect ones; the title gives the AUROC
    (`s2dlab.diagnostics.c1_separation`) and the share of rollouts in the two agreeing quadrants.
    """
    records = [r for r in _rows(rows) if _finite(r.get(y)) is not None]
    xs, ys = [], []
    for r in records:
        v = _finite(r.get(x))
        if v is None and x == "sum_implicit_reward" and r.get("implicit_reward") is not None:
            v = _finite(sum(_finite(t) or 0.0 for t in r["implicit_reward"]))
        if v is not None:
            xs.append(v)
            ys.append(float(r[y]))
    if not xs:
        return _empty_figure("no graded rollouts for C1")
    fig = go.Figure()
    for label, flag, color in (("correct", 1.0, "#2166ac"), ("incorrect", 0.0, "#b2182b")):
        idx = [i for i, v in enumerate(ys) if (v > 0.5) == (flag > 0.5)]
        # deterministic jitter, so the same data always draws the same picture
        jit = [flag + ((i * 0.6180339887) % 1.0 - 0.5) * 0.5 for i in idx]
        fig.add_trace(go.Scatter(x=[xs[i] for i in idx], y=jit, mode="markers", name=label,
                                 marker=dict(size=7, opacity=0.7, color=color),
                                 hovertemplate=label + ": summed implicit reward %{x:.3f}<extra></extra>"))
    fig.add_vline(x=0, line_width=1, line_color="#666")
    fig.add_hline(y=0.5, line_width=1, line_color="#666")
    agree = sum(1 for xv, yv in zip(xs, ys) if (xv > 0) == (yv > 0.5))
    sub = f"agreeing quadrants: {100 * agree / len(xs):.0f}% of {len(xs)}"
    diag = _diagnostics()
    if diag is not None:
        au = diag.auroc(xs, [v > 0.5 for v in ys])
        if au is not None:
            sub = f"AUROC {au:.2f}; " + sub
    fig.update_layout(title=f"{title}<br><sup>{sub}</sup>", xaxis_title=x.replace("_", " "), template="plotly_white",
                      height=360, margin=dict(l=60, r=20, t=70, b=40))
    fig.update_yaxes(tickvals=[0, 1], ticktext=["incorrect", "correct"], range=[-0.5, 1.5])
    return fig


def _bin_labels(edges: Sequence[float]) -> list[str]:
    # the last bin is open-ended (diagnostics stretches its edge to the largest value), so "≥ a" keeps the
    # categories of different series identical
    return [f"[{a:g}, {b:g})" if i < len(edges) - 2 else f"≥ {a:g}" for i, (a, b) in enumerate(zip(edges, edges[1:]))]


# the order C2 snapshots are drawn in (results.json sorts its keys); others follow alphabetically
_C2_ORDER = ["before_warmup", "after_warmup", "opd_start", "opd_end", "raw_teacher_before_warmup"]


def _histograms(c2: Any) -> dict[str, dict]:
    """label -> {"edges", "counts"} from c2_closeness output(s), pre-binned dicts, or raw value lists."""
    if not isinstance(c2, Mapping):
        return {}
    if "histogram" in c2 or ("edges" in c2 and "counts" in c2):
        c2 = {"student": c2}
    src = c2.get("histograms", c2)
    if not isinstance(src, Mapping):
        return {}
    out: dict[str, dict] = {}
    raw: dict[str, list[float]] = {}
    for k, v in src.items():
        if isinstance(v, Mapping) and isinstance(v.get("histogram"), Mapping):
            v = v["histogram"]
        if isinstance(v, Mapping) and "counts" in v and ("edges" in v or "bins" in v):
            out[str(k)] = {"edges": list(v.get("edges", v.get("bins"))), "counts": list(v["counts"])}
        elif isinstance(v, (list, tuple)) and v and all(x is None or _finite(x) is not None for x in v):
            raw[str(k)] = [float(x) for x in v if x is not None]
    if raw:
        diag = _diagnostics()
        edges = list(diag.C2_HISTOGRAM_EDGES) if diag is not None else [0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0,
                                                                           10.0]
        for k, vals in raw.items():
            vals = [max(0.0, v) for v in vals]
            e = edges[:-1] + [max(edges[-1], max(vals, default=0.0))]
            counts = [0] * (len(e) - 1)
            for v in vals:
                for i in range(len(counts)):
                    if v < e[i + 1] or i == len(counts) - 1:
                        counts[i] += 1
                        break
            out[k] = {"edges": e, "counts": counts}
    return out


def c2_histogram_figure(c2: Mapping | None, *,
                        title: str = "C2: is the student inside the teacher's support?") -> go.Figure:
    """Per-token reverse KL(pS‖pT) on the student's own rollouts, as share of tokens per bin, one bar group per
    label (e.g. before / after the forward-KL warmup).

    `c2`: `s2dlab.diagnostics.c2_closeness(rows)` output, or a mapping `label -> that output`, or
    `label -> {"edges", "counts"}`, or `label -> raw per-token values` (binned with the same edges); a
    `"histograms"` key holding such a mapping also works. Mass in the left bins means the student rarely
    samples where the teacher disagrees.
    """
    series = _histograms(c2)
    if not series:
        return _empty_figure("no C2 data")
    order = [k for k in _C2_ORDER if k in series] + [k for k in series if k not in _C2_ORDER]
    fig = go.Figure()
    palette = pcolors.qualitative.D3
    for i, key in enumerate(order):
        h, name = series[key], key.replace("_", " ")
        total = max(1, sum(h["counts"]))
        labels = _bin_labels(h["edges"])
        fig.add_trace(go.Bar(x=labels, y=[c / total for c in h["counts"]], name=name,
                             marker_color=palette[i % len(palette)], customdata=h["counts"],
                             hovertemplate=name + " %{x}: %{y:.1%} (%{customdata} tokens)<extra></extra>"))
    fig.update_layout(barmode="group", title=title, xaxis_title="per-token reverse KL (nats)",
                      yaxis_title="share of tokens", yaxis_tickformat=".0%", template="plotly_white", height=340,
                      margin=dict(l=60, r=20, t=50, b=60))
    return fig


_QUADRANT_TEXT = {
    "low_entropy_low_divergence": "confident, agrees",
    "low_entropy_high_divergence": "confident, teacher disagrees",
    "high_entropy_low_divergence": "unsure, agrees",
    "high_entropy_high_divergence": "unsure, teacher disagrees",
}


def _token_quadrants(rows, **kw) -> dict | None:
    diag = _diagnostics()
    if diag is None:
        return None
    try:
        return diag.token_quadrants(rows, **kw)
    except (KeyError, TypeError, ValueError):
        return None


def quadrant_figure(rows_or_quadrants, *, max_points: int = 5000, cmap: str = "RdBu",
                    title: str = "Where the dense signal sits: student entropy x divergence") -> go.Figure:
    """Tokens by student entropy (x) and per-token reverse KL (y), coloured by implicit reward, split at the
    thresholds of `s2dlab.diagnostics.token_quadrants` (medians by default); each quadrant is annotated with its
    share of tokens and of |implicit reward|.

    Accepts rollout rows (DataFrame or list of dicts with per-token columns), or a `token_quadrants` result (drawn
    as a 2 x 2 table of shares). At most `max_points` tokens are plotted (evenly thinned); the shares use all.
    """
    if isinstance(rows_or_quadrants, Mapping) and "quadrants" in rows_or_quadrants:
        return _quadrant_table(rows_or_quadrants, title)
    records = _rows(rows_or_quadrants)
    hs, kl, rw = [], [], []
    for r in records:
        cols = [r.get(k) for k in ("student_entropy", "reverse_kl", "implicit_reward")]
        if any(c is None or (isinstance(c, float) and math.isnan(c)) for c in cols):
            continue
        for a, b, c in zip(*cols):
            if None not in (_finite(a), _finite(b), _finite(c)):
                hs.append(float(a))
                kl.append(float(b))
                rw.append(float(c))
    if not hs:
        return _empty_figure("no scored tokens")
    q = _token_quadrants([{"student_entropy": hs, "reverse_kl": kl, "implicit_reward": rw}])
    if q is not None:
        ht, dt = q["entropy_threshold"], q["divergence_threshold"]
    else:
        ht, dt = sorted(hs)[len(hs) // 2], sorted(kl)[len(kl) // 2]
    stride = max(1, math.ceil(len(hs) / max_points))
    idx = range(0, len(hs), stride)
    vmax = _auto_vmax(rw)
    fig = go.Figure(go.Scattergl(
        x=[hs[i] for i in idx], y=[kl[i] for i in idx], mode="markers",
        marker=dict(size=5, opacity=0.75, color=[_color_pair(rw[i], vmax, cmap)[0] for i in idx],
                    line=dict(width=0.3, color="#555")),
        customdata=[rw[i] for i in idx], name="tokens",
        hovertemplate="entropy %{x:.3f}<br>reverse KL %{y:.3f}<br>implicit reward %{customdata:+.3f}<extra></extra>"))
    fig.add_vline(x=ht, line_width=1, line_dash="dot", line_color="#666")
    fig.add_hline(y=dt, line_width=1, line_dash="dot", line_color="#666")
    if q is not None:
        for name, (ax, ay) in {"low_entropy_low_divergence": (0.02, 0.02), "low_entropy_high_divergence": (0.02, 0.98),
                               "high_entropy_low_divergence": (0.98, 0.02),
                               "high_entropy_high_divergence": (0.98, 0.98)}.items():
            d = q["quadrants"][name]
            share = d["abs_reward_share"]
            fig.add_annotation(x=ax, y=ay, xref="paper", yref="paper", showarrow=False,
                               xanchor="left" if ax < 0.5 else "right", yanchor="bottom" if ay < 0.5 else "top",
                               text=(f"{_QUADRANT_TEXT[name]}<br>{100 * (d['token_share'] or 0):.0f}% of tokens, "
                                     f"{'n/a' if share is None else f'{100 * share:.0f}%'} of |reward|"),
                               font=dict(size=10, color="#333"), bgcolor="rgba(255,255,255,0.7)")
    fig.update_layout(title=title, xaxis_title="student entropy (nats)", yaxis_title="reverse KL(pS‖pT) (nats)",
                      template="plotly_white", height=400, margin=dict(l=60, r=20, t=50, b=40), showlegend=False)
    return fig


def _quadrant_table(q: Mapping, title: str) -> go.Figure:
    quads = q["quadrants"]
    z, text = [], []
    for div in ("high", "low"):
        zr, tr = [], []
        for ent in ("low", "high"):
            d = quads.get(f"{ent}_entropy_{div}_divergence", {})
            share = d.get("abs_reward_share")
            zr.append(share if share is not None else 0.0)
            tr.append(f"{_QUADRANT_TEXT[f'{ent}_entropy_{div}_divergence']}<br>"
                      f"{100 * (d.get('token_share') or 0):.0f}% of tokens<br>"
                      f"{'n/a' if share is None else f'{100 * share:.0f}%'} of |reward|")
        z.append(zr)
        text.append(tr)
    fig = go.Figure(go.Heatmap(z=z, x=["low entropy", "high entropy"], y=["high divergence", "low divergence"],
                               text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               colorbar=dict(title="|reward| share"), hoverinfo="skip"))
    fig.update_layout(title=title, template="plotly_white", height=340, margin=dict(l=60, r=20, t=50, b=40))
    return fig
