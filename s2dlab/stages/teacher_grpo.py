"""Stage 1, `teacher_grpo`: sparse-reward RL on the teacher, so that it becomes reward-shaped (condition C1).

GRPO (see `s2dlab.stages.grpo`) on the base teacher with the teacher-RL share of the labeled problems (final
answers only). The paper runs this on Qwen3-8B; the tiny preset on a 0.94M-parameter Qwen3 for 200 steps at
lr 1e-4 (TRL's default 1e-6 does nothing at this size). Probe snapshots score the fixed base student's rollouts
with the teacher being trained, so the run store shows C1 emerging.

    s2dlab stage teacher_grpo --out runs/tiny
    s2dlab stage teacher_grpo --preset qwen3_paper --out runs/qwen3   # GPU box, vLLM colocated
"""

from __future__ import annotations

from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import common
from s2dlab.stages.grpo import run_grpo

STAGE = "teacher_grpo"


def run(cfg: Config, run: Run) -> dict:
    return run_grpo(cfg, run, stage=STAGE, section=cfg.teacher_grpo, policy_from="base_teacher", role="teacher",
                    counterpart_from="base_student", records=common.task_splits(cfg)["teacher_rl"])
