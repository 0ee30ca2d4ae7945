"""Figures and the token heatmap: escaping, colours by sign, display spans, whitespace, lengths, hover data."""

import html as htmllib
import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from s2dlab.views import viz
from s2dlab.views.viz import Span


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
    from s2dlab.core.runs import create_run

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


# --------------------------------------------------------------------------------------------------------------
# summary.json rendered (s2dlab.views.viz.conditions): tables, C1 / C2 / quadrant figures, the arms figure

SUMMARY = {
    "eval": {"k": 4},
    "base": {"student": 0.2},
    "arms": {
        "cold_grpo": {"block": "top", "row": "cold GRPO", "accuracy": 0.25, "interval": {"ci": [0.2, 0.3]},
                      "greedy": 0.5, "labels": 32, "labels_kind": ["answers"], "student_steps": 4,
                      "student_sequences": 32, "teacher_steps": 0, "teacher_scored_sequences": 0},
        "bridge": {"block": "top", "row": "full bridge", "accuracy": 0.4, "interval": {"ci": [0.31, 0.49]},
                   "greedy": None, "labels": 32, "labels_kind": ["solutions"], "student_steps": 8,
                   "student_sequences": 64, "teacher_steps": 4, "teacher_scored_sequences": 48},
    },
    "claims": [{"id": "bridge_beats_cold", "claim": "the bridge beats cold GRPO", "a": "bridge", "b": "cold_grpo",
                "difference": 0.15, "ci": [0.05, 0.25], "status": "holds"}],
    "c1": {"teachers": {"teacher_grpo": {"rollouts": 4, "n_correct": 2, "n_incorrect": 2, "auroc": 0.75,
                                         "ci": [0.5, 1.0], "length_auroc": 0.5,
                                         "first_error": {"at_error": -2.0, "at_error_ci": [-3.0, -1.0],
                                                         "elsewhere": -0.1, "elsewhere_ci": [-0.2, 0.0]},
                                         "mean_reverse_kl": {"mean": 0.3, "ci": [0.2, 0.4]}},
                        "base_teacher": {"rollouts": 4, "n_correct": 2, "n_incorrect": 2, "auroc": 0.5,
                                         "ci": [0.0, 1.0]}},
           "comparisons": [{"teacher": "teacher_grpo", "raw": "base_teacher", "difference": 0.25, "ci": [-0.1, 0.6],
                            "verdict": "within noise"}]},
    "c2": {"pairs": [{"stage": "opd", "init": "fkl_warmup", "teacher": "teacher_grpo",
                      "before": {"mean": 0.5, "ci": [0.4, 0.6]}, "after": {"mean": 0.25, "ci": [0.2, 0.3]},
                      "change": {"difference": -0.25, "ci": [-0.35, -0.15], "verdict": "lower"}}]},
    "stages": {"opd": {"quadrants": {"confident_prob": 0.9, "quadrants": {
        "confident_agree": {"token_share": 0.5, "abs_reward_share": 0.1, "n_tokens": 5, "mean_implicit_reward": 0.0},
        "confident_disagree": {"token_share": 0.1, "abs_reward_share": 0.4, "n_tokens": 1,
                               "mean_implicit_reward": -3.0},
        "uncertain_agree": {"token_share": 0.2, "abs_reward_share": 0.2, "n_tokens": 2, "mean_implicit_reward": -0.5},
        "uncertain_disagree": {"token_share": 0.2, "abs_reward_share": 0.3, "n_tokens": 2,
                               "mean_implicit_reward": -1.0}}}},
               "fkl_warmup": {"quadrants": None}},
}


