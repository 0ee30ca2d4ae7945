"""Figures and the token heatmap: escaping, colours by sign, display spans, whitespace, lengths, hover data."""

import html as htmllib
import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from s2dlab import viz
from s2dlab.viz import Span


def spans(html):
    return re.findall(r'<span class="s2d-tok[^"]*"[^>]*>.*?</span>(?=<span class="s2d-tok|</div>)', html, flags=re.S)


def span_text(span):
    """What the page shows for a span: its text without the markup (newline markers are CSS, not text)."""
    return htmllib.unescape(re.sub(r"<[^>]+>", "", span))


def tip(span):
    return htmllib.unescape(re.search(r'data-tip="([^"]*)"', span).group(1))


def background(span):
    return re.search(r"background:(#[0-9a-f]{6})", span).group(1)


def scored_row(tokens):
    n = len(tokens)
    return {
        "tokens": tokens,
        "token_ids": list(range(10, 10 + n)),
        "student_logprob": [-0.5] * n,
        "teacher_logprob": [-0.5 + 0.2 * (i - n / 2) for i in range(n)],
        "implicit_reward": [0.2 * (i - n / 2) for i in range(n)],
        "reverse_kl": [0.1 * i for i in range(n)],
        "forward_kl": [0.05 * i for i in range(n)],
        "student_entropy": [1.0] * n,
        "teacher_entropy": [0.5] * n,
        "teacher_topk_ids": [[10, 11, -1]] * n,
        "teacher_topk_logprobs": [[-0.1, -2.5, 0.0]] * n,
        "student_topk_ids": [[12, 99]] * n,
        "student_topk_logprobs": [[-0.7, -1.0]] * n,
    }


# --------------------------------------------------------------------------------------------------------------
# heatmap


def test_escaping_shows_script_as_text():
    html = viz.token_heatmap_html(["<script>", "alert(1)", "</script>", '"&\''], [0.1, 0.2, -0.3, 0.0])
    assert "<script>" not in html and "</script>" not in html
    assert "&lt;script&gt;" in html and "&lt;/script&gt;" in html
    assert "&quot;&amp;&#x27;" in html
    # hover text is escaped too
    info = [{"teacher_top": [("<b>", 0.5)]}] * 4
    html = viz.token_heatmap_html(["a", "b", "c", "d"], [0, 0, 0, 0], per_token_info=info)
    assert "<b>" not in html and "&lt;b&gt;" in html


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="3 tokens, 2 values"):
        viz.token_heatmap_html(["a", "b", "c"], [1.0, 2.0])
    with pytest.raises(ValueError, match="per_token_info"):
        viz.token_heatmap_html(["a"], [1.0], per_token_info=[{}, {}])
    with pytest.raises(ValueError):
        viz.token_heatmap_html(["a"], [1.0], vmax=0)
    with pytest.raises(ValueError, match="without gaps"):
        viz.token_heatmap_html(["a", "b", "c"], [0, 0, 0], spans=[Span(0, 1, "a"), Span(2, 3, "c")])
    with pytest.raises(ValueError, match="cover 2 tokens but there are 3"):
        viz.token_heatmap_html(["a", "b", "c"], [0, 0, 0], spans=[Span(0, 2, "ab")])


def test_colour_sign():
    html = viz.token_heatmap_html(["neg", "zero", "pos", "nan"], [-1.0, 0.0, 1.0, float("nan")])
    neg, zero, pos, nan = (background(s) for s in spans(html))
    assert len({neg, zero, pos, nan}) == 4
    r, g, b = (int(neg[i:i + 2], 16) for i in (1, 3, 5))
    assert r > b  # RdBu: negative is red
    r, g, b = (int(pos[i:i + 2], 16) for i in (1, 3, 5))
    assert b > r  # positive is blue
    r, g, b = (int(zero[i:i + 2], 16) for i in (1, 3, 5))
    assert min(r, g, b) > 230 and max(r, g, b) - min(r, g, b) < 10  # 0 is a neutral near-white
    assert viz.value_color(0.0, 1.0) == zero
    # saturation at vmax, symmetric
    assert viz.value_color(5.0, 1.0) == viz.value_color(1.0, 1.0) == pos
    assert viz.value_color(0.5, 1.0) != viz.value_color(-0.5, 1.0)


def test_legend_and_auto_vmax():
    html = viz.token_heatmap_html(["a", "b"], [-0.25, 2.0], label="implicit reward")
    assert "s2d-legend" in html and "linear-gradient" in html
    assert "−2" in html and "+2" in html and "implicit reward" in html
    assert "coloured by their sum" not in html  # no span of several tokens here
    html = viz.token_heatmap_html(["a", "b"], [-0.25, 2.0], vmax=0.5)
    assert "+0.5" in html


