"""A run killed with SIGKILL mid-stage and run again gives bit-identical results to an uninterrupted run: the
same weights, byte for byte, and the same evaluation. (The kill comes after a checkpoint, so the rerun resumes from
it: the RNG states, optimizer and data order saved with the checkpoint carry the run on as if nothing happened.)"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_stages import SMALL

pytestmark = pytest.mark.slow

STAGE = "cold_grpo"
ARGS = [*SMALL, f"{STAGE}.steps=6", f"{STAGE}.save_every=2", "probe.every=2"]


def env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}


def stage_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "s2dlab", "stage", STAGE, "--out", str(out), *ARGS]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_then_rerun_is_bit_identical(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(stage_cmd(whole), env=env(), check=True, capture_output=True, timeout=900)

    proc = subprocess.Popen(stage_cmd(killed), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    first = killed / STAGE / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.time() + 600
    while not first.exists():
        assert proc.poll() is None, "the stage ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads((killed / STAGE / "stage.json").read_text())["status"] == "running"
    # the killed process may leave the lock's file behind, but not its lock: the rerun takes the folder
    subprocess.run(stage_cmd(killed), env=env(), check=True, capture_output=True, timeout=900)

    for name in ("model.safetensors",):
        assert digest(whole / STAGE / "model" / name) == digest(killed / STAGE / "model" / name)
    ev = [json.loads((d / STAGE / "eval.json").read_text())["sets"] for d in (whole, killed)]
    assert ev[0] == ev[1]
    steps = [[m["step"] for m in map(json.loads, (d / STAGE / "metrics.jsonl").read_text().splitlines())
              if "loss" in m] for d in (whole, killed)]
    assert steps[0] == steps[1] == list(range(1, 7))  # the rerun logged the lost steps again, each once
