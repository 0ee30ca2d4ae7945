"""Figures and the token heatmap: escaping, colours by sign, lengths, hover data."""

import math
import re

import pandas as pd
import plotly.graph_objects as go
import pytest

from s2dlab import viz


def spans(html):
    return re.findall(r'<span class="s2d-tok[^"]*"[^>]*>.*?</span>', html, flags=re.S)


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
    # hover data is escaped too
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
    html = viz.token_heatmap_html(["a", "b"], [-0.25, 2.0], vmax=0.5)
    assert "+0.5" in html


def test_newlines_and_multibyte():
    html = viz.token_heatmap_html(["x", "\n", "é", "→", ""], [0, 0, 0, 0, 0])
    s = spans(html)
    assert len(s) == 5
    assert "s2d-nl" in s[1] and ">\n</span>" in s[1]
    assert ">é</span>" in s[2] and ">→</span>" in s[3]
    assert "s2d-empty" in s[4]
    assert "white-space:pre-wrap" in html


def test_bytes_tokens_are_grouped_into_whole_characters():
    arrow = "→".encode()  # 3 bytes
    tokens = [b"a", arrow[:1], arrow[1:2], arrow[2:], "b", "é".encode()]
    html = viz.token_heatmap_html(tokens, [1.0, -1.0, -1.0, -1.0, 0.0, 0.5])
    s = spans(html)
    assert [re.sub(r"<[^>]+>", "", x) for x in s] == ["a", "→", "b", "é"]
    assert 'data-i="1–3"' in s[1]
    # an invalid byte sequence is flushed with a replacement character rather than swallowing later tokens
    html = viz.token_heatmap_html([b"\xff", b"c"], [0.0, 0.0])
    assert [re.sub(r"<[^>]+>", "", x) for x in spans(html)] == ["\ufffd", "c"]


def test_hover_data_attributes():
    row = scored_row(["1", "+", "2"])
    vocab = {10: "1", 11: "+"}
    info = viz.row_token_info(row, vocab)
    assert info[0]["student_prob"] == pytest.approx(math.exp(-0.5))
    assert info[0]["teacher_top"][0] == ("1", pytest.approx(math.exp(-0.1)))
    assert len(info[0]["teacher_top"]) == 2  # the masked -1 slot is dropped
    assert info[0]["student_top"][1][0] == "#99"  # unknown ids are named by number
    html = viz.rollout_heatmap_html(row, id_to_text=vocab, title="opd step 10")
    first = spans(html)[0]
    for attr in ("data-ps", "data-pt", "data-r", "data-rkl", "data-fkl", "data-hs", "data-ht", "data-ttop",
                 "data-stop"):
        assert attr in first
    assert 'data-ps="0.607"' in first and 'data-r="-0.300"' in first
    assert "attr(data-rkl)" in html  # the CSS tooltip shows them
    assert "opd step 10" in html


def test_unscored_row_renders_without_info():
    html = viz.rollout_heatmap_html({"tokens": ["a", "b"]})
    assert len(spans(html)) == 2 and not any("data-ps" in s for s in spans(html))


def test_token_display_bytes_with_byte_level_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    b2u = viz._bytes_to_unicode()
    vocab = {ch: i for i, ch in enumerate(sorted(set(b2u.values())))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    ids = fast("a→", add_special_tokens=False)["input_ids"]
    assert len(ids) == 4  # one byte per token
    pieces = viz.token_display_bytes(fast, ids)
    assert pieces == [b"a", *[bytes([c]) for c in "→".encode()]]
    html = viz.token_heatmap_html(pieces, [0.0] * 4)
    assert [re.sub(r"<[^>]+>", "", x) for x in spans(html)] == ["a", "→"]


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
        run.append_metrics("teacher_grpo", {"step": s, "reward": 0.1 * s, "kl": 0.0})
        run.append_metrics("opd", {"step": s + 1, "loss": 1.0 - 0.1 * s, "probe/mean_reverse_kl": 0.5})
    fig = viz.stage_curves_figure(run)
    names = [a.text for a in fig.layout.annotations]
    assert {"reward", "probe/mean_reverse_kl", "kl", "loss", "teacher_grpo", "opd"} <= set(names)
    reward_traces = [t for t in fig.data if t.name == "teacher_grpo"]
    assert len(reward_traces) == 2 and all(len(t.x) == 3 for t in reward_traces)
    opd = [t for t in fig.data if t.name == "opd"]
    assert min(opd[0].x) > max(reward_traces[0].x)  # stages laid end to end, in workflow order
    empty = viz.stage_curves_figure({"opd": []})
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
            {"sum_implicit_reward": 0.5, "correct": False}, {"implicit_reward": [0.5, 0.25], "correct": True},
            {"sum_implicit_reward": 3.0, "correct": None}]
    fig = viz.c1_figure(pd.DataFrame(rows))
    assert [len(t.x) for t in fig.data] == [2, 2]  # correct, incorrect; the ungraded row is left out
    assert sorted(fig.data[0].x) == [0.75, 1.0]
    assert "75%" in fig.layout.title.text and "AUROC 1.00" in fig.layout.title.text
    assert "no graded" in viz.c1_figure([]).layout.annotations[0].text


def test_c2_histogram_figure():
    from s2dlab import diagnostics

    rows = [{"reverse_kl": [0.0005, 0.02, 0.5, 12.0]}]
    closeness = diagnostics.c2_closeness(rows)
    fig = viz.c2_histogram_figure(closeness)
    assert len(fig.data) == 1 and len(fig.data[0].x) == len(closeness["histogram"]["counts"])
    assert sum(fig.data[0].y) == pytest.approx(1.0)
    fig = viz.c2_histogram_figure({"raw": [0.0005, 0.02, 0.5, 12.0],
                                   "after_warmup": {"edges": [0, 1, 2], "counts": [3, 1]}, "before_warmup": closeness})
    assert [t.name for t in fig.data] == ["before warmup", "after warmup", "raw"]  # workflow order, not key order
    assert list(fig.data[1].y) == [0.75, 0.25]
    assert list(fig.data[2].customdata) == closeness["histogram"]["counts"]  # raw values binned the same way
    assert "no C2" in viz.c2_histogram_figure(None).layout.annotations[0].text
    # series whose largest value differs still share the same bin labels (the last bin is open-ended)
    a = diagnostics.c2_closeness([{"reverse_kl": [0.5, 14.5]}])
    b = diagnostics.c2_closeness([{"reverse_kl": [0.5, 12.8]}])
    fig = viz.c2_histogram_figure({"a": a, "b": b})
    assert list(fig.data[0].x) == list(fig.data[1].x) and fig.data[0].x[-1] == "≥ 3"


def test_quadrant_figure():
    rows = [scored_row(["a", "b", "c", "d"]), {"tokens": ["x"]}]
    fig = viz.quadrant_figure(rows)
    assert len(fig.data) == 1 and len(fig.data[0].x) == 4
    assert any("of |reward|" in a.text for a in fig.layout.annotations)
    fig = viz.quadrant_figure(rows, max_points=2)
    assert len(fig.data[0].x) == 2
    from s2dlab import diagnostics

    table = viz.quadrant_figure(diagnostics.token_quadrants(rows[:1]))
    assert table.data[0].type == "heatmap"
    assert "no scored" in viz.quadrant_figure([]).layout.annotations[0].text
