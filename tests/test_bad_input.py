"""Bad input gets one line and exit status 2, and never changes what a run folder already holds.

One row per mistake a user makes at the command line (a file where a folder belongs, a read-only folder, a port in
use, a non-UTF-8 data file, a changed config on an existing run, ...): each is run through `s2dlab.cli.main` on a
copy of the committed fixture run, and the test asserts the exit status, that stderr is exactly one line naming the
value, and that every file of the run folder is byte for byte what it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from s2dlab import cli

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "fixture_run"


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_copy(tmp_path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(FIXTURE, dst)
    return dst


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made read-only for this process: chmod for an ordinary user, a read-only bind mount for root (root
    writes through permission bits). Skips when neither works here."""
    if os.geteuid() != 0:
        mode = folder.stat().st_mode
        for p in [folder, *folder.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        try:
            yield folder
        finally:
            for p in [folder, *folder.rglob("*")]:
                if p.is_dir():
                    p.chmod(0o755)
            folder.chmod(mode)
        return
    ok = subprocess.run(["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True)
    if ok.returncode == 0:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], capture_output=True)
    if ok.returncode != 0 or os.access(folder, os.W_OK) and _writable(folder):
        if ok.returncode == 0:
            subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("cannot make a read-only folder here (root without mount)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


def one_line(capsys, argv: list[str], *needles: str, rc: int = 2) -> str:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == rc, f"exit {code}, stderr: {err}"
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


def stored(run: Path, key: str):
    section, name = key.split(".")
    return json.loads((run / "run.json").read_text())["config"][section][name]


def config_file(run: Path, tmp_path: Path, **changes) -> Path:
    """A --config YAML that gives the run's own config, with `changes` (`{"opd.steps": 7}`) on top."""
    import yaml

    cfg = json.loads((run / "run.json").read_text())["config"]
    for key, value in changes.items():
        section, name = key.split(".")
        cfg[section][name] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def non_utf8(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_bytes(b'{"problem": "1+1=?", "answer": "2"}\n{"problem": "\xff\xfe", "answer": "3"}\n')
    return path


# --- each row: the mistake, the line it prints, the run folder unchanged ------------------------------------------------

def test_changed_config_on_a_finished_run_stops_with_the_keys_and_both_ways_out(capsys, run_copy, tmp_path):
    before = checksums(run_copy)
    line = one_line(capsys, ["run", "--out", run_copy, "--config", config_file(run_copy, tmp_path, **{"opd.steps": 7})],
                    f"opd.steps {stored(run_copy, 'opd.steps')} -> 7", "a new --out", "--retrain")
    # the stages OPD's keys touch and everything after them, and nothing before
    assert "retrain opd, student_grpo, replay, full.opd" in line and "teacher_grpo," not in line
    assert checksums(run_copy) == before


def test_stage_with_a_new_value_on_a_finished_stage_stops(capsys, run_copy, tmp_path):
    before = checksums(run_copy)
    one_line(capsys, ["stage", "opd", "--out", run_copy, "--config",
                      config_file(run_copy, tmp_path, **{"opd.learning_rate": 0.001})],
             f"opd.learning_rate {stored(run_copy, 'opd.learning_rate')} -> 0.001", "--retrain")
    assert checksums(run_copy) == before


def test_eval_with_another_eval_config_stops(capsys, run_copy):
    before = checksums(run_copy)
    one_line(capsys, ["eval", run_copy, "eval.n_samples=3"], "eval.n_samples 2 -> 3", "evaluate every stage again")
    one_line(capsys, ["eval", run_copy, "opd.steps=3"], "eval.* settings only", "--retrain")
    assert checksums(run_copy) == before


def test_seeds_into_a_single_run_folder_stops(capsys, run_copy, tmp_path):
    before = checksums(run_copy)
    one_line(capsys, ["run", "--out", run_copy, "--seeds", "2", "--config", config_file(run_copy, tmp_path)],
             "is a single run", "--seeds 2")
    assert checksums(run_copy) == before and not list(run_copy.glob("seed_*"))


@pytest.mark.parametrize("key,value,needle", [
    ("opd.learning_rate", "nan", "not a finite number"),
    ("teacher_grpo.learning_rate", "inf", "not a finite number"),
    ("seed", "-1", "seed=-1 must be >= 0"),
    ("eval.limit", "-1", "eval.limit=-1 must be > 0"),
])
def test_bad_values_are_refused_at_load_before_any_folder_is_made(capsys, tmp_path, key, value, needle):
    out = tmp_path / "new"
    one_line(capsys, ["run", "--out", out, f"{key}={value}"], needle)
    assert not out.exists()


def test_non_utf8_data_file_is_one_line(capsys, tmp_path, tiny_folders, run_copy):
    bad = non_utf8(tmp_path)
    one_line(capsys, ["check", "--teacher", tiny_folders / "teacher", "--student", tiny_folders / "student", "--data",
                      bad, "--n", 1, "--out", tmp_path / "chk"], f"{bad}:2: not UTF-8", "save the file as UTF-8")
    out = tmp_path / "r"
    one_line(capsys, ["run", "--out", out, "task.name=math", f"task.source={bad}", "eval.sets=math500",
                      f"eval.sources={{math500: {bad}}}"], "not UTF-8")
    assert not out.exists()
    before = checksums(run_copy)  # checked before --retrain removes any eval.json
    one_line(capsys, ["eval", run_copy, "eval.sets=math500", f"eval.sources={{math500: {bad}}}", "--retrain"],
             "not UTF-8")
    assert checksums(run_copy) == before


def test_a_file_where_a_folder_belongs(capsys, tmp_path, run_copy):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    one_line(capsys, ["run", "--out", afile], "afile", "is a file")
    one_line(capsys, ["stage", "opd", "--out", afile], "afile", "is a file")
    for argv in (["eval", afile], ["score", afile], ["lens", afile], ["report", afile]):
        one_line(capsys, argv, "afile", "no such run folder")
    one_line(capsys, ["copy", run_copy, afile], "afile", "is a file")
    before = checksums(run_copy)
    one_line(capsys, ["report", run_copy, "--html", tmp_path], "is a folder", "arms.html")
    assert checksums(run_copy) == before and afile.read_text() == "not a folder"


def test_missing_parent_folders_are_made(capsys, tmp_path, run_copy):
    html = tmp_path / "new" / "deeper" / "arms.html"
    assert cli.main(["report", str(run_copy), "--html", str(html)]) == 0
    assert "<html>" in html.read_text() and "plotly" in html.read_text()
    dst = tmp_path / "a" / "b" / "copy"
    assert cli.main(["copy", str(run_copy), str(dst), "opd"]) == 0
    assert (dst / "opd" / "model" / "config.json").is_file()


def test_read_only_folders(capsys, tmp_path, run_copy):
    ro = tmp_path / "ro"
    shutil.copytree(FIXTURE, ro / "run")
    with read_only(ro):
        before = checksums(ro / "run")
        for argv in (["run", "--out", ro / "new"], ["stage", "opd", "--out", ro / "new"],
                     ["report", run_copy, "--html", ro / "arms.html"], ["copy", run_copy, ro / "copy"],
                     ["eval", ro / "run"], ["lens", ro / "run", "--replace"]):
            one_line(capsys, argv, str(ro), "give a folder or file you can write")
        # reading needs no write access: score prints the summary of a read-only run
        assert cli.main(["score", str(ro / "run")]) == 0
        assert checksums(ro / "run") == before


def test_corrupt_eval_json_is_named_and_force_repairs_it(capsys, run_copy):
    (run_copy / "opd" / "eval.json").write_text("{ half a file")
    one_line(capsys, ["eval", run_copy, "--stage", "opd"], "opd/eval.json", "corrupt JSON", "--force")
    assert cli.main(["eval", str(run_copy), "--stage", "opd", "--force"]) == 0
    assert json.loads((run_copy / "opd" / "eval.json").read_text())["stage"] == "opd"


def test_lens_that_would_drop_pairs_asks_for_replace(capsys, run_copy):
    before = checksums(run_copy)
    line = one_line(capsys, ["lens", run_copy], "has 60 pairs", "--replace")
    assert "dropping" in line and checksums(run_copy) == before


def test_lens_files_from_two_computations_are_refused(run_copy):
    from s2dlab.core.runs import RunStoreError
    from s2dlab.instruments.lens import check_lens, read_lens

    index = json.loads((run_copy / "lens" / "lens.json").read_text())
    (run_copy / "lens" / "lens.json").write_text(json.dumps({**index, "lens_id": "another"}))
    with pytest.raises(RunStoreError, match="different computations"):
        check_lens(run_copy)
    with pytest.raises(RunStoreError, match="s2dlab lens"):
        read_lens(run_copy)
    (run_copy / "lens" / "lens.parquet").unlink()
    with pytest.raises(RunStoreError, match="not both there"):
        check_lens(run_copy)


def test_missing_local_model_path_is_not_called_a_hub_id(capsys, tmp_path, tiny_folders):
    data = tmp_path / "p.jsonl"
    data.write_text('{"problem": "1+2+3+4=?", "answer": "10"}\n')
    for path in (tmp_path / "nothere", "runs/x/student", "./student"):
        line = one_line(capsys, ["check", "--teacher", path, "--student", tiny_folders / "student", "--data", data,
                                 "--n", 1, "--out", tmp_path / "chk"], str(path), "no such file or folder")
        assert "hf download" not in line


def test_copy_makes_an_ordinary_folder_and_clears_what_a_killed_copy_left(tmp_path, run_copy):
    from s2dlab.tutorial import copy_stages

    dst = tmp_path / "dst"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".dst.{dead.pid}.abcd.tmp"  # what a copy killed by SIGKILL leaves
    stale.mkdir()
    alive = tmp_path / f".dst.{os.getpid()}.efgh.tmp"  # a copy still running (this process)
    alive.mkdir()
    old = os.umask(0o022)
    try:
        copy_stages(run_copy, dst, ["opd"])
    finally:
        os.umask(old)
    assert dst.stat().st_mode & 0o777 == 0o755
    assert not stale.exists() and alive.exists()


# --- the dashboard's address ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,needle", [
    (["--port", "70000"], "--port 70000: give a port from 1 to 65535"),
    (["--port", "0"], "--port 0: give a port from 1 to 65535"),
    (["--host", "no-such-host.invalid"], "--host no-such-host.invalid: not an address"),
    (["--host", "192.0.2.1"], "--host 192.0.2.1: cannot serve there"),
])
def test_app_address_is_checked_before_serving(capsys, args, needle):
    one_line(capsys, ["app", str(DATA), *args], needle)


def test_app_port_in_use(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line(capsys, ["app", str(DATA), "--port", str(port)], f"--port {port} is in use")
        one_line(capsys, ["demo", "--out", "unused", "--port", str(port)], f"--port {port} is in use")
