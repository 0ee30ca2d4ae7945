"""Two real processes on this CPU: `accelerate launch` of a GRPO stage (DDP over gloo) writes the same run store
as one process, a rerun of the finished stage is a no-op, and a launch killed after a checkpoint resumes from it.

accelerate 1.15's `--cpu` flag starts a single process whatever `--num_processes` says, so the launch here is
`--multi_gpu` with no GPU visible: torchrun starts two processes and s2dlab puts them on gloo
(`models.device=cpu`). `stage.json` records `"processes": 2`, so the test knows two really ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2dlab.workflow.stages.base import SHIPPED

pytestmark = pytest.mark.slow

STAGE = "cold_grpo"
SMALL = ["models.device=cpu", f"{STAGE}.save_every=1", "eval.n_samples=1", "task.eval_size=8", "eval.greedy=false",
         "probe.num_prompts=2", "probe.every=1"]
# Without the shipped tiny base models, train throwaway ones in a few seconds.
TRAIN_BASE = ["base.source=train", "base.teacher_steps=5", "base.student_steps=5", "base.select_every=5",
              "base.select_size=10", "task.corpus_size=100"]


def overrides(steps: int) -> list[str]:
    if (SHIPPED / "shipped.json").exists():  # the task the shipped base models were pretrained on
        base = [f"{k}={v}" for k, v in json.loads((SHIPPED / "shipped.json").read_text())["config"].items()
                if k != "task.prompt_suffix"]
    else:
        base = TRAIN_BASE
    return [f"{STAGE}.steps={steps}", *SMALL, *base]


def env() -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "info"}


def free_port() -> int:
    with socket.socket() as s:  # other test runs on this machine may hold accelerate's default port
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_process(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "s2dlab", "stage", STAGE, "--out", str(out), *overrides(steps)]


def two_processes(out: Path, steps: int) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), "-m", "s2dlab", "stage", STAGE, "--out", str(out),
            *overrides(steps)]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}"
    return res


def shape(run_dir: Path) -> set[str]:
    """Every file of the run folder, by relative path; per-process RNG states of a checkpoint count as one."""
    return {re.sub(r"rng_state(_\d+)?\.pth$", "rng_state*.pth", p.relative_to(run_dir).as_posix())
            for p in run_dir.rglob("*") if p.is_file()}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / STAGE / "metrics.jsonl").read_text().splitlines()]


def stage_info(run_dir: Path) -> dict:
    return json.loads((run_dir / STAGE / "stage.json").read_text())


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A run folder holding the base models, with `teacher_grpo` pointed at the base teacher so probes run."""
    from s2dlab.core.runs import open_run
    from s2dlab.workflow.stages import lifecycle

    out = tmp_path_factory.mktemp("mp") / "prepared"
    run([sys.executable, "-m", "s2dlab", "stage", "base", "--out", str(out), *overrides(2)])
    r = open_run(out)
    lifecycle.link_stage(r, "teacher_grpo", str(r.model_dir("base_teacher")), role="teacher")
    return out


@pytest.fixture(scope="module")
def pair(prepared) -> dict:
    """The same 2-step stage, once in one process and once in two."""
    one, two = prepared.with_name("one"), prepared.with_name("two")
    shutil.copytree(prepared, one)
    shutil.copytree(prepared, two)
    run(one_process(one, 2))
    t0 = time.perf_counter()
    res = run(two_processes(two, 2))
    seconds = time.perf_counter() - t0
    print(f"\n2-process `accelerate launch` of {STAGE} (2 steps, probes, eval): {seconds:.1f} s")
    return {"one": one, "two": two, "seconds": seconds, "log": res.stdout + res.stderr}


def test_two_processes_really_ran(pair):
    assert stage_info(pair["one"])["processes"] == 1
    assert stage_info(pair["two"])["processes"] == 2