def test_whitespace_and_newlines_render_visibly():
    tokens = ["x", "\n", "  y", "\n\n", "\t", " ", ""]
    html = viz.token_heatmap_html(tokens, [0] * 7)
    s = spans(html)
    assert [span_text(x) for x in s] == tokens  # leading spaces, tabs and newlines kept as they are
    assert s[1].count('<span class="s2d-nl"></span>\n') == 1  # the line breaks, and a marker sits before it
    assert s[3].count('<span class="s2d-nl"></span>\n') == 2
    assert "s2d-ws" in s[4] and "s2d-ws" in s[5] and "s2d-ws" not in s[2]  # blank spans are underlined
    assert "s2d-empty" in s[6]
    assert "white-space:pre-wrap" in html and '.s2d-nl::before{content:"\\21B5"' in html
    assert tip(s[2]).startswith("#2 '␣␣y'")  # the tooltip names blanks


def test_multi_token_span_is_coloured_by_the_sum_and_lists_every_token():
    arrow = ["\\xe2", "\\x86", "\\x92"]
    tokens = ["a", *arrow, "<|im_end|>"]
    values = [0.5, -0.25, -0.5, -0.125, 0.0]
    info = [{"implicit_reward": v, "student_prob": 0.1 * (i + 1)} for i, v in enumerate(values)]
    layout = [Span(0, 1, "a"), Span(1, 4, "→"), Span(4, 5, "<|im_end|>", special=True)]
    html = viz.token_heatmap_html(tokens, values, spans=layout, per_token_info=info, vmax=1.0,
                                  label="implicit reward")
    s = spans(html)
    assert [span_text(x) for x in s] == ["a", "→", "<|im_end|>"]
    assert background(s[1]) == viz.value_color(-0.875, 1.0) != viz.value_color(-0.5, 1.0)  # sum, not mean
    assert 'data-i="1–3"' in s[1] and 'data-v="-0.875"' in s[1] and "s2d-multi" in s[1]
    lines = tip(s[1]).split("\n")
    assert "3 tokens #1–3" in lines[0] and "summed implicit reward -0.875" in lines[0]
    own = [line for line in lines if line.startswith("#")]
    assert [line.split()[0] for line in own] == ["#1", "#2", "#3"]
    assert "\\xe2" in own[0] and "implicit reward -0.250" in own[0] and "p student 0.200" in own[0]
    assert "implicit reward -0.125" in own[2] and "p student 0.400" in own[2]
    assert "s2d-special" in s[2]
    assert "5 tokens in 3 spans" in html and "coloured by their sum" in html
    assert viz.span_values(values, layout) == [0.5, -0.875, 0.0]
    assert viz.span_values([1.0, None], [Span(0, 2, "ab")]) == [None]


def test_row_spans_from_scored_rows_and_old_rows():
    from tests.token_data import byte_level_tokenizer, scored_rows

    row = scored_rows(byte_level_tokenizer(), ["ü→\n  ok"])[0]
    layout = viz.row_spans(row)
    assert [x.text for x in layout] == row["span_texts"] and layout[-1].special
    assert "".join(x.text for x in layout) == "ü→\n  ok<|im_end|>"
    assert any(x.stop - x.start > 1 for x in layout)
    page = viz.rollout_heatmap_html(row)
    assert "".join(span_text(x) for x in spans(page)) == "ü→\n  ok<|im_end|>"
    # a row written before scoring stored bytes and spans: one span per token, from `tokens`
    old = {k: v for k, v in row.items() if k not in ("token_bytes", "token_special", "span_starts", "span_texts")}
    assert [(x.start, x.text) for x in viz.row_spans(old)] == list(enumerate(row["tokens"]))
    assert len(spans(viz.rollout_heatmap_html(old))) == row["length"]
    # the colour range shared by several heatmaps covers their span sums
    expected = max(abs(v) for v in viz.span_values(row["implicit_reward"], layout))
    assert viz.heatmap_vmax([row, None]) == pytest.approx(expected)


def test_adversarial_text_is_escaped_in_scored_rows():
    """Markup, entities, quotes and multibyte text scored through a byte-level tokenizer show as text."""
    from tests.token_data import TEXTS, byte_level_tokenizer, scored_rows

    tok = byte_level_tokenizer()
    text = TEXTS[2]  # <script>, &amp;, quotes, apostrophes, <b>, emoji, ü
    row = scored_rows(tok, [text])[0]
    page = viz.rollout_heatmap_html(row, id_to_text={i: t for i, t in zip(row["token_ids"], row["tokens"])})
    assert "<script" not in page.lower() and "<b>" not in page and "&lt;" in page and "&gt;" in page
    assert "&quot;" in page and "&#x27;" in page
    inner = "".join(re.sub(r"^<span[^>]*>|</span>$", "", x) for x in spans(page))
    assert not re.findall(r"&(?!amp;|lt;|gt;|quot;|#x27;)", inner)  # every & of the text (as in "&amp;") escaped
    assert "&amp;" in inner and "amp;" in htmllib.unescape(inner)
    shown = "".join(span_text(x) for x in spans(page))
    assert shown == tok.decode(row["token_ids"]) == text + "<|im_end|>"
    for x in spans(page):  # the tooltips are escaped attribute values: no raw quote or bracket inside
        value = re.search(r'data-tip="([^"]*)"', x).group(1)
        assert "<" not in value and ">" not in value and "'" not in value


