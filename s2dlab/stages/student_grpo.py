"""Stage 3, `student_grpo`: sparse-reward RL on the distilled student with held-out labeled problems.

GRPO (see `s2dlab.stages.grpo`) on the student handed off by OPD (or by the warmup in the `no_opd` arm), with the
student-RL share of the labeled problems, which the teacher never trained on. The paper calls this stage optional;
at toy scale it adds 0-4 points on top of OPD. Probe snapshots score the student against the RL teacher.

    s2dlab stage student_grpo --out runs/tiny
    s2dlab stage student_grpo --out runs/tiny student_grpo.steps=200
"""

from __future__ import annotations

from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import common
from s2dlab.stages.grpo import run_grpo

STAGE = "student_grpo"


def run(cfg: Config, run: Run, *, init: str = "opd", teacher: str = "teacher_grpo", out: str = STAGE) -> dict:
    return run_grpo(cfg, run, stage=out, section=cfg.student_grpo, policy_from=init, role="student",
                    counterpart_from=teacher, records=common.task_splits(cfg)["student_rl"])
