"""One module per stage: each has a docstring (what, how it follows the paper, how to launch) and `run(cfg, run)`."""

STAGE_MODULES = {
    "base": "s2dlab.stages.base",
    "teacher_grpo": "s2dlab.stages.teacher_grpo",
    "fkl_warmup": "s2dlab.stages.fkl_warmup",
    "opd": "s2dlab.stages.opd",
    "student_grpo": "s2dlab.stages.student_grpo",
    "direct_grpo": "s2dlab.stages.direct_grpo",
    "gold_sft": "s2dlab.stages.gold_sft",
}