def test_hover_data():
    row = scored_row(["1", "+", "2"])
    vocab = {10: "1", 11: "+"}
    info = viz.row_token_info(row, vocab)
    assert info[0]["student_prob"] == pytest.approx(math.exp(-0.5))
    assert info[0]["teacher_top"][0] == ("1", pytest.approx(math.exp(-0.1)))
    assert len(info[0]["teacher_top"]) == 2  # the masked -1 slot is dropped
    assert info[0]["student_top"][1][0] == "#99"  # unknown ids are named by number
    html = viz.rollout_heatmap_html(row, id_to_text=vocab, title="opd step 10")
    first = tip(spans(html)[0])
    for part in ("#0 '1'", "implicit reward -0.300", "p student 0.607", "p teacher 0.449", "reverse KL 0.000",
                 "forward KL 0.000", "entropy student 1.000", "entropy teacher 0.500", "teacher top: 1 0.90, + 0.08",
                 "student top: #12 0.50, #99 0.37"):
        assert part in first, part
    assert "content:attr(data-tip)" in html  # the CSS tooltip shows it
    assert "opd step 10" in html


def test_unscored_row_renders_without_info():
    html = viz.rollout_heatmap_html({"tokens": ["a", "b"]})
    assert len(spans(html)) == 2 and "p student" not in html
    assert tip(spans(html)[0]) == "#0 'a'   implicit reward n/a"


# --------------------------------------------------------------------------------------------------------------
# figures


def test_per_token_figure_lengths_and_labels():
    row = scored_row(["<b>", "\n", "é", "x"])
    fig = viz.per_token_figure(row)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    for trace in fig.data:
        assert len(trace.x) == len(trace.y) == len(trace.customdata) == 4
    assert list(fig.data[1].y) == pytest.approx(row["implicit_reward"])
    assert list(fig.layout.xaxis2.ticktext) == ["&lt;b&gt;", "↵", "é", "x"]
    bad = dict(row, reverse_kl=[0.0])
    with pytest.raises(ValueError, match="reverse_kl"):
        viz.per_token_figure(bad)
    long = scored_row(["a"] * 3000)
    fig = viz.per_token_figure(pd.Series(long))
    assert fig.data[0].type == "scatter" and len(fig.data[0].y) == 3000
    assert fig.layout.xaxis2.ticktext is None


def test_stage_curves_figure(tmp_path):
    from s2dlab.runs import create_run

    run = create_run(tmp_path / "r", {}, 0)
    for s in range(3):
        run.append_metrics("teacher_grpo", {"step": s, "reward": 0.1 * s, "kl": 0.0, "learning_rate": 1e-4,
                                            "probe/auroc": 0.5 + 0.1 * s, "probe/teacher_accuracy": 0.2,
                                            "rewards/accuracy_reward/std": 0.3, "epoch": 0.1 * s})
        run.append_metrics("opd", {"step": s + 1, "loss": 1.0 - 0.1 * s, "probe/mean_reverse_kl": 0.5,
                                   "opd/new_metric": 2.0 * s})
    # what is drawn comes from what was logged: known names first in their order, then the rest; no bookkeeping
    assert viz.curve_metrics({s: run.metrics(s) for s in run.stages()}) == [
        "probe/teacher_accuracy", "probe/auroc", "probe/mean_reverse_kl", "reward", "kl", "loss", "opd/new_metric"]
    fig = viz.stage_curves_figure(run)
    names = [a.text for a in fig.layout.annotations]
    assert "C1: AUROC of summed implicit reward, correct vs incorrect · probe/auroc" in names
    assert "opd/new_metric" in names and {"teacher_grpo", "opd"} <= set(names)
    assert not any("learning_rate" in n or "epoch" in n or "/std" in n for n in names)
    reward_traces = [t for t in fig.data if t.name == "teacher_grpo"]
    assert len(reward_traces) == 4 and all(len(t.x) == 3 for t in reward_traces)
    opd = [t for t in fig.data if t.name == "opd"]
    assert min(opd[0].x) > max(reward_traces[0].x)  # stages laid end to end, in workflow order
    # asked for by name, any logged key is drawn; unknown names are skipped
    fig = viz.stage_curves_figure(run, metrics=["learning_rate", "nope"])
    assert [a.text for a in fig.layout.annotations][0] == "learning_rate" and len(fig.data) == 1
    empty = viz.stage_curves_figure(create_run(tmp_path / "empty", {}, 0))
    assert "no metrics" in empty.layout.annotations[0].text


