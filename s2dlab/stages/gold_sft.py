"""Reference arm, `gold_sft`: SFT of the base student on gold worked solutions for as many steps as the workflow.

Not part of the workflow, which uses final answers only: this arm shows what full worked-solution labels would
buy with the same student compute (warmup + OPD + student GRPO steps). TRL's `SFTTrainer`, completion-only loss,
the warmup's learning rate, on the arithmetic task's gold solutions (the `sft` split). Tiny preset only: real
datasets here carry final answers, not gold solutions for every problem.

    s2dlab stage gold_sft --out runs/tiny
"""

from __future__ import annotations

from trl import SFTConfig, SFTTrainer

from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import common
from s2dlab.stages.base import sft_dataset

STAGE = "gold_sft"


def student_steps(cfg: Config) -> int:
    """The workflow's student steps: the budget every student arm gets."""
    return (cfg.fkl_warmup.steps * cfg.fkl_warmup.enabled + cfg.opd.steps * cfg.opd.enabled
            + cfg.student_grpo.steps)


def run(cfg: Config, run: Run) -> dict:
    if common.stage_done(run, STAGE):
        return run.read_json(f"{STAGE}/stage.json")
    if cfg.task.name != "arithmetic":
        raise ValueError(f"gold_sft needs gold worked solutions; task.name={cfg.task.name!r} has final answers "
                         f"only. Run it on task.name=arithmetic")
    tokenizer = common.tokenizer_for(cfg, run)
    student = common.load_stage_model(cfg, run, "base_student", tokenizer)
    stage_dir = run.stage_dir(STAGE)
    steps = student_steps(cfg)
    common.mark_started(run, STAGE, init="base_student", steps=steps)
    args = SFTConfig(**common.training_args(cfg, stage_dir, steps=steps, learning_rate=cfg.fkl_warmup.learning_rate,
                                            batch_size=cfg.fkl_warmup.batch_size, save_every=cfg.fkl_warmup.save_every),
                     max_length=256, packing=False, completion_only_loss=True)
    trainer = SFTTrainer(model=student, args=args, train_dataset=sft_dataset(cfg, common.task_splits(cfg)["sft"]),
                         processing_class=tokenizer, callbacks=[common.RunStoreCallback(run, STAGE)])
    trainer.train(resume_from_checkpoint=common.last_checkpoint(stage_dir))
    state_dict = common.gathered_state_dict(trainer)  # every process: a collective under ZeRO-3 / FSDP
    if not trainer.accelerator.is_main_process:
        return {}
    return common.finish_stage(run, STAGE, trainer.model, tokenizer, state_dict=state_dict, init="base_student",
                               steps=steps)
