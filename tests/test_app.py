"""The dashboard's data access, called directly on the committed fixture run (tests/data/fixture_run), and its
plumbing (s2dlab.dashboard)."""

import html
import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from s2dlab.dashboard import data as cb  # noqa: E402
from s2dlab.runs import create_run  # noqa: E402

DATA = Path(__file__).parent / "data"
LEGEND = re.compile(r'<span>−([^<]+)</span><span class="s2d-bar"')  # the colour range of each heatmap
RUN = "fixture_run"


def token_texts(page):
    """The inner HTML of each coloured span of a heatmap (newline markers are nested empty spans)."""
    return re.findall(r'<span class="s2d-tok[^"]*"[^>]*>(.*?)</span>(?=<span class="s2d-tok|</div>)', page, flags=re.S)


@pytest.fixture(scope="module")
def store():
    return cb.Store(DATA)


# --------------------------------------------------------------------------------------------------------------
# runs and safety


def test_run_choices(store, tmp_path):
    assert store.run_choices() == [RUN]
    assert cb.Store(tmp_path / "missing").run_choices() == []
    assert cb.Store(DATA / RUN).run_choices() == ["."]  # the root itself may be a run
    assert cb.Store(DATA / RUN).open(".").name == RUN


@pytest.mark.parametrize("bad", ["../data/fixture_run", "/etc", "fixture_run/../../x"])
def test_open_rejects_paths_outside_root(store, bad):
    with pytest.raises(cb.AppError, match="not a run inside|outside the runs folder"):
        store.open(bad)


def test_open_rejects_symlink_escaping_root(tmp_path):
    outside = tmp_path / "outside"
    create_run(outside / "secret", {}, 0)
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside / "secret")
    store = cb.Store(root)
    assert store.run_choices() == []  # symlinks are not followed when listing
    with pytest.raises(cb.AppError, match="outside the runs folder"):
        store.open("link")