def test_arms_and_claims_frames():
    arms = viz.arms_frame(SUMMARY)
    assert list(arms["arm"]) == ["bridge", "cold_grpo", "(base student)"]  # the paper's row order
    assert list(arms["avg@4 % [95% CI]"]) == ["40.0 [31.0, 49.0]", "25.0 [20.0, 30.0]", "20.0"]
    assert list(arms["greedy %"])[:2] == ["–", "50.0"] and list(arms["labels"])[:2] == ["32 (solutions)", "32"]
    assert list(arms["teacher-scored sequences"])[:2] == [48, 0] and "per seed %" not in arms
    claims = viz.claims_frame(SUMMARY)
    assert claims.iloc[0].to_dict() == {"status": "✓ holds", "prediction": "the bridge beats cold GRPO",
                                        "a − b": "bridge − cold_grpo", "difference (points) [95% CI]":
                                        "+15.0 [+5.0, +25.0]"}
    agg = dict(SUMMARY, seeds=[0, 1], per_seed=[{"seed": 0, "arms": {"bridge": 0.3, "cold_grpo": 0.2}},
                                                 {"seed": 1, "arms": {"bridge": 0.5, "cold_grpo": 0.3}}])
    arms = viz.arms_frame(agg)
    assert "avg@4 % [95% CI, 2 seeds]" in arms and list(arms["per seed %"])[:2] == ["30.0, 50.0", "20.0, 30.0"]


def test_c1_and_c2_frames():
    c1 = viz.c1_frame(SUMMARY)
    assert list(c1["teacher"]) == ["base_teacher", "teacher_grpo"]  # workflow order, not key order
    grpo = c1.iloc[1]
    assert grpo["AUROC [95% CI]"] == "0.750 [0.500, 1.000]" and grpo["correct / incorrect"] == "2 / 2"
    assert grpo["reward at first error [CI]"] == "-2.000 [-3.000, -1.000]"
    assert c1.iloc[0]["reward at first error [CI]"] == "–"
    c2 = viz.c2_frame(SUMMARY).iloc[0]
    assert (c2["reverse KL before [CI]"], c2["after [CI]"], c2["change [CI]"], c2["verdict"]) == (
        "0.500 [0.400, 0.600]", "0.250 [0.200, 0.300]", "-0.250 [-0.350, -0.150]", "lower")


def test_c1_rollouts_figure():
    rows = {"teacher_grpo": [{"sum_implicit_reward": 1.0, "correct": True}, {"sum_implicit_reward": -2.0,
                                                                              "correct": False},
                             {"sum_implicit_reward": 0.5, "correct": None}],
            "base_teacher": pd.DataFrame([{"sum_implicit_reward": -1.0, "correct": True},
                                          {"sum_implicit_reward": 3.0, "correct": False}]),
            "teacher_sft": []}
    fig = viz.c1_rollouts_figure(SUMMARY["c1"], rows)
    correct, incorrect = fig.data
    assert list(correct.y) == [-1.0, 1.0] and list(incorrect.y) == [3.0, -2.0]  # ungraded rows are left out
    assert list(correct.x) == ["base_teacher<br>AUROC 0.50 [0.00, 1.00]", "teacher_grpo<br>AUROC 0.75 [0.50, 1.00]"]
    title = fig.layout.title.text
    assert "teacher_grpo − base_teacher: AUROC difference +0.25 [-0.10, +0.60] (within noise)" in title
    assert "no fixed C1" in viz.c1_rollouts_figure(None, {}).layout.annotations[0].text


def test_c2_pair_figure_bins_every_token():
    pair = SUMMARY["c2"]["pairs"][0]
    before = [{"reverse_kl": [0.0005, 0.02, 0.5]}, {"reverse_kl": [12.0]}]
    after = [{"reverse_kl": [0.0, 0.0005, 0.0005, 2.0]}]
    fig = viz.c2_pair_figure(pair, before, after)
    b, a = fig.data
    assert list(b.customdata) == [1, 0, 1, 0, 0, 1, 0, 0, 1] and sum(b.y) == pytest.approx(1.0)
    assert list(a.customdata) == [3, 0, 0, 0, 0, 0, 1, 0, 0] and b.x[-1] == "≥ 10"
    assert b.name == "before: fkl_warmup: mean 0.500 [0.400, 0.600] nats/token" and a.name.startswith("after: opd")
    assert "after − before -0.250 [-0.350, -0.150] nats/token (lower)" in fig.layout.title.text
    assert "no distillation stage" in viz.c2_pair_figure(None, None, None).layout.annotations[0].text


