"""The dashboard's data access, called directly: on the committed fixture run (tests/data/fixture_run, a real
`s2dlab run --ablations` with short budgets, see scripts/make_fixture_run.py), on runs of the adversarial rows of
tests/token_data.py, and its plumbing (s2dlab.views.dashboard)."""

import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from s2dlab.core.runs import create_run, open_run  # noqa: E402
from s2dlab.views.dashboard import data as cb  # noqa: E402
from s2dlab.views.dashboard import models  # noqa: E402
from s2dlab.views.dashboard import store as store_mod
from s2dlab.workflow.summary import c1_path, c2_path  # noqa: E402

DATA = Path(__file__).parent / "data"
LEGEND = re.compile(r'<span>−([^<]+)</span><span class="s2d-bar"')  # the colour range of each heatmap
RUN = "fixture_run"
SUMMARY = json.loads((DATA / RUN / "summary.json").read_text())


def token_texts(page):
    """The inner HTML of each coloured span of a heatmap (newline markers are nested empty spans)."""
    return re.findall(r'<span class="s2d-tok[^"]*"[^>]*>(.*?)</span>(?=<span class="s2d-tok|</div>)', page, flags=re.S)


@pytest.fixture(scope="module")
def store():
    return cb.Store(DATA)


@pytest.fixture(scope="module")
def byte_root(tmp_path_factory):
    """A run of the adversarial rows (markup, multibyte text) scored through a byte-level tokenizer."""
    from tests.token_data import TEXTS, byte_level_tokenizer, scored_rows

    tok = byte_level_tokenizer()
    root = tmp_path_factory.mktemp("bytes")
    run = create_run(root / "bytes", {}, 0)
    tok.save_pretrained(run.path / "tokenizer")
    run.write_rollouts("opd", 0, scored_rows(tok, TEXTS))
    return root


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
    with pytest.raises(cb.AppError, match="Cannot open run"):
        cb.stages_view(store, "bad")
    run = create_run(tmp_path / "empty", {}, 0)
    assert store.snapshot_stages("empty") == []
    with pytest.raises(cb.AppError, match="no rollout snapshots"):
        store.snapshot("empty", "opd")
    # a run without stages still renders its (empty) summary: empty tables and figures, no exception
    view = cb.stages_view(store, "empty")
    assert view["arms"].empty and view["claims"].empty and isinstance(view["curves"], go.Figure)
    assert view["c1_verdict"].startswith("C1 not measured yet")
    # a corrupt snapshot names its file
    run.write_rollouts("opd", 3, [{"prompt_id": "p", "tokens": ["a"]}])
    run.rollout_path("opd", 3).write_bytes(b"garbage")
    with pytest.raises(cb.AppError, match=r"step_000003\.parquet"):
        store.snapshot("empty", "opd")
    with pytest.raises(cb.AppError, match="invalid stage name"):
        store.snapshot("empty", "../opd")
    (run.path / "summary.json").unlink()  # summarising it again meets the corrupt snapshot: a sentence naming it
    store_mod.SUMMARIES.clear()
    with pytest.raises(cb.AppError, match=r"summary of 'empty'.*step_000003\.parquet"):
        cb.stages_view(store, "empty")


# --------------------------------------------------------------------------------------------------------------
# token view and rollouts table on the fixture


def test_snapshot_and_choices(store):
    run = open_run(DATA / RUN)
    stages = store.snapshot_stages(RUN)
    assert stages == [s for s in run.stages() if run.rollout_steps(s)] and "opd" in stages
    steps = store.steps(RUN, "opd")
    df = store.snapshot(RUN, "opd")
    assert store.snapshot(RUN, "opd", steps[-1]) is df  # cached while the file is unchanged
    problems = cb.problem_choices(df)
    assert [p for _, p in problems] == list(dict.fromkeys(df["prompt_id"]))
    pid = problems[0][1]
    students = df[(df["prompt_id"] == pid) & (df["policy"] == "student")]
    assert [s for _, s in cb.sample_choices(df, pid, "student")] == sorted(students["sample_idx"])
    with pytest.raises(cb.AppError, match="no snapshot at step 7"):
        store.snapshot(RUN, "opd", 7)


def test_token_view_student_beside_teacher(store):
    df = store.snapshot(RUN, "opd")
    pid = df["prompt_id"].iloc[0]
    s_html, t_html, fig, note = cb.token_view(store, RUN, "opd", None, pid, 0)
    assert "student</b>" in s_html and "teacher</b>" in t_html
    for page in (s_html, t_html):
        assert "s2d-badge" in page and "gold <code>" in page and "extracted <code>" in page
        assert 'class="s2d-tok' in page and "p student" in page and "teacher top:" in page
    assert pid in note
    row = df[(df["prompt_id"] == pid) & (df["policy"] == "student") & (df["sample_idx"] == 0)].iloc[0]
    assert list(fig.data[1].y) == pytest.approx(list(row["implicit_reward"]))
    assert len(set(LEGEND.findall(s_html + t_html))) == 1  # both sides share one colour range
    # top-k ids are named through the run's saved tokenizer (an unknown id would read "#<id>")
    tips = [html.unescape(t) for t in re.findall(r'data-tip="([^"]*)"', s_html)]
    tops = [top for t in tips for top in re.findall(r"(?:teacher|student) top: ([^\n]*)", t)]
    assert tops and not any(re.search(r"#\d", t) for t in tops)