def test_two_processes_write_the_same_run_store_as_one(pair):
    one, two = pair["one"], pair["two"]
    assert shape(two) == shape(one)
    for run_dir in (one, two):
        info = stage_info(run_dir)
        assert info["status"] == "done" and (run_dir / STAGE / "model" / "model.safetensors").exists()
        assert json.loads((run_dir / "run.json").read_text())["config"][STAGE]["steps"] == 2
    # every metrics line has a step, and the two logs carry the same keys at the same steps, once each
    lines = {name: [(m["step"], sorted(m)) for m in metrics(d)] for name, d in (("one", one), ("two", two))}
    assert lines["two"] == lines["one"]
    steps = [m["step"] for m in metrics(two) if "loss" in m]
    assert steps == [1, 2]
    assert any("probe/mean_reverse_kl" in m for m in metrics(two))
    # probe snapshots cover the whole probe set (not one process's share) with the same columns
    snaps = sorted(p.name for p in (two / STAGE / "rollouts").glob("*.parquet"))
    assert snaps == ["step_000000.parquet", "step_000001.parquet", "step_000002.parquet"]
    for name in snaps:
        a, b = pd.read_parquet(one / STAGE / "rollouts" / name), pd.read_parquet(two / STAGE / "rollouts" / name)
        assert list(b.columns) == list(a.columns) and len(b) == len(a) > 0
    # the numbers that must agree: the step-0 snapshot is the untrained policy sampled by the main process on the
    # probe's own seed, so its completions and every per-token score are the same in one process and in two
    a, b = (pd.read_parquet(d / STAGE / "rollouts" / "step_000000.parquet") for d in (one, two))
    assert list(a["completion"]) == list(b["completion"])
    for col in ("implicit_reward", "reverse_kl", "student_logprob", "teacher_logprob"):
        for x, y in zip(a[col], b[col]):
            assert np.allclose(np.asarray(x, float), np.asarray(y, float), atol=1e-5), col
    # the budget is the same: each of the two processes took half of every step's sequences
    for key in ("steps", "sequences", "labels", "role", "init"):
        assert stage_info(two)[key] == stage_info(one)[key], key
    # one reward line per step, each a mean of 0/1 rewards
    for d in (one, two):
        rewards = [m["reward"] for m in metrics(d) if "reward" in m]
        assert len(rewards) == 2 and all(0 <= r <= 1 for r in rewards)
    ev1, ev2 = (json.loads((d / STAGE / "eval.json").read_text()) for d in (one, two))
    assert sorted(ev2) == sorted(ev1) and sorted(ev2["sets"]) == sorted(ev1["sets"])
    n = ev1["sets"]["arithmetic"]["n_problems"]
    assert ev2["sets"]["arithmetic"]["n_problems"] == n and set(ev2["sets"]["arithmetic"]["per_problem"]) == \
        set(ev1["sets"]["arithmetic"]["per_problem"])


def test_rerun_of_a_finished_stage_is_a_no_op(pair):
    two = pair["two"]
    before = {p: (two / p).read_bytes() for p in (f"{STAGE}/stage.json", f"{STAGE}/metrics.jsonl", f"{STAGE}/eval.json")}
    files = shape(two)
    run(two_processes(two, 2))
    assert {p: (two / p).read_bytes() for p in before} == before
    assert shape(two) == files


def test_two_processes_resume_after_a_kill(prepared):
    out, steps = prepared.with_name("killed"), 12
    shutil.copytree(prepared, out)
    (out / "run.json").unlink()  # a fresh run.json with this test's step count
    ckpts = out / STAGE / "checkpoints"
    proc = subprocess.Popen(two_processes(out, steps), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if any((c / "trainer_state.json").exists() for c in ckpts.glob("checkpoint-*")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the launch ended before a checkpoint could be interrupted"
        os.killpg(proc.pid, signal.SIGTERM)  # the launcher (torchrun) passes it on to both workers
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert stage_info(out)["status"] == "running"

    res = run(two_processes(out, steps))
    resumed = re.search(r"Resuming training from checkpoint with epoch \d+ and global step (\d+)",
                        res.stdout + res.stderr)
    assert resumed and 1 <= int(resumed.group(1)) < steps
    info = stage_info(out)
    assert info["status"] == "done" and info["processes"] == 2
    assert (out / STAGE / "model" / "model.safetensors").exists()
    # lines logged after the checkpoint by the killed launch were dropped and logged again: each step once
    assert [m["step"] for m in metrics(out) if "loss" in m] == list(range(1, steps + 1))
