"""Workshop pre-flight: train two GRPO steps on the tiny preset, the way notebook 01 does, and say READY.

    python notebooks/preflight.py               # from the repository root; about a minute on a laptop
    python notebooks/preflight.py --threads 1   # a dual-core or busy laptop (notebooks/WORKSHOP.md, "Slow laptops")

It checks what the notebooks need, in the order they need it, and stops at the first failure with one line
naming it: the packages import (torch, transformers, TRL, datasets, math-verify, plotly, Jupyter's kernel), the
shipped tiny base models load, the grader accepts a right answer and refuses a wrong one, TRL's `GRPOTrainer` runs
two optimizer steps of stage 1 (`s2dlab.workflow.pipeline.run_stage`, the call `s2dlab run` makes) that log finite numbers
and change the teacher's weights. Everything is written to a temporary folder that is deleted at the end; nothing
is downloaded. The same command works in PowerShell, cmd, and macOS / Linux shells.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path


def fail(what: str, err: BaseException | str) -> None:
    print(f"NOT READY: {what}: {err}")
    sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train two GRPO steps on the tiny preset and report READY.")
    parser.add_argument("--threads", type=int, default=None, help="PyTorch CPU threads (default: PyTorch's)")
    args = parser.parse_args(argv)
    start = time.time()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny preset needs no hub; read once, at the first import
    for module in ("torch", "transformers", "trl", "datasets", "math_verify", "plotly", "pandas", "ipykernel",
                   "s2dlab"):
        try:
            importlib.import_module(module)
        except Exception as err:  # noqa: BLE001 - report any broken install in one line
            fail(f"import {module} (pip install -e \".[notebooks]\" from the repository root)", err)
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        fail("Jupyter kernel", "no 'python3' kernel; run: python -m ipykernel install --user")

    from s2dlab import tutorial

    with tempfile.TemporaryDirectory(prefix="s2dlab_preflight_") as tmp:
        overrides = ["teacher_grpo.steps=2", "probe.num_prompts=0", "probe.c1_prompts=0"]
        lab = tutorial.setup("tiny", Path(tmp) / "run", overrides=overrides, threads=args.threads, verbose=False)
        import torch

        from s2dlab.core import data
        from s2dlab.workflow import pipeline
        from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

        grade = data.grade_fn(lab.cfg)
        if not grade("\\boxed{7}", "7") or grade("\\boxed{8}", "7"):
            fail("grader", "math-verify does not grade \\boxed{7} against 7 as it should")
        step = pipeline.find_step(lab.cfg, "teacher_grpo")
        try:
            pipeline.run_stage(lab.cfg, lab.run, step)  # copies the shipped base models in first
        except Exception as err:  # noqa: BLE001
            fail("two GRPO steps with TRL's GRPOTrainer", f"{type(err).__name__}: {err}")
        logged = [m for m in lab.run.metrics("teacher_grpo") if "loss" in m]
        if len(logged) != 2 or not all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in logged):
            fail("GRPO metrics", f"expected 2 steps with finite loss and grad_norm, got {logged}")
        tok = tokenizer_for(lab.cfg, lab.run)
        before = dict(load_stage_model(lab.cfg, lab.run, "base_teacher", tok).named_parameters())
        after = dict(load_stage_model(lab.cfg, lab.run, "teacher_grpo", tok).named_parameters())
        moved = max((after[n] - before[n]).abs().max().item() for n in before)
        if not moved > 0:
            fail("GRPO update", "two optimizer steps left every weight unchanged")
    threads = torch.get_num_threads()
    print(f"READY: two GRPO steps trained in {time.time() - start:.0f} s with {threads} PyTorch thread(s); "
          f"rewards {[round(m['reward'], 3) for m in logged]}, largest weight change {moved:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