def test_quadrants_figure_draws_the_summary_shares():
    fig = viz.quadrants_figure(SUMMARY["stages"])
    tokens = {t.name: t.y[0] for t in fig.data if t.yaxis == "y"}
    reward = {t.name: t.y[0] for t in fig.data if t.yaxis == "y2"}
    assert tokens["confident, teacher disagrees"] == 0.1 and reward["confident, teacher disagrees"] == 0.4
    assert list(fig.data[0].x) == ["opd"]  # stages without quadrants are left out
    assert "p ≥ 0.9" in fig.layout.title.text


def test_arms_figure_moved_from_report():
    from s2dlab.views import report
    from s2dlab.views.viz import figures

    assert report.arms_figure is figures.arms_figure is viz.arms_figure
    fig = viz.arms_figure(SUMMARY)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [list(t.x) for t in bars] == [["bridge", "cold_grpo"]]
    assert list(bars[0].y) == pytest.approx([40.0, 25.0])
    assert list(bars[0].error_y.array) == pytest.approx([9.0, 5.0])
    assert list(bars[0].error_y.arrayminus) == pytest.approx([9.0, 5.0])
    base = [t for t in fig.data if t.name.startswith("base student")]
    assert len(base) == 1 and set(base[0].y) == {100 * SUMMARY["base"]["student"]}
    assert not [t for t in fig.data if t.name == "each seed"]  # one run: no seed dots
    seeds = {**SUMMARY, "arms": {a: {**m, "interval": {**m["interval"], "per_seed": [0.3, 0.5]}}
                                 for a, m in SUMMARY["arms"].items()}}
    dots = [t for t in viz.arms_figure(seeds).data if t.name == "each seed"]
    assert len(dots) == 1 and list(dots[0].x) == ["bridge", "bridge", "cold_grpo", "cold_grpo"]
    assert list(dots[0].y) == pytest.approx([30.0, 50.0, 30.0, 50.0])
    assert "no evaluated arm" in viz.arms_figure({}).layout.annotations[0].text


# --------------------------------------------------------------------------------------------------------------
# the token lens table and the standalone export


def lens_rows():
    tokens = ["<b>", "1", "\n"]
    base = {"tokens": tokens, "sign_change": [False, True, False], "sum_implicit_reward": -0.5,
            "mean_reverse_kl": 0.1}
    return [dict(base, teacher="base_teacher", student="opd", implicit_reward=[0.5, -1.0, 0.0],
                 reverse_kl=[0.1, 0.2, 0.0], forward_kl=[0.0, 0.0, 0.0]),
            dict(base, teacher="teacher_grpo", student="opd", implicit_reward=[0.25, 1.0, float("nan")],
                 reverse_kl=[0.0, 0.0, 0.0], forward_kl=[0.0, 0.0, 0.0])]


def test_lens_html():
    page = viz.lens_html(lens_rows(), title="student/p0/0")
    assert "<b>" not in page and "&lt;b&gt;" in page and "<script" not in page
    assert 'data-pairs="2" data-n="3" data-flips="1"' in page
    assert page.count('<th class="s2d-flip"') == 1 and page.count(' s2d-flip" data-i="1"') == 2
    colours = dict(re.findall(r"\.s2d-lens td\.(c\d+)\{background:(#[0-9a-f]{6});", page))
    cells = re.findall(r'<td class="(c\d+)(?: s2d-flip)?" data-i="(\d)" title="[^"#]*#\d: ([^"]*)"', page)
    assert [(i, v) for _, i, v in cells] == [("0", "+0.500"), ("1", "-1.000"), ("2", "+0.000"),
                                             ("0", "+0.250"), ("1", "+1.000"), ("2", "n/a")]
    assert colours[cells[1][0]] == viz.value_color(-1.0, 1.0) and colours[cells[4][0]] == viz.value_color(1.0, 1.0)
    assert colours[cells[5][0]] == viz.value_color(None, 1.0)  # a missing value is grey
    assert "base_teacher ▸ opd" in page and "↵" in page
    kl = viz.lens_html(lens_rows(), value="reverse_kl")
    assert "opd #1: +0.200" in kl and "reverse KL(pS‖pT)" in kl
    with pytest.raises(ValueError, match="different rollouts"):
        viz.lens_html([lens_rows()[0], dict(lens_rows()[1], tokens=["x", "y", "z"])])
    with pytest.raises(ValueError, match="value="):
        viz.lens_html(lens_rows(), value="loss")