def test_token_view_escapes_markup_and_keeps_multibyte(byte_root):
    from tests.token_data import TEXTS

    store = cb.Store(byte_root)
    s_html, *_ = cb.token_view(store, "bytes", "opd", 0, "p2", 0)
    assert "<script" not in s_html.lower() and "<b>bold" not in s_html
    shown = html.unescape("".join(re.sub(r"<[^>]+>", "", t) for t in token_texts(s_html)))
    assert shown == TEXTS[2] + "<|im_end|>"
    s_html, *_ = cb.token_view(store, "bytes", "opd", 0, "p0", 0)
    assert "数学" in html.unescape(s_html) and "😀" in html.unescape(s_html)


def test_token_view_colour_by_reverse_kl(store):
    s_html, *_ = cb.token_view(store, RUN, "opd", None, None, None, color_by="reverse KL")
    assert "reverse kl" in s_html


def test_token_view_without_teacher_rows(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    row = {"prompt_id": "p0", "sample_idx": 0, "policy": "student", "prompt": "1+1=?", "tokens": ["2"],
           "implicit_reward": [0.5], "reverse_kl": [0.1], "correct": True, "answer": "2", "extracted": "2"}
    run.write_rollouts("opd", 1, [row])
    s_html, t_html, fig, _ = cb.token_view(cb.Store(tmp_path), "r", "opd", None, None, None)
    assert "✓ correct" in s_html and "No teacher rollout" in t_html


def test_rollout_table_filters(store):
    df = store.snapshot(RUN, "opd")
    full = cb.rollout_table(store, RUN, "opd", None)
    assert list(full.columns) == cb.TABLE_COLUMNS and len(full) == len(df)
    ok = cb.rollout_table(store, RUN, "opd", None, correct="correct")
    bad = cb.rollout_table(store, RUN, "opd", None, correct="incorrect")
    assert ok["correct"].all() and (~bad["correct"].astype(bool)).all() and len(ok) + len(bad) == len(full)
    teacher = cb.rollout_table(store, RUN, "opd", None, policy="teacher")
    assert (teacher["policy"] == "teacher").all() and len(teacher) == int((df["policy"] == "teacher").sum())
    first = full.iloc[0]
    assert cb.row_target(list(first)) == (first["prompt_id"], first["policy"], int(first["sample_idx"]))
    expected = float(np.sum(df.iloc[0]["implicit_reward"]))
    assert first["sum_implicit_reward"] == pytest.approx(expected, abs=1e-4)
    assert cb.row_target(None) is None


# --------------------------------------------------------------------------------------------------------------
# the Stages tab renders the summary


def test_stages_view_renders_the_summary(store):
    view = cb.stages_view(store, RUN)
    arms = view["arms"]
    from s2dlab.views.viz import ordered_arms

    assert list(arms["arm"]) == ordered_arms(SUMMARY) + ["(base student)"]
    acc_col = next(c for c in arms.columns if c.startswith("avg@"))
    for _, row in arms.iloc[:-1].iterrows():
        m = SUMMARY["arms"][row["arm"]]
        lo, hi = m["interval"]["ci"]
        assert row[acc_col] == f"{100 * m['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"
        assert row["student steps"] == m["student_steps"] and row["teacher steps"] == m["teacher_steps"]
        assert row["teacher-scored sequences"] == m["teacher_scored_sequences"] and row["block"] == m["block"]
    claims = view["claims"]
    assert len(claims) == len(SUMMARY["claims"])
    assert [s.split(" ", 1)[1] for s in claims["status"]] == [c["status"] for c in SUMMARY["claims"]]
    # verdict text is the summary's own
    for key in ("c1", "c2"):
        assert html.unescape(view[f"{key}_verdict"].replace("<br>", "\n")) == SUMMARY[key]["verdict"]
    assert view["verdict"] == ""  # no per-seed verdicts for one run
    # the arms figure: one bar per evaluated arm, error bars from the summary's intervals
    bars = {x: (y, up) for t in view["arms_figure"].data if t.type == "bar"
            for x, y, up in zip(t.x, t.y, t.error_y.array)}
    for arm, (y, up) in bars.items():
        m = SUMMARY["arms"][arm]
        assert y == pytest.approx(100 * m["accuracy"]) and up == pytest.approx(100 * m["interval"]["ci"][1] - y)
    assert view["c2_stage"] == "opd" and "opd" in view["c2_choices"]
    assert set(view["metrics_default"]) <= set(view["metrics"]) and "probe/auroc" in view["metrics"]


def test_c1_figure_points_and_labels_come_from_the_files_and_the_summary(store):
    fig = cb.stages_view(store, RUN)["c1_figure"]
    run = open_run(DATA / RUN)
    teachers = SUMMARY["c1"]["teachers"]
    n_points = sum(len(t.y) for t in fig.data)
    graded = sum(sum(r.get("correct") is not None for r in run.read_rows(c1_path(t))) for t in teachers)
    assert n_points == graded
    correct_values = sorted(fig.data[0].y)
    expected = sorted(r["sum_implicit_reward"] for t in teachers for r in run.read_rows(c1_path(t)) if r["correct"])
    assert correct_values == pytest.approx(expected)
    ticks = set(fig.data[0].x) | set(fig.data[1].x)
    for name, t in teachers.items():
        assert f"{name}<br>AUROC {t['auroc']:.2f} [{t['ci'][0]:.2f}, {t['ci'][1]:.2f}]" in ticks
    for cmp in SUMMARY["c1"]["comparisons"]:
        assert f"{cmp['teacher']} − {cmp['raw']}: AUROC difference {cmp['difference']:+.2f}" in fig.layout.title.text


def test_c2_histogram_counts_every_token_of_the_diagnostics_files(store):
    run = open_run(DATA / RUN)
    pair = next(p for p in SUMMARY["c2"]["pairs"] if p["stage"] == "opd")
    fig = cb.c2_view(store, RUN, "opd")
    assert [t.name.split(":")[0] for t in fig.data] == ["before", "after"]
    before, after = run.read_rows(c2_path(pair["init"])), run.read_rows(c2_path("opd"))
    for trace, rows, side in zip(fig.data, (before, after), ("before", "after")):
        n = sum(len(r["reverse_kl"]) for r in rows)
        assert sum(trace.customdata) == n and sum(trace.y) == pytest.approx(1.0)
        m = pair[side]
        assert f"mean {m['mean']:.3f} [{m['ci'][0]:.3f}, {m['ci'][1]:.3f}]" in trace.name
    first = next(p for p in SUMMARY["c2"]["pairs"] if p["init"] == "base_student")
    before_file, after_file = cb.c2_files(first)  # from the base student: the fixed C1 rollouts of its teacher
    assert before_file == c1_path(first["teacher"]) and after_file == c2_path(first["stage"])


def test_quadrants_from_the_summary(store):
    fig = cb.stages_view(store, RUN)["quadrants"]
    trace = next(t for t in fig.data if t.name.startswith("confident, teacher agrees") and t.yaxis == "y")
    for stage, share in zip(trace.x, trace.y):
        assert share == pytest.approx(SUMMARY["stages"][stage]["quadrants"]["quadrants"]["confident_agree"]
                                      ["token_share"])


def test_readers_never_recompute(store, monkeypatch):
    """With every measure of s2dlab.core.diagnostics broken, the dashboard still renders: it only reads the summary."""
    from s2dlab.core import diagnostics

    def broken(*a, **k):
        raise AssertionError("the dashboard recomputed a diagnostic")

    for name in ("auroc", "c1_separation", "signal_quadrants", "mean_reverse_kl",
                 "kl_change", "auroc_with_ci", "auroc_difference", "paired_difference", "accuracy_interval",
                 "first_error_reward", "length_auroc"):
        monkeypatch.setattr(diagnostics, name, broken)
    store_mod.SUMMARIES.clear()
    view = cb.stages_view(cb.Store(DATA), RUN)
    assert len(view["arms"]) > 1 and view["c1_figure"].data


def test_multi_seed_folder_shows_the_aggregate(tmp_path):
    from s2dlab.workflow.summary import write_aggregate

    for k in (0, 1):
        shutil.copytree(DATA / RUN, tmp_path / "multi" / f"seed_{k}",
                        ignore=shutil.ignore_patterns("*.safetensors", "lens"))
    agg = write_aggregate(tmp_path / "multi")  # the aggregate s2dlab writes (two copies of one run here)
    store = cb.Store(tmp_path)
    assert store.run_choices() == ["multi", "multi/seed_0", "multi/seed_1"]
    assert store.run_options()[0] == ("multi (2 seeds, aggregate)", "multi")
    view = cb.stages_view(store, "multi")
    assert "2 seeds" in view["note"] and "per seed %" in view["arms"].columns
    assert view["verdict"].count("**seed ") == 2 * len(agg["per_seed"])  # C1 and C2 of each seed, as stored
    acc_col = next(c for c in view["arms"].columns if c.startswith("avg@"))
    assert "2 seeds" in acc_col
    bridge = view["arms"][view["arms"]["arm"] == "bridge"].iloc[0]
    assert bridge[acc_col].startswith(f"{100 * agg['arms']['bridge']['accuracy']:.1f}")
    with pytest.raises(cb.AppError, match="folder of 2 seeds"):
        store.open("multi")


# --------------------------------------------------------------------------------------------------------------
# drill-down from a curve point


def test_drill_down_opens_the_nearest_snapshot(store):
    steps = store.steps(RUN, "opd")
    assert cb.nearest_snapshot(store, RUN, "opd", steps[-1] - 0.4) == steps[-1]
    assert cb.nearest_snapshot(store, RUN, "opd", -5) == steps[0]
    snap, top, note = cb.drill_down(store, RUN, "opd", steps[-1])
    assert snap == steps[-1] and f"snapshot step {snap}" in note
    df = store.snapshot(RUN, "opd", snap)
    largest = max(abs(float(v)) for r in df["implicit_reward"] for v in r)
    assert abs(top["implicit_reward"].iloc[0]) == pytest.approx(largest, abs=1e-4)
    assert list(top["implicit_reward"].abs()) == sorted(top["implicit_reward"].abs(), reverse=True)
    row = df[(df["prompt_id"] == top["prompt_id"].iloc[0]) & (df["sample_idx"] == top["sample_idx"].iloc[0])
             & (df["policy"] == top["policy"].iloc[0])].iloc[0]
    assert row["implicit_reward"][top["position"].iloc[0]] == pytest.approx(top["implicit_reward"].iloc[0], abs=1e-4)
    no_snapshots = next(s for s in open_run(DATA / RUN).stages() if not store.steps(RUN, s))
    with pytest.raises(cb.AppError, match="no rollout snapshots"):
        cb.nearest_snapshot(store, RUN, no_snapshots, 1)


# --------------------------------------------------------------------------------------------------------------
# token lens


def test_lens_view(store):
    from s2dlab.instruments.lens import read_lens, read_lens_index

    index = read_lens_index(DATA / RUN)
    rollouts, filters, default, note = cb.lens_choices(store, RUN)
    assert [k for _, k in rollouts] == [r["key"] for r in index["rollouts"]]
    assert filters[0] == cb.ALL_PAIRS and f"{len(index['pairs'])} (teacher ▸ student)" in note
    key = rollouts[0][1]
    rows = read_lens(DATA / RUN, key)
    page = cb.lens_view(store, RUN, key, "implicit reward", cb.ALL_PAIRS)
    assert page.count("<tr>") == len(rows) + 1 and f'data-flips="{sum(rows.iloc[0]["sign_change"])}"' in page
    teacher = filters[1].split(": ")[1]
    one = cb.lens_view(store, RUN, key, "reverse KL", f"teacher: {teacher}")
    assert one.count("<tr>") == int((rows["teacher"] == teacher).sum()) + 1 and "reverse KL" in one
    with pytest.raises(cb.AppError, match="No lens pair"):
        cb.lens_view(store, RUN, key, pairs="student: nope")


def test_run_without_lens_names_the_command(byte_root):
    with pytest.raises(cb.AppError, match=r"no token lens yet: run `s2dlab lens .*bytes`"):
        cb.lens_choices(cb.Store(byte_root), "bytes")


def test_lens_command_writes_what_the_tab_reads(tmp_path, capsys):
    from s2dlab.cli import main

    shutil.copytree(DATA / RUN, tmp_path / "r", ignore=shutil.ignore_patterns("lens"))
    assert main(["lens", str(tmp_path / "r")]) == 0
    assert "checkpoint pairs" in capsys.readouterr().out
    rollouts, filters, *_ = cb.lens_choices(cb.Store(tmp_path), "r")
    assert rollouts and 'class="s2d-lens"' in cb.lens_view(cb.Store(tmp_path), "r", rollouts[0][1])
    empty = create_run(tmp_path / "nothing", {}, 0)
    assert main(["lens", str(empty.path)]) == 2
    assert "no stage of this run saved a model" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------
# export


def test_export_is_one_self_contained_file(store, tmp_path):
    s_html, t_html, *_ = cb.token_view(store, RUN, "opd", None, None, None)
    path = Path(cb.export_file(tmp_path, "fixture <opd>", [s_html, t_html], RUN, "opd", "a/b"))
    assert path.parent == tmp_path and path.name == "fixture_run-opd-a_b.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and "<meta charset='utf-8'>" in text and "<style>" in text
    assert "<script" not in text.lower() and not re.search(r"(src|href)\s*=", text, flags=re.I)
    assert "http://" not in text and "https://" not in text and "@import" not in text
    assert "<title>fixture &lt;opd&gt;</title>" in text and s_html in text and t_html in text


# --------------------------------------------------------------------------------------------------------------
# live scoring


def test_live_without_checkpoints_is_a_message(store):
    assert set(cb.model_stages(store, RUN)) == {"teacher_grpo", "base_student", "fkl_warmup", "opd", "student_grpo"}
    with pytest.raises(cb.AppError, match="'cold_grpo' has no model in this run"):
        cb.live_view(store, RUN, "cold_grpo", "teacher_grpo", "1+2+3=?")


def test_live_score_on_the_fixture(store):
    run = store.open(RUN)
    row = cb.live_score(run, "opd", "teacher_grpo", "1+2-3+4=?", answer="4", max_new_tokens=12, store=store)
    n = row["length"]
    assert 1 <= n <= 12 and len(row["tokens"]) == len(row["implicit_reward"]) == len(row["reverse_kl"]) == n
    assert row["correct"] is not None and row["prompt"] == "1+2-3+4=?"
    page, fig, note = cb.live_view(store, RUN, "opd", "teacher_grpo", "1+2=?")
    assert 'class="s2d-tok' in page and "scored by teacher_grpo" in page and note == "Sampled and scored."
    with pytest.raises(cb.AppError, match="Type a problem"):
        cb.live_view(store, RUN, "opd", "teacher_grpo", "   ")


def test_live_warns_about_large_models_on_cpu(store, monkeypatch):
    monkeypatch.setattr(models, "LARGE_MODEL_BYTES", 1)
    monkeypatch.setattr(models, "cuda", lambda: False)
    warning = cb.live_warning(store, RUN, "opd", "teacher_grpo")
    assert "no GPU" in warning
    with pytest.raises(cb.AppError, match="no GPU"):
        cb.live_view(store, RUN, "opd", "teacher_grpo", "1+2=?")


# --------------------------------------------------------------------------------------------------------------
# app plumbing


def test_guard_turns_errors_into_messages():
    from s2dlab.core.errors import InputError
    from s2dlab.views.dashboard.ui import guard as _guard

    def fails_known():
        raise cb.AppError("Run 'x' <b>is</b> missing")

    def fails_input():
        raise InputError("position=99 is outside the completion")

    def fails_unknown():
        raise KeyError("boom")

    out = _guard(fails_known, ["", None])()
    assert out[:2] == ("", None) and out[2] == "⚠ Run 'x' &lt;b&gt;is&lt;/b&gt; missing"
    assert _guard(fails_input, [None])()[1] == "⚠ position=99 is outside the completion"
    out = _guard(fails_unknown, [pd.DataFrame])()
    assert isinstance(out[0], pd.DataFrame) and out[1].startswith("⚠ Something went wrong: KeyError")
    assert "Traceback" not in out[1]
    assert _guard(lambda: (1, 2), [None, None])() == (1, 2, "")
    kept = _guard(lambda: (1,), [None], clear=False)()
    assert kept[0] == 1 and kept[1] == {"__type__": "update"}  # a chained handler leaves the status as it is


def test_first_position_of_a_clicked_span():
    from s2dlab.views.dashboard.tabs.token import first_position as _first_position

    assert _first_position("7") == 7 and _first_position("12–14") == 12 and _first_position(None) is None


def test_build_demo_and_main(monkeypatch, tmp_path):
    import gradio as gr

    from s2dlab.views.dashboard import app as app_module

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


# --------------------------------------------------------------------------------------------------------------
# shared by a room: one model at a time, each model loaded once


def test_a_model_is_loaded_once_when_many_ask_at_once(store):
    """Eight threads ask for one checkpoint together: one load (the cache builds a missing value once) and eight
    copies of the same model; loading while another load runs is what broke ("Cannot copy out of meta tensor")."""
    import threading

    from s2dlab.views.dashboard.models import MODELS, load_live_model, model_location

    location = model_location(store, store.open(RUN), "opd")
    MODELS.clear()
    got, errors = [], []
    start = threading.Barrier(8)

    def ask():
        start.wait()
        try:
            got.append(load_live_model(location))
        except Exception as e:  # noqa: BLE001 - any failure is what the test looks for
            errors.append(e)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(got) == 8 and all(m is got[0] for m in got)
    assert len(MODELS.data) == 1


def test_model_work_never_overlaps():
    """Whatever calls them, two functions that load or run models never run at the same time."""
    import threading
    import time

    from s2dlab.views.dashboard.models import one_at_a_time

    inside, overlaps = [], []

    @one_at_a_time
    def work(k):
        inside.append(k)
        if len(inside) > 1:
            overlaps.append(list(inside))
        time.sleep(0.01)
        inside.remove(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []


def test_model_handlers_share_one_bounded_queue(tmp_path):
    """Every handler that loads or runs a model is in the one model queue, one at a time; the others are not."""
    from s2dlab.views.dashboard import build_demo
    from s2dlab.views.dashboard.ui import MODEL_QUEUE, MODEL_WORKERS, QUEUE_SIZE

    demo = build_demo(DATA)
    names = {f.api_name: f for f in demo.fns.values() if f.api_name}
    for name in ("branches", "probe", "estimators", "live"):
        assert names[name].concurrency_id == MODEL_QUEUE and names[name].concurrency_limit == MODEL_WORKERS, name
    for name in ("token_view", "lens", "open_run", "runs", "branch_position", "live_setup"):
        assert names[name].concurrency_id != MODEL_QUEUE, name
    assert demo._queue.max_size == QUEUE_SIZE


# --------------------------------------------------------------------------------------------------------------
# roles come from the stage records, never from names


def test_live_offers_stages_by_their_recorded_role(store):
    from s2dlab.views.dashboard import live

    run = store.open(RUN)
    setup = live.live_setup(store, RUN)
    for stage in setup["students"]:
        assert run.stage(stage).role == "student"
    for stage in setup["teachers"]:
        assert run.stage(stage).role == "teacher"
    assert set(setup["students"]) | set(setup["teachers"]) == set(cb.model_stages(store, RUN))
    # the workflow's pair: its final student (the stage of the arm bridge_1h_stage3) and its RL teacher
    from s2dlab.workflow.pipeline import ARMS

    assert setup["student"] == next(a.final for a in ARMS if a.name == "bridge_1h_stage3") == "student_grpo"
    assert setup["teacher"] == run.stage("opd").teacher == "teacher_grpo"
    # the example is a problem of the run's eval set: the first problem the probe snapshots sample, with its gold
    first = store.snapshot(RUN, store.snapshot_stages(RUN)[0])
    first = first[first["policy"] == "student"].iloc[0]
    assert (setup["problem"], setup["answer"]) == (first["prompt"], str(first["answer"]))


def test_default_student_is_the_last_finished_one_along_the_workflow(tmp_path):
    from s2dlab.views.dashboard import live

    shutil.copytree(DATA / RUN, tmp_path / "r", ignore=shutil.ignore_patterns("lens"))
    run = open_run(tmp_path / "r")
    run.update_stage("student_grpo", status="running")  # stage 3 in progress: OPD's student is the latest finished
    setup = live.live_setup(cb.Store(tmp_path), "r")
    assert (setup["student"], setup["teacher"]) == ("opd", "teacher_grpo")
    shutil.rmtree(run.path / "student_grpo")  # not started at all
    assert live.live_setup(cb.Store(tmp_path), "r")["student"] == "opd"


def test_live_draws_a_new_sample_each_click_with_its_seed_shown(store):
    from s2dlab.views.dashboard import build_demo

    demo = build_demo(DATA)
    run = next(f.fn for f in demo.fns.values() if f.api_name == "live")
    args = (RUN, "opd", "teacher_grpo", "1+2-3+4=?", "4", False)
    first, second = run(*args, None, True), run(*args, None, True)
    seeds = [next(v for k, v in out.items() if getattr(k, "elem_id", None) == "live-seed") for out in (first, second)]
    pages = [next(v for k, v in out.items() if getattr(k, "elem_id", None) == "live-html") for out in (first, second)]
    assert seeds[0] != seeds[1] and all(f"seed {s})" in p for s, p in zip(seeds, pages))
    again = run(*args, seeds[0], False)  # the seed kept: the same sample
    assert next(v for k, v in again.items() if getattr(k, "elem_id", None) == "live-html") == pages[0]
    bad = run(*args, 2.5, False)
    assert next(v for k, v in bad.items() if getattr(k, "elem_id", None) == "live-status").startswith(
        "⚠ The seed 2.5 is not a whole number")


@pytest.fixture(scope="module")
def full_root(tmp_path_factory):
    from tests.dashboard_runs import full_run_root

    return full_run_root(tmp_path_factory)


def test_live_roles_on_a_whole_ablations_run(full_root):
    """Every arm's stages: students named after teachers (`raw_teacher.opd`, `sft_teacher.fkl_warmup`) are
    students, and the default pair is the workflow's."""
    from s2dlab.views.dashboard import live
    from tests.dashboard_runs import RUN as FULL

    store = cb.Store(full_root)
    run = store.open(FULL)
    setup = live.live_setup(store, FULL)
    roles = {s: run.stage(s).role for s in run.stages()}
    assert setup["teachers"] == [s for s in run.stages() if roles[s] == "teacher"]
    assert setup["students"] == [s for s in run.stages() if roles[s] == "student"]
    assert {"raw_teacher.opd", "sft_teacher.fkl_warmup", "no_warmup.opd"} <= set(setup["students"])
    assert not {"raw_teacher.opd", "sft_teacher.fkl_warmup"} & set(setup["teachers"])
    assert (setup["student"], setup["teacher"]) == ("student_grpo", "teacher_grpo")


# --------------------------------------------------------------------------------------------------------------
# errors where the eye is: a damaged file disables only what reads it; numbers get sentences


def damaged_copy(tmp_path, relpath: str) -> cb.Store:
    """A copy of the fixture run with `relpath` cut to half its bytes (a truncated write)."""
    shutil.copytree(DATA / RUN, tmp_path / "r", ignore=shutil.ignore_patterns("*.safetensors", "lens"))
    path = tmp_path / "r" / relpath
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cb.Store(tmp_path)


def test_a_truncated_snapshot_disables_only_its_views(tmp_path):
    from s2dlab.views.dashboard import build_demo

    last = f"opd/rollouts/step_{open_run(DATA / RUN).rollout_steps('opd')[-1]:06d}.parquet"
    store = damaged_copy(tmp_path, last)
    demo = build_demo(tmp_path)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    by_id = lambda out: {getattr(k, "elem_id", None): v for k, v in out.items()}  # noqa: E731
    opened = by_id(fns["open_run"]("r"))
    assert opened["stage-dd"]["value"] == "opd" and ("opd", "opd") in opened["stage-dd"]["choices"]
    assert opened["status"] == ""  # the run opens: the pickers keep every stage
    token = by_id(fns["token_view"]("r", "opd", None, None, None, None, "implicit reward"))
    assert token["token-status"].startswith("⚠ Cannot read this snapshot") and last in token["token-status"]
    # another stage's snapshot, the Stages tab and the Live tab still work
    other = by_id(fns["token_view"]("r", "fkl_warmup", None, None, None, None, "implicit reward"))
    assert other["token-status"] == "" and "s2d-tok" in other["student-heatmap"]
    assert len(cb.stages_view(store, "r")["arms"]) > 1
    assert by_id(fns["live_setup"]("r"))["live-status"] == ""


def test_a_truncated_c2_file_empties_only_the_c2_histogram(tmp_path):
    pair = next(p for p in SUMMARY["c2"]["pairs"] if p["stage"] == "opd")
    store = damaged_copy(tmp_path, pair["after_file"])
    view = cb.stages_view(store, "r")
    assert set(view["problems"]) == {"c2"} and pair["after_file"] in view["problems"]["c2"]
    assert len(view["arms"]) > 1 and len(view["claims"]) and view["c1_figure"].data and view["curves"].data
    assert not view["c2_figure"].data  # the empty figure that says why


@pytest.mark.parametrize("sample, said", [(7, "Sample #7 of problem .* is in no stage's latest snapshot"),
                                          (-1, "The student sample -1 is out of range"),
                                          (2.5, "The student sample 2.5 is not a whole number"),
                                          (None, "The student sample is empty")])
def test_compare_sample_numbers_get_a_sentence(store, sample, said):
    pid = cb.compare_problems(store, RUN)[0][1]
    with pytest.raises(cb.AppError, match=said):
        cb.compare_view(store, RUN, pid, None, sample)
    assert "s2d-tok" in cb.compare_view(store, RUN, pid, None, 1.0)  # 1.0 is a whole number


# --------------------------------------------------------------------------------------------------------------
# a run followed live


def in_progress_copy(tmp_path) -> "Path":
    """The fixture run as it was while OPD trained: no later stage, OPD running with its first snapshots."""
    keep = {"run.json", "tokenizer", "base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd"}
    run_dir = tmp_path / "live"
    run_dir.mkdir()
    for p in (DATA / RUN).iterdir():
        if p.name in keep:
            (shutil.copytree if p.is_dir() else shutil.copy)(p, run_dir / p.name)
    run = open_run(run_dir)
    steps = run.rollout_steps("opd")
    run.rollout_path("opd", steps[-1]).unlink()  # its last snapshot is still to come
    run.update_stage("opd", status="running")
    return run_dir


def test_following_a_run_keeps_the_selection_and_shows_what_landed(tmp_path):
    from s2dlab.views.dashboard import build_demo

    run_dir = in_progress_copy(tmp_path)
    run = open_run(run_dir)
    demo = build_demo(tmp_path, poll_seconds=1)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    by_id = lambda out: {getattr(k, "elem_id", None) or k: v for k, v in out.items()}  # noqa: E731
    opened = fns["open_run"]("live")
    seen = next(v for k, v in opened.items() if isinstance(v, dict) and "stages" in v)
    first = by_id(opened)
    assert ("opd · running", "opd") in first["stage-dd"]["choices"] and "opd** is running" in first["follow"]
    early = run.rollout_steps("opd")
    assert first["step-dd"]["value"] == early[-1]
    # nothing new: nothing is sent
    tick = fns["follow"]
    idle = by_id(tick("live", "fkl_warmup", 0, seen, ["probe/mean_reverse_kl"], ["opd"], "opd", "opd", "teacher_grpo"))
    assert idle == {"status": {"__type__": "update"}}  # only "leave the status line as it is"
    # OPD writes its last snapshot and more metric lines, then finishes; stage 3 starts
    last = max(open_run(DATA / RUN).rollout_steps("opd"))
    rows = open_run(DATA / RUN).rollouts("opd", last).to_dict("records")
    run.write_rollouts("opd", last, rows)
    for record in open_run(DATA / RUN).metrics("opd")[-2:]:
        run.append_metrics("opd", {**record, "step": record.get("step", 0) + 100})
    run.update_stage("opd", status="done")
    run.update_stage("student_grpo", status="running", role="student", init="opd")
    run.write_rollouts("student_grpo", 0, rows)
    got = by_id(tick("live", "fkl_warmup", 0, seen, ["probe/mean_reverse_kl"], ["opd"], "opd", "opd", "teacher_grpo"))
    # the user's choice (fkl_warmup, step 0) is kept: no value is sent back; the new stage is offered, marked
    # running, and fkl_warmup's snapshots did not change, so its steps are not sent
    assert "value" not in got["stage-dd"] and "step-dd" not in got
    assert ("student_grpo · running", "student_grpo") in got["stage-dd"]["choices"]
    assert ("opd", "opd") in got["stage-dd"]["choices"] and "student_grpo** is running" in got["follow"]
    # the curves: the chosen metric over the chosen stage, with its new points
    curves = got["stage-curves"]
    xs = [x for t in curves.data for x in (t.x or [])]
    assert max(xs) >= 100 and got["curves-status"] == ""
    # a later look at the chosen stage: its new snapshot is offered, the chosen step kept
    seen = next(v for k, v in got.items() if isinstance(v, dict) and "stages" in v)
    run.write_rollouts("opd", last + 1, rows)
    again = by_id(tick("live", "opd", early[0], seen, ["probe/mean_reverse_kl"], ["opd"], "opd", "opd", "teacher_grpo"))
    assert "value" not in again["step-dd"] and last + 1 in again["step-dd"]["choices"]


# --------------------------------------------------------------------------------------------------------------
# readable on a laptop: tables, numbers, the empty state, the export


@pytest.mark.parametrize("text, shown", [("43.8 [31.5, 56.0]", "44 [32, 56]"),
                                         ("-3.1 [-27.6, +21.3]", "-3 [-28, +21]"),
                                         ("0.528 [0.312, 0.850]", "0.53 [0.31, 0.85]"),
                                         ("-0.014 [-0.063, +0.017]", "-0.014 [-0.063, +0.017]"),
                                         ("-0.000 [-0.115, +0.107]", "0.00 [-0.12, +0.11]"),
                                         ("within noise", "within noise"), (3.25, 3.25)])
def test_numbers_are_as_precise_as_their_interval(text, shown):
    from s2dlab.views.dashboard.ui import round_interval

    assert round_interval(text) == shown


def test_table_columns_hold_their_longest_word():
    from s2dlab.views.dashboard.ui import (
        CELL_PAD_PX,
        CHAR_PX,
        WRAP_CHARS,
        column_widths,
    )

    df = pd.DataFrame({"correct": [True], "paper row": ["- stage 2b (teacher-sample SFT only) and more words here"],
                       "arm": ["bridge_raw_teacher"]})
    widths = [float(w.removesuffix("px")) for w in column_widths(df)]
    assert widths[0] >= len("correct") * CHAR_PX and widths[2] >= len("bridge_raw_teacher") * CHAR_PX
    assert widths[1] == int(WRAP_CHARS * CHAR_PX + CELL_PAD_PX)  # a long text wraps on lines of WRAP_CHARS


def test_empty_runs_folder_says_how_to_make_a_run(tmp_path):
    from s2dlab.views.dashboard import build_demo

    demo = build_demo(tmp_path)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    said = next(v for k, v in fns["runs"](None).items() if getattr(k, "elem_id", None) == "status")
    assert "\n" not in said and "`s2dlab demo" in said and "`s2dlab run" in said
    # the tables show their column names before any run, never "1 2 3"
    arms = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "arms-table")
    assert arms.value["headers"][0] == "arm"


def test_export_carries_the_problem_both_rollouts_and_the_chart(store, tmp_path):
    import re as _re

    from s2dlab.views.dashboard import export

    df = store.snapshot(RUN, "opd")
    pid = str(df["prompt_id"].iloc[0])
    s_html, t_html, *_ = cb.token_view(store, RUN, "opd", None, pid, 0)
    path = Path(export.token_view_export(store, tmp_path, RUN, "opd", None, pid, 0, None, s_html, t_html))
    text = path.read_text(encoding="utf-8")
    student = df[(df["prompt_id"] == pid) & (df["policy"] == "student") & (df["sample_idx"] == 0)].iloc[0]
    assert html.escape(student["prompt"]) in text and s_html in text and t_html in text
    bars = _re.findall(r"<rect [^>]*><title>#(\d+) ", text)
    assert len(bars) == 2 * len(student["tokens"])  # reverse KL and implicit reward at every position
    assert "<script" not in text.lower() and "http://" not in text and "https://" not in text


def test_the_export_folder_lives_as_long_as_the_app(tmp_path):
    from s2dlab.views.dashboard import build_demo

    demo = build_demo(DATA)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    out = fns["token_view"](RUN, "opd", None, None, None, None, "implicit reward")
    path = Path(next(v for k, v in out.items() if getattr(k, "elem_id", None) == "export-token"))
    assert path.is_file() and path.parent.name.startswith("s2dlab-export-")
    demo.close()
    assert not path.parent.exists()


def test_a_look_at_a_run_in_progress_never_sends_a_pickers_value(tmp_path):
    """The pickers' values are the user's: a look answered after a pick (its inputs read before it) must not put
    the old run, stage or step back. A look sends new choices only, and only for what changed."""
    import gradio as gr

    from s2dlab.views.dashboard import follow
    from s2dlab.views.dashboard.store import Store
    from s2dlab.views.dashboard.tabs.header import Header

    run = open_run(in_progress_copy(tmp_path))
    with gr.Blocks():
        header = Header(Store(tmp_path), exports=None, poll_seconds=1)
    ctx = header.ctx
    steps = run.rollout_steps("fkl_warmup")
    seen = follow.run_state(ctx.store, "live")
    assert header.on_tick("live", "fkl_warmup", steps[-1], seen) == {}  # nothing changed, nothing sent

    with open(run.stage_dir("fkl_warmup") / "metrics.jsonl", "a") as f:  # the running stage logged a step
        f.write(json.dumps({"step": 999, "loss": 0.1}) + "\n")
    out = header.on_tick("live", "fkl_warmup", steps[-1], seen)
    assert out[header.seen] != seen and "value" not in out[ctx.run_dd]
    assert ctx.stage_dd not in out and ctx.step_dd not in out  # no new snapshot: the pickers are left alone

    seen = out[header.seen]
    last = run.rollout_steps("opd")[-1]
    run.write_rollouts("opd", last + 1, run.rollouts("opd", last).to_dict("records"))  # opd wrote a snapshot
    out = header.on_tick("live", "fkl_warmup", steps[-1], seen)
    assert [v for _, v in out[ctx.stage_dd]["choices"]] == ["teacher_grpo", "fkl_warmup", "opd"]
    assert "value" not in out[ctx.stage_dd] and ctx.step_dd not in out  # fkl_warmup's snapshots did not change
    out = header.on_tick("live", "opd", last, seen)
    assert out[ctx.step_dd]["choices"][-1] == last + 1 and "value" not in out[ctx.step_dd]