def test_missing_and_corrupt_runs_are_messages(tmp_path):
    store = cb.Store(tmp_path)
    with pytest.raises(cb.AppError, match="No run selected"):
        store.open(None)
    with pytest.raises(cb.AppError, match="no such run folder"):
        store.open("nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text("{not json")
    with pytest.raises(cb.AppError, match=r"bad/run\.json.*corrupt"):
        store.open("bad")
    run = create_run(tmp_path / "empty", {}, 0)
    assert store.snapshot_stages("empty") == []
    with pytest.raises(cb.AppError, match="no rollout snapshots"):
        store.snapshot("empty", "opd")
    # a corrupt snapshot names its file
    run.write_rollouts("opd", 3, [{"prompt_id": "p", "tokens": ["a"]}])
    run.rollout_path("opd", 3).write_bytes(b"garbage")
    with pytest.raises(cb.AppError, match=r"step_000003\.parquet"):
        store.snapshot("empty", "opd")
    with pytest.raises(cb.AppError, match="invalid stage name"):
        store.snapshot("empty", "../opd")
    # the stages view of an empty run degrades to empty figures and a note, without raising
    curves, table, *_, note = cb.stages_view(store, "empty")
    assert isinstance(curves, go.Figure) and table.empty and "No results.json" in note


# --------------------------------------------------------------------------------------------------------------
# token view


def test_snapshot_and_choices(store):
    assert store.snapshot_stages(RUN) == ["teacher_grpo", "fkl_warmup", "opd", "student_grpo", "direct_grpo"]
    assert store.steps(RUN, "opd") == [0, 150]
    df = store.snapshot(RUN, "opd")
    assert store.snapshot(RUN, "opd", 150) is df  # cached while the file is unchanged
    problems = cb.problem_choices(df)
    assert problems[0][1] == "arith-10000" and "correct]" in problems[0][0]
    samples = cb.sample_choices(df, "arith-10000", "student")
    assert [s for _, s in samples] == [0, 1, 2]
    assert [s for _, s in cb.sample_choices(df, "arith-10000", "teacher")] == [0]
    with pytest.raises(cb.AppError, match="no snapshot at step 7"):
        store.snapshot(RUN, "opd", 7)


def test_token_view_student_beside_teacher(store):
    s_html, t_html, fig, note = cb.token_view(store, RUN, "opd", 150, "arith-10001", 0)
    assert "student</b>" in s_html and "teacher</b>" in t_html
    for page in (s_html, t_html):
        assert "s2d-badge" in page and "gold <code>" in page and "extracted <code>" in page
        assert 'class="s2d-tok' in page and "p student" in page and "teacher top:" in page
    assert "arith-10001" in note
    assert isinstance(fig, go.Figure) and len(fig.data[0].x) == len(re.findall(r'class="s2d-tok[ "]', s_html))
    # both sides share one colour range
    assert len(set(LEGEND.findall(s_html + t_html))) == 1
    # top-k ids are named through the run's saved tokenizer (an unknown id would read "#<id>")
    tips = [html.unescape(t) for t in re.findall(r'data-tip="([^"]*)"', s_html)]
    tops = [top for t in tips for top in re.findall(r"(?:teacher|student) top: ([^\n]*)", t)]
    assert tops and not any(re.search(r"#\d", t) for t in tops)


def test_token_view_escapes_injected_script(store):
    s_html, *_ = cb.token_view(store, RUN, "opd", 150, "arith-10000", 2)
    assert "<script" not in s_html.lower()
    texts = [re.sub(r"<[^>]+>", "", t) for t in token_texts(s_html)]
    assert "&lt;" in texts and html.unescape("".join(texts)).startswith("<script>alert(1)</script>\n")


def test_token_view_multibyte(store):
    s_html, *_ = cb.token_view(store, RUN, "opd", 150, "arith-10001", 2)
    assert ">é</span>" in s_html and ">→</span>" in s_html


def test_token_view_colour_by_reverse_kl(store):
    s_html, *_ = cb.token_view(store, RUN, "opd", 150, "arith-10001", 0, color_by="reverse KL")
    assert "reverse kl" in s_html


def test_token_view_without_teacher_rows(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    row = {"prompt_id": "p0", "sample_idx": 0, "policy": "student", "prompt": "1+1=?", "tokens": ["2"],
           "implicit_reward": [0.5], "reverse_kl": [0.1], "correct": True, "answer": "2", "extracted": "2"}
    run.write_rollouts("opd", 1, [row])
    s_html, t_html, fig, _ = cb.token_view(cb.Store(tmp_path), "r", "opd", None, None, None)
    assert "✓ correct" in s_html and "No teacher rollout" in t_html


# --------------------------------------------------------------------------------------------------------------
# rollouts table


def test_rollout_table_filters(store):
    full = cb.rollout_table(store, RUN, "opd", 150)
    assert list(full.columns) == cb.TABLE_COLUMNS
    assert len(full) == 26 and set(full["policy"]) == {"student", "teacher"}
    ok = cb.rollout_table(store, RUN, "opd", 150, correct="correct")
    bad = cb.rollout_table(store, RUN, "opd", 150, correct="incorrect")
    assert ok["correct"].all() and (~bad["correct"].astype(bool)).all() and len(ok) + len(bad) == len(full)
    teacher = cb.rollout_table(store, RUN, "opd", 150, policy="teacher")
    assert (teacher["policy"] == "teacher").all() and len(teacher) == 8
    row = full[full["completion"].str.contains("alert")].iloc[0]
    assert cb.row_target(list(row)) == ("arith-10000", "student", 2)
    assert cb.row_target(None) is None


# --------------------------------------------------------------------------------------------------------------
# stages, compare


def test_stages_view(store):
    curves, table, bars, c1, c2, quad, verdict, note = cb.stages_view(store, RUN)
    titles = {a.text.split(" · ")[-1] for a in curves.layout.annotations}
    assert {"reward", "loss", "probe/mean_reverse_kl", "probe/mean_implicit_reward", "probe/accuracy"} <= titles
    assert list(table["arm"]) == ["workflow", "direct_grpo"]
    assert list(bars.data[0].x) == ["workflow", "direct_grpo"]
    assert len(c1.data) == 2 and len(c2.data) >= 2 and len(quad.data) == 1
    assert verdict.startswith("**C1**") and "**C2**" in verdict and "AUROC" in verdict
    assert note == "Results from results.json."


def test_aggregate_results_one_folder_up(tmp_path):
    src = DATA / RUN
    shutil.copytree(src, tmp_path / "multi" / "seed_0")
    (tmp_path / "multi" / "seed_0" / "results.json").unlink()
    agg = {"arms": {"workflow": {"accuracy": 0.5, "accuracy_sd": 0.1, "accuracy_n": 2}}}
    (tmp_path / "multi" / "results.json").write_text(json.dumps(agg))
    store = cb.Store(tmp_path)
    assert store.run_choices() == ["multi/seed_0"]
    _, table, bars, *_, note = cb.stages_view(store, "multi/seed_0")
    assert list(table["arm"]) == ["workflow"] and "aggregate" in note
    assert list(bars.data[0].error_y.array) == [0.1]


def test_compare_view(store):
    problems = cb.compare_problems(store, RUN)
    assert problems[0][1] == "arith-10000"
    page = cb.compare_view(store, RUN, "arith-10000")
    for stage in store.snapshot_stages(RUN):
        assert f">{stage} · step" in page
    assert len(LEGEND.findall(page)) == len(store.snapshot_stages(RUN)) and len(set(LEGEND.findall(page))) == 1
    only = cb.compare_view(store, RUN, "arith-10000", ["opd"])
    assert ">opd · step 150" in only and "fkl_warmup" not in only
    assert "in no stage" in cb.compare_view(store, RUN, "nope")
    with pytest.raises(cb.AppError):
        cb.compare_view(store, RUN, None)


# --------------------------------------------------------------------------------------------------------------
# live scoring


def test_live_without_checkpoints_is_a_message(store):
    assert cb.model_stages(store, RUN) == []
    with pytest.raises(cb.AppError, match="no saved model"):
        cb.live_view(store, RUN, "opd", "teacher_grpo", "1+2+3=?")


@pytest.fixture(scope="module")
def live_root(tmp_path_factory):
    from s2dlab.config import load_config
    from s2dlab.models import TINY_STUDENT, TINY_TEACHER, build_char_tokenizer, build_tiny_model

    root = tmp_path_factory.mktemp("live")
    run = create_run(root / "r", load_config("tiny").to_dict(), 0)
    tok = build_char_tokenizer()
    tok.save_pretrained(run.path / "tokenizer")
    for stage, spec in (("opd", TINY_STUDENT), ("teacher_grpo", TINY_TEACHER)):
        model = build_tiny_model(spec, tok, seed=1)
        model.save_pretrained(run.model_dir(stage))
        tok.save_pretrained(run.model_dir(stage))
    return root


def test_live_score_hook(live_root):
    store = cb.Store(live_root)
    run = store.open("r")
    assert cb.model_stages(store, "r") == ["teacher_grpo", "opd"]
    row = cb.live_score(run, "opd", "teacher_grpo", "12+34-5=?", answer="41", max_new_tokens=12, store=store)
    n = row["length"]
    assert 1 <= n <= 12 and len(row["tokens"]) == len(row["implicit_reward"]) == len(row["reverse_kl"]) == n
    assert row["correct"] is not None and row["prompt"] == "12+34-5=?"
    page, fig, note = cb.live_view(store, "r", "opd", "teacher_grpo", "1+2=?")
    assert 'class="s2d-tok' in page and "scored by teacher_grpo" in page and note == "Sampled and scored."
    with pytest.raises(cb.AppError, match="Type a problem"):
        cb.live_view(store, "r", "opd", "teacher_grpo", "   ")


def test_live_warns_about_large_models_on_cpu(live_root, monkeypatch):
    store = cb.Store(live_root)
    monkeypatch.setattr(cb, "LARGE_MODEL_BYTES", 1)
    monkeypatch.setattr(cb, "_cuda", lambda: False)
    warning = cb.live_warning(store, "r", "opd", "teacher_grpo")
    assert "no GPU" in warning
    with pytest.raises(cb.AppError, match="no GPU"):
        cb.live_view(store, "r", "opd", "teacher_grpo", "1+2=?")


# --------------------------------------------------------------------------------------------------------------
# app plumbing


def test_guard_turns_errors_into_messages():
    from s2dlab.dashboard.app import _guard

    def fails_known():
        raise cb.AppError("Run 'x' <b>is</b> missing")

    def fails_unknown():
        raise KeyError("boom")

    out = _guard(fails_known, ["", None])()
    assert out[:2] == ("", None) and out[2] == "⚠ Run 'x' &lt;b&gt;is&lt;/b&gt; missing"
    out = _guard(fails_unknown, [pd.DataFrame])()
    assert isinstance(out[0], pd.DataFrame) and out[1].startswith("⚠ Something went wrong: KeyError")
    assert "Traceback" not in out[1]
    assert _guard(lambda: (1, 2), [None, None])() == (1, 2, "")


def test_build_demo_and_main(monkeypatch, tmp_path):
    import gradio as gr

    from s2dlab.dashboard import app as app_module

    demo = app_module.build_demo(tmp_path / "no_runs_yet")
    assert isinstance(demo, gr.Blocks)
    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    app_module.main([str(DATA)])
    assert seen["server_name"] == "127.0.0.1" and seen["share"] is False and seen["server_port"] is None
    assert seen["inbrowser"] is False
    app_module.main([str(DATA), "--port", "7999", "--share", "--open"])
    assert seen["server_port"] == 7999 and seen["share"] is True and seen["inbrowser"] is True
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
