"""The baseline, `direct_grpo`: GRPO on the base student with the same held-out labeled problems.

The same GRPO stage (see `s2dlab.stages.grpo`) as stage 3, started from the base student instead of the distilled
one, with as many student steps as the workflow's warmup + OPD + student GRPO together (`direct_grpo.steps`), so
the comparison spends the same student compute and the same labels. Probe snapshots score it against the RL
teacher for display only; the teacher plays no part in its training.

    s2dlab stage direct_grpo --out runs/tiny
    accelerate launch --cpu --num_processes 2 -m s2dlab stage direct_grpo --preset tiny --out runs/ddp
"""

from __future__ import annotations

from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import common
from s2dlab.stages.grpo import run_grpo

STAGE = "direct_grpo"


def run(cfg: Config, run: Run) -> dict:
    return run_grpo(cfg, run, stage=STAGE, section=cfg.direct_grpo, policy_from="base_student", role="student",
                    counterpart_from="teacher_grpo", records=common.task_splits(cfg)["student_rl"])