def test_standalone_html_has_no_script_and_escapes_its_title():
    doc = viz.standalone_html("a <b> & c", [viz.token_heatmap_html(["x"], [1.0]), viz.lens_html(lens_rows())])
    assert doc.startswith("<!doctype html>") and "<title>a &lt;b&gt; &amp; c</title>" in doc
    assert "<script" not in doc.lower() and "http" not in doc and doc.count("class='s2d-part'") == 2


# --------------------------------------------------------------------------------------------------------------
# branches and estimators figures


def test_branches_figure():
    result = {"position": 3, "n_samples": 8, "max_new_tokens": 16, "branches": [
        {"token": "=", "is_student_token": True, "teacher_rank": 0, "success_rate": 0.5, "wilson_low": 0.2,
         "wilson_high": 0.8, "implicit_reward": 0.1, "successes": 4, "n": 8},
        {"token": "<", "is_student_token": False, "teacher_rank": 1, "success_rate": 0.0, "wilson_low": 0.0,
         "wilson_high": 0.3, "implicit_reward": None, "successes": 0, "n": 8}]}
    fig = viz.branches_figure(result)
    rate, reward = fig.data
    assert list(rate.y) == [0.5, 0.0] and list(rate.error_y.array) == pytest.approx([0.3, 0.3])
    assert list(rate.error_y.arrayminus) == pytest.approx([0.3, 0.0]) and list(reward.y) == [0.1, None]
    assert rate.x[1] == "&lt;<br>teacher #2" and "position 3" in fig.layout.title.text
    assert "no branches" in viz.branches_figure(None).layout.annotations[0].text


def test_estimators_figure():
    row = {"reverse_kl": [0.1, 0.2], "k1": [0.3, -0.1], "k3": [0.05, 0.2], "grad_cosine": [1.0, None]}
    fig = viz.estimators_figure(row, ["a", "<"])
    assert [t.name for t in fig.data] == ["exact reverse KL", "k1", "k3", "gradient cosine"]
    assert list(fig.data[1].y) == [0.3, -0.1] and list(fig.layout.xaxis2.ticktext) == ["a", "&lt;"]


def test_curve_names_and_points_in_step_order(tmp_path):
    from s2dlab.core.runs import create_run

    assert viz.figures.curve_names({"loss", "epoch", "probe/auroc", "z/custom", "x_std"}) == [
        "probe/auroc", "loss", "z/custom"]
    run = create_run(tmp_path / "r", {}, 0)
    for step, loss in ((1, 0.5), (2, 0.4), (1, 0.45)):  # a closing summary logged at an earlier step
        run.append_metrics("opd", {"step": step, "loss": loss})
    x = list(viz.stage_curves_figure(run).data[0].x)
    assert x == sorted(x)


def test_greedy_text_says_when_greedy_was_not_measured():
    assert viz.greedy_text(0.1234) == "12.3" and viz.greedy_text(0.5, "%") == "50.0%"
    assert viz.greedy_text(None) == viz.greedy_text(None, "%") == viz.GREEDY_NOT_MEASURED
    assert viz.GREEDY_NOT_MEASURED == "not measured (eval.greedy=false)"
