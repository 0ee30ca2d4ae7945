"""SFT on gold worked solutions: the SFT teacher (`teacher_sft`, the paper's Table 4 row) and the `gold_sft`
reference arm of the student.

Both train with TRL's `SFTTrainer` (completion-only loss, constant lr) on the clean gold worked solutions of
labeled problems, instead of the final answers GRPO gets:

- `teacher_sft`: the base teacher trained on the gold solutions of the same prompts its GRPO twin sees, for
  `teacher_sft.steps`; the bridge from it (`bridge_sft_teacher`) tests the paper's ordering raw < SFT < RL. The paper
  trains its SFT teachers on a stronger model's traces; gold solutions are the toy's stand-in, and a stronger
  signal than the paper's. `teacher_sft.layout=running` writes them in the far student's layout: a teacher
  whose text is another model's, as the paper's SFT teachers' is (`s2dlab.core.tasks.arithmetic.LAYOUTS`).
- `gold_sft`: the base student trained on the same gold solutions for as many steps as the workflow's student
  stages. Not part of the workflow, which uses final answers only: it shows what full worked-solution labels buy.

Tiny preset only (the arithmetic task carries a gold solution for every problem; real datasets here have final
answers).

    s2dlab stage teacher_sft --out runs/tiny
    s2dlab stage gold_sft --out runs/tiny
"""

from __future__ import annotations

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from s2dlab.core import data
from s2dlab.core.config import Config, ConfigError
from s2dlab.core.runs import Run
from s2dlab.core.tasks.arithmetic import in_layout
from s2dlab.workflow.stages import lifecycle


def sft_dataset(cfg: Config, records: list[dict]) -> Dataset:
    """Prompt-completion conversations; SFTTrainer masks the prompt (completion-only loss)."""
    return Dataset.from_list([{"prompt": data.user_message(cfg, r["prompt"]),
                               "completion": [{"role": "assistant", "content": r["solution"]}]} for r in records])


def sft_config(cfg: Config, stage_dir, *, steps: int, learning_rate: float, batch_size: int, save_every: int,
               schedule: str | None = None) -> SFTConfig:
    """TRL's SFTConfig for these budgets; `schedule` overrides the constant learning rate (e.g. "cosine")."""
    args = lifecycle.training_args(cfg, stage_dir, steps=steps, learning_rate=learning_rate, batch_size=batch_size,
                                   save_every=save_every)
    if schedule:
        args.update(lr_scheduler_type=schedule, warmup_steps=max(1, steps // 20))
    return SFTConfig(**args, max_length=256 if cfg.tiny else 8192, packing=False, completion_only_loss=True)


def run(cfg: Config, run: Run, *, out: str, section: str, init: str, role: str, labels: str,
        counterpart_from: str | None = None) -> dict:
    """SFT of the `role` model handed off by `init` on the gold solutions of `labels`, with config `section`."""
    if info := lifecycle.finished(run, out):
        return info
    if cfg.task.name != "arithmetic":
        raise ConfigError(f"{out} needs gold worked solutions; task.name={cfg.task.name!r} has final answers only. "
                          f"Run it on task.name=arithmetic")
    sec = getattr(cfg, section)
    st = lifecycle.begin(cfg, run, out, trained=role, student_from=init if role == "student" else counterpart_from,
                         teacher_from=init if role == "teacher" else counterpart_from, section=section,
                         labels=lifecycle.labels_info(cfg, labels, kind="solutions"), layout=sec.layout)
    trainer = SFTTrainer(model=st.student if role == "student" else st.teacher,
                         args=sft_config(cfg, st.dir, steps=sec.steps, learning_rate=sec.learning_rate,
                                         batch_size=sec.batch_size, save_every=sec.save_every),
                         train_dataset=sft_dataset(cfg, in_layout(data.labeled(cfg, labels), sec.layout)),
                         processing_class=st.tokenizer)
    return st.train(trainer, steps=sec.steps, sequences=sec.steps * sec.batch_size)
