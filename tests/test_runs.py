"""The run store: round trips, crash safety, error messages that name the path, stage-name validation."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from s2dlab.core import runs
from s2dlab.core.config import ConfigMismatchError
from s2dlab.core.runs import (
    RunStoreError,
    atomic_write_bytes,
    atomic_write_json,
    create_run,
    list_runs,
    open_run,
)


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def rollout_rows(n=3, length=5):
    rows = []
    for i in range(n):
        rows.append({
            "stage": "opd", "step": 10, "prompt_id": f"p{i}", "sample_idx": 0, "policy": "student",
            "prompt": "1+2=?", "completion": "3\\boxed{3}", "correct": bool(i % 2), "reward": float(i % 2),
            "tokens": list("abcde")[:length], "token_ids": list(range(length)),
            "implicit_reward": [0.1 * j - 0.2 for j in range(length)],
            "reverse_kl": np.linspace(0, 1, length),  # numpy arrays are accepted
            "teacher_topk_ids": [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]][:length],
            "teacher_topk_logprobs": [[-0.1, -2.0]] * length,
            "extracted": None if i == 0 else "3",
        })
    return rows


# --------------------------------------------------------------------------------------------------------------
# create / open / list


def test_create_run_writes_run_json(tmp_path):
    run = create_run(tmp_path / "r1", {"lr": 1e-4, "bad": float("nan"), "arr": np.arange(3)}, seed=7)
    info = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert info["name"] == "r1" == run.name
    assert info["seed"] == 7
    assert info["config"] == {"lr": 1e-4, "bad": None, "arr": [0, 1, 2]}
    for key in ("python", "torch", "transformers", "trl", "s2dlab"):
        assert key in info["versions"]
    assert "git_revision" in info and "created" in info
    # sorted keys, indent 2
    text = (tmp_path / "r1" / "run.json").read_text()
    assert text.startswith('{\n  "config"')


def test_create_run_reuses_existing(tmp_path):
    run = create_run(tmp_path / "r", {"a": 1}, seed=0)
    run.append_metrics("opd", {"step": 1})
    again = create_run(tmp_path / "r", {"a": 1}, seed=0)
    assert again.info["created"] == run.info["created"]
    assert again.metrics("opd") == [{"step": 1}]
    with pytest.raises(ConfigMismatchError, match=r"another config \(a 1 -> 2\)") as err:
        create_run(tmp_path / "r", {"a": 2}, seed=0)
    assert err.value.diff == [("a", 1, 2)]
    with pytest.raises(ConfigMismatchError, match="seed 0 -> 3"):
        create_run(tmp_path / "r", {"a": 1}, seed=3)
    assert create_run(tmp_path / "r", {"a": 2}, seed=0, check_config=False).info["config"] == {"a": 1}
    fresh = create_run(tmp_path / "r", {"a": 2}, seed=1, overwrite=True)
    assert fresh.info["seed"] == 1 and fresh.metrics("opd") == [] and fresh.stages() == []


def test_open_run_errors_name_the_path(tmp_path):
    with pytest.raises(RunStoreError, match=str(tmp_path / "nope")):
        open_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="run.json"):
        open_run(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text('{"name": ')
    with pytest.raises(RunStoreError, match=r"bad/run\.json.*corrupt JSON"):
        open_run(tmp_path / "bad")
    (tmp_path / "bad" / "run.json").write_text("[1, 2]")
    with pytest.raises(RunStoreError, match="JSON object"):
        open_run(tmp_path / "bad")
    # run.json itself is accepted as the path
    create_run(tmp_path / "ok", {}, seed=0)
    assert open_run(tmp_path / "ok" / "run.json").path == tmp_path / "ok"


def test_list_runs(tmp_path):
    assert list_runs(tmp_path / "missing") == []
    create_run(tmp_path / "b", {}, 0)
    create_run(tmp_path / "a", {}, 0)
    create_run(tmp_path / "group" / "multi", {}, 0)
    create_run(tmp_path / "group" / "multi" / "seed_0", {}, 0)
    create_run(tmp_path / "x" / "y" / "z" / "too_deep", {}, 0)
    create_run(tmp_path / ".hidden", {}, 0)
    (tmp_path / "link").symlink_to(tmp_path / "a")
    got = [p.relative_to(tmp_path).as_posix() for p in list_runs(tmp_path)]
    assert got == ["a", "b", "group/multi", "group/multi/seed_0"]
    # root itself can be a run
    assert list_runs(tmp_path / "a") == [tmp_path / "a"]


# --------------------------------------------------------------------------------------------------------------
# stages


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "/abs", "..opd", ".hidden", "a\\b", "x\x00"])
def test_stage_name_validation(tmp_path, bad):
    run = create_run(tmp_path / "r", {}, 0)
    with pytest.raises(ValueError):
        run.stage_dir(bad)
    with pytest.raises(ValueError):
        run.append_metrics(bad, {"x": 1})


def test_stage_names_and_order(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    assert run.stage_dir("raw_teacher.opd") == tmp_path / "r" / "raw_teacher.opd"
    assert run.model_dir("opd") == tmp_path / "r" / "opd" / "model"
    names = ["no_opd.fkl_warmup", "cold_grpo", "opd", "raw_teacher.opd", "raw_teacher.fkl_warmup",
             "teacher_grpo", "base_student", "base_teacher", "fkl_warmup", "student_grpo", "no_warmup.opd",
             "custom", "gold_sft", "full.opd", "replay"]
    for n in names:
        (tmp_path / "r" / n).mkdir()
    (tmp_path / "r" / ".cache").mkdir()
    (tmp_path / "r" / "custom" / "metrics.jsonl").write_text("")  # unknown names count once they hold output
    (tmp_path / "r" / "gold_sft" / "eval.json").write_text("{}")
    (tmp_path / "r" / "tokenizer").mkdir()  # a saved tokenizer is not a stage
    (tmp_path / "r" / "tokenizer" / "tokenizer.json").write_text("{}")
    (tmp_path / "r" / "notes").mkdir()
    create_run(tmp_path / "r" / "seed_0", {}, 0)  # a sub-run is not a stage
    assert run.stages() == ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd", "student_grpo",
                            "replay", "cold_grpo", "gold_sft", "full.opd", "raw_teacher.fkl_warmup",
                            "raw_teacher.opd", "no_warmup.opd", "no_opd.fkl_warmup", "custom"]
    assert not run.has_model("opd")
    (tmp_path / "r" / "opd" / "model").mkdir()
    (tmp_path / "r" / "opd" / "model" / "config.json").write_text("{}")
    assert run.has_model("opd")


# --------------------------------------------------------------------------------------------------------------
# metrics


def test_metrics_round_trip(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    assert run.metrics("opd") == []
    run.append_metrics("opd", {"step": 1, "loss": 0.5, "kl": float("nan"), "np": np.float32(2.5)})
    run.append_metrics("opd", {"step": 2, "loss": 0.25, "text": "é→"})
    assert run.metrics("opd") == [{"step": 1, "loss": 0.5, "kl": None, "np": 2.5},
                                  {"step": 2, "loss": 0.25, "text": "é→"}]


def test_metrics_torn_tail_is_invisible_and_repaired(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    run.append_metrics("opd", {"step": 1})
    path = run.stage_dir("opd") / "metrics.jsonl"
    with open(path, "ab") as f:
        f.write(b'{"step": 2, "lo')  # a writer killed mid-line
    assert run.metrics("opd") == [{"step": 1}]
    run.append_metrics("opd", {"step": 3})
    assert run.metrics("opd") == [{"step": 1}, {"step": 3}]
    assert path.read_bytes().count(b"\n") == 2


def test_metrics_corrupt_line_names_path_and_line(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    run.stage_dir("opd").mkdir()
    (run.stage_dir("opd") / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(RunStoreError, match=r"opd/metrics\.jsonl: line 2"):
        run.metrics("opd")


# --------------------------------------------------------------------------------------------------------------
# rollouts, eval, results, json


def test_rollouts_round_trip(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    assert run.rollout_steps("opd") == []
    assert run.rollouts("opd").empty
    rows = rollout_rows()
    p = run.write_rollouts("opd", 10, rows)
    assert p == run.stage_dir("opd") / "rollouts" / "step_000010.parquet"
    run.write_rollouts("opd", 200, rollout_rows(n=1, length=2))
    assert run.rollout_steps("opd") == [10, 200]
    df = run.rollouts("opd", 10)
    assert len(df) == 3
    assert df.loc[1, "tokens"] == ["a", "b", "c", "d", "e"]
    assert df.loc[1, "reverse_kl"] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert df.loc[0, "teacher_topk_ids"] == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    assert df.loc[0, "extracted"] is None and df.loc[1, "extracted"] == "3"
    assert list(df["correct"]) == [False, True, False]
    latest = run.rollouts("opd")
    assert len(latest) == 1 and latest.loc[0, "tokens"] == ["a", "b"]
    with pytest.raises(RunStoreError, match="step_000011.parquet"):
        run.rollouts("opd", 11)


def test_corrupt_parquet_names_path(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    run.write_rollouts("opd", 1, rollout_rows())
    path = run.rollout_path("opd", 1)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(RunStoreError, match=r"opd/rollouts/step_000001\.parquet"):
        run.rollouts("opd")


def test_eval_results_json(tmp_path):
    run = create_run(tmp_path / "r", {}, 0)
    assert run.eval("opd") is None and run.results() is None and run.read_json("extra/x.json") is None
    run.write_eval("opd", {"arith": {"avg@4": 0.5, "pass@4": float("inf")}})
    assert run.eval("opd") == {"arith": {"avg@4": 0.5, "pass@4": None}}
    run.write_results({"arms": {"workflow": {"accuracy": 0.6}}})
    assert open_run(run.path).results() == {"arms": {"workflow": {"accuracy": 0.6}}}
    run.write_json("extra/x.json", {"k": [1, 2]})
    assert run.read_json("extra/x.json") == {"k": [1, 2]}
    for bad in ("../escape.json", "/tmp/abs.json", ""):
        with pytest.raises(ValueError):
            run.write_json(bad, {})
    (run.stage_dir("opd") / "eval.json").write_text("{oops")
    with pytest.raises(RunStoreError, match=r"opd/eval\.json"):
        run.eval("opd")


# --------------------------------------------------------------------------------------------------------------
# atomicity


def test_atomic_write_gives_normal_file_mode(tmp_path):
    target = atomic_write_bytes(tmp_path / "f.bin", b"x")
    assert target.stat().st_mode & 0o777 == 0o666 & ~runs.UMASK


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.json"
    atomic_write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_json(target, {"v": 2})
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["f.json"]  # the temporary file was removed too


def test_rollout_write_failure_keeps_old_snapshot(tmp_path, monkeypatch):
    run = create_run(tmp_path / "r", {}, 0)
    run.write_rollouts("opd", 5, rollout_rows(n=2))
    monkeypatch.setattr(runs.os, "replace", lambda s, d: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run.write_rollouts("opd", 5, rollout_rows(n=1))
    monkeypatch.undo()
    assert len(run.rollouts("opd", 5)) == 2
    assert os.listdir(run.stage_dir("opd") / "rollouts") == ["step_000005.parquet"]


WRITER = textwrap.dedent("""
    import sys
    from s2dlab.core.runs import atomic_write_bytes
    path = sys.argv[1]
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        atomic_write_bytes(path, bytes([i % 251]) * (8 << 20))
""")


def test_killed_writer_never_leaves_a_partial_file(tmp_path):
    """SIGKILL a process that rewrites an 8 MiB file in a loop: the file is always one whole version."""
    target = tmp_path / "big.bin"
    atomic_write_bytes(target, b"\x07" * (8 << 20))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.4)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    data = target.read_bytes()
    assert len(data) == 8 << 20
    assert data.count(data[:1]) == len(data)  # one byte value throughout: never a mix of two versions
    assert visible(tmp_path) == ["big.bin"]  # any leftover temporary file is hidden (dot-prefixed)
    atomic_write_bytes(target, b"ok")  # and the next write still works
    assert target.read_bytes() == b"ok"
