"""The two rules of a run folder: it keeps the config it was made with (a change stops, or retrains exactly what the
change touches with --retrain), and one process writes it at a time (a lock that names its holder and dies with it)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from s2dlab import cli
from s2dlab.core.runs import LOCK_FILE, RunBusyError, lock_holder, run_lock
from tests.test_stages import SMALL

ROOT = Path(__file__).resolve().parents[1]


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


# --- one writer ----------------------------------------------------------------------------------------------------------

def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding `folder`'s lock, as `s2dlab run` would; returns once it holds it."""
    code = textwrap.dedent(f"""
        import sys, time
        from s2dlab.core.runs import run_lock
        with run_lock({str(folder)!r}, command="s2dlab run --out {folder}"):
            print("held", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_told_who_holds_the_folder_and_a_killed_holder_frees_it(tmp_path, capsys):
    folder = tmp_path / "run"
    proc = hold_lock(folder)
    try:
        with pytest.raises(RunBusyError) as err:
            with run_lock(folder):
                pass
        msg = str(err.value)
        assert f"process {proc.pid}" in msg and f"s2dlab run --out {folder}" in msg and "since" in msg
        assert lock_holder(folder)["pid"] == proc.pid
        # the command line says the same in one line, and writes nothing
        assert cli.main(["stage", "opd", "--out", str(folder), *SMALL]) == 2
        err_text = capsys.readouterr().err
        assert len(err_text.strip().splitlines()) == 1 and f"in use by process {proc.pid}" in err_text
        assert sorted(p.name for p in folder.iterdir()) == [LOCK_FILE]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # SIGKILL gives the process no chance to clean up; the operating system still drops its lock
    assert lock_holder(folder) is None
    with run_lock(folder):
        assert lock_holder(folder)["command"] == "this process"
    assert not (folder / LOCK_FILE).exists()  # a holder that ends normally leaves no file


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path / "r"):
        with run_lock(tmp_path / "r"):
            pass
        assert lock_holder(tmp_path / "r") is not None  # still held by the outer block
    assert lock_holder(tmp_path / "r") is None


def test_notebook_build_and_terminal_run_cannot_train_the_same_folder(tmp_path):
    """The workshop's case: a notebook's `lab.build` while `s2dlab run` holds the folder."""
    from s2dlab import tutorial

    lab = tutorial.setup("tiny", tmp_path / "run", overrides=SMALL, verbose=False)
    proc = hold_lock(lab.run.path)
    try:
        with pytest.raises(RunBusyError, match=f"in use by process {proc.pid}"):
            lab.build("teacher_grpo")
        assert lab.finished() == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


# --- one config ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rules") / "run"
    assert cli.main(["run", "--out", str(out), *SMALL]) == 0
    return out


def stage_info(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "stage.json").read_text())


def test_retrain_trains_again_exactly_what_the_change_touches(small_run, capsys):
    import shutil

    run = small_run.with_name("retrain")
    shutil.copytree(small_run, run)
    before = {s: tree_digest(run / s) for s in ("base_student", "teacher_grpo", "fkl_warmup", "cold_grpo")}
    finished = {s: stage_info(run, s)["finished"] for s in ("opd", "student_grpo")}
    capsys.readouterr()

    # without --retrain: one line, nothing written
    digest = tree_digest(run)
    assert cli.main(["run", "--out", str(run), *SMALL, "opd.steps=3"]) == 2
    assert "retrain opd, student_grpo" in capsys.readouterr().err and tree_digest(run) == digest

    assert cli.main(["run", "--out", str(run), *SMALL, "opd.steps=3", "--retrain"]) == 0
    out = capsys.readouterr().out
    assert "--retrain: retrain opd, student_grpo" in out
    # before the change: byte for byte as they were; the changed stage and the one after it: trained again
    assert {s: tree_digest(run / s) for s in before} == before
    assert stage_info(run, "opd")["steps"] == 3
    for s in ("opd", "student_grpo"):
        assert stage_info(run, s)["status"] == "done" and stage_info(run, s)["finished"] > finished[s]
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["opd"]["steps"] == 3
    assert info["retrained"][-1]["stages"] == ["opd", "student_grpo"]
    assert info["retrained"][-1]["changed"]["opd.steps"][1] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stages"]["opd"]["steps"] == 3

    # the same config again is a plain resume: nothing retrained
    again = stage_info(run, "student_grpo")["finished"]
    assert cli.main(["run", "--out", str(run), *SMALL, "opd.steps=3"]) == 0
    assert stage_info(run, "student_grpo")["finished"] == again


def test_eval_retrain_evaluates_again_under_the_new_settings(small_run, capsys):
    import shutil

    run = small_run.with_name("reeval")
    shutil.copytree(small_run, run)
    models = tree_digest(run / "opd" / "model")
    assert cli.main(["eval", str(run), "eval.greedy=true", "--retrain"]) == 0
    assert models == tree_digest(run / "opd" / "model")
    for stage in ("base_student", "opd", "cold_grpo"):
        ev = json.loads((run / stage / "eval.json").read_text())
        assert ev["config"]["n_samples"] == 1 and "greedy" in ev["sets"]["arithmetic"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["arms"]["cold_grpo"]["greedy"] is not None
    assert json.loads((run / "run.json").read_text())["config"]["eval"]["greedy"] is True


def test_demo_on_a_finished_run_prints_the_same_table_as_the_fresh_run(small_run, capsys, monkeypatch):
    """`s2dlab demo` reuses a finished run: the arms table it prints is the one `s2dlab run` printed."""
    import yaml

    from s2dlab.core.config import load_config

    run = small_run.with_name("demo")
    capsys.readouterr()
    monkeypatch.setattr(cli, "load_config", lambda preset: load_config(preset, overrides=SMALL))
    assert cli.main(["demo", "--out", str(run), "--no-app"]) == 0
    fresh = capsys.readouterr().out
    assert cli.main(["demo", "--out", str(run), "--no-app"]) == 0
    reused = capsys.readouterr().out
    table = lambda text: text[text.index("results ("):text.index("written to")]  # noqa: E731
    assert "resuming the run in" in reused and "bridge_1h_stage3" in table(reused)
    assert table(reused) == table(fresh)
    assert yaml.safe_load(yaml.safe_dump(json.loads((run / "run.json").read_text())))["config"]["opd"]["steps"] == 2
