"""The stages, one module each: a docstring (what it does, how it follows the paper, how to launch it) and
`run(cfg, run, *, out, ...)`. `lifecycle` holds what every stage does at its start and end; `s2dlab.workflow.pipeline`
says which stage runs with which models and data.

    base        stage 0 (tiny preset): the base teacher and student, pretrained on a corpus with slips
    grpo        stage 1 (teacher_grpo), stage 3 (student_grpo), its replay control, and the cold_grpo baseline
    sft         the SFT teacher (teacher_sft) and the gold_sft reference arm
    fkl_warmup  stage 2a: forward KL on cached teacher distributions (or teacher-sample SFT)
    opd         stage 2b: on-policy distillation
"""