RESULTS = {
    "arms": {
        "no_opd": {"accuracy": 0.40},
        "direct_grpo": {"accuracy": 0.39, "accuracy_sd": 0.02, "accuracy_n": 2, "math": {"avg@4": 0.3}},
        "workflow": {"accuracy": 0.49, "accuracy_sd": 0.01, "accuracy_n": 2, "math": {"avg@4": 0.45},
                     "per_seed": [0.48, 0.5]},
    },
}


def test_results_table_and_bars():
    df = viz.results_table(RESULTS)
    assert list(df.index) == ["workflow", "direct_grpo", "no_opd"]
    assert df.loc["workflow", "math/avg@4"] == 0.45 and "per_seed" not in df
    fig = viz.results_bar_figure(RESULTS)
    assert list(fig.data[0].x) == ["workflow", "direct_grpo", "no_opd"]
    assert list(fig.data[0].y) == [0.49, 0.39, 0.40]
    assert list(fig.data[0].error_y.array)[:2] == [0.01, 0.02]
    assert viz.results_table(None).empty
    assert "no results" in viz.results_bar_figure({}).layout.annotations[0].text


def test_c1_figure():
    rows = [{"sum_implicit_reward": 1.0, "correct": True}, {"sum_implicit_reward": -2.0, "correct": False},
            {"sum_implicit_reward": 0.5, "correct": False}, {"sum_implicit_reward": 0.75, "correct": True},
            {"sum_implicit_reward": 3.0, "correct": None}, {"correct": True}]
    fig = viz.c1_figure(pd.DataFrame(rows))
    assert [len(t.x) for t in fig.data] == [2, 2]  # correct, incorrect; ungraded and unscored rows are left out
    assert sorted(fig.data[0].x) == [0.75, 1.0]
    assert "75%" in fig.layout.title.text and "AUROC 1.00" in fig.layout.title.text
    assert "no graded" in viz.c1_figure([]).layout.annotations[0].text


def test_c2_histogram_figure():
    from s2dlab import diagnostics

    closeness = diagnostics.c2_closeness([{"reverse_kl": [0.0005, 0.02, 0.5, 12.0]}])
    fig = viz.c2_histogram_figure({"student": closeness})
    assert len(fig.data) == 1 and len(fig.data[0].x) == len(closeness["histogram"]["counts"])
    assert sum(fig.data[0].y) == pytest.approx(1.0)
    after = diagnostics.c2_closeness([{"reverse_kl": [0.0005, 0.0005, 0.0005, 12.0]}])
    fig = viz.c2_histogram_figure({"opd_end": closeness, "after_warmup": after, "before_warmup": closeness,
                                   "opd_curve": [1, 2], "note": {"text": "no histogram"}})
    # workflow order, not key order; entries without a histogram (results.json keeps others there) are skipped
    assert [t.name for t in fig.data] == ["before warmup", "after warmup", "opd end"]
    assert list(fig.data[1].y) == pytest.approx([c / 4 for c in after["histogram"]["counts"]])
    assert list(fig.data[0].customdata) == closeness["histogram"]["counts"]
    assert "no C2" in viz.c2_histogram_figure(None).layout.annotations[0].text
    # series whose largest value differs still share the same bin labels (the last bin is open-ended)
    a = diagnostics.c2_closeness([{"reverse_kl": [0.5, 14.5]}])
    b = diagnostics.c2_closeness([{"reverse_kl": [0.5, 12.8]}])
    fig = viz.c2_histogram_figure({"a": a, "b": b})
    assert list(fig.data[0].x) == list(fig.data[1].x) and fig.data[0].x[-1] == "≥ 3"


def test_quadrant_figure():
    from s2dlab import diagnostics

    rows = [scored_row(["a", "b", "c", "d"]), {"tokens": ["x"]}]
    fig = viz.quadrant_figure(rows)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 4
    q = diagnostics.token_quadrants(rows[:1])
    shares = [a.text for a in fig.layout.annotations if "of |reward|" in a.text]
    share = q["quadrants"]["high_entropy_high_divergence"]["token_share"]
    assert len(shares) == 4 and any(f"{100 * share:.0f}% of tokens" in t for t in shares)
    fig = viz.quadrant_figure(rows, max_points=2)
    assert len(fig.data[0].x) == 2
    assert "no scored" in viz.quadrant_figure([]).layout.annotations[0].text
