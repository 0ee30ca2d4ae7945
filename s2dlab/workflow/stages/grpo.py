"""GRPO with a sparse reward: stage 1 (`teacher_grpo`), stage 3 (`student_grpo`), its replay control and the
`cold_grpo` baseline are this one stage with different models, data and config sections.

TRL's `GRPOTrainer`: each step takes `prompts_per_step` labeled problems, samples `num_generations` completions
each, rewards 1 when the boxed final answer verifies (math-verify, boxed-only; the arithmetic task accepts only a
plain integer in the box), normalises rewards within each group (the advantage), and takes one optimizer step on
the token-mean clipped surrogate (TRL's `loss_type="dapo"`). With one optimizer step per sampled batch the
importance ratio is exactly 1, so the clip (0.2 / 0.28) never acts; it would with `num_iterations > 1`, which the
paper's code does not use either. In TRL `per_device_train_batch_size` counts completions, so we set it to
`prompts_per_step * num_generations / world_size`.

Which data (`labels`): the paper's labeled pool is cut into fixed halves, 1H for teacher RL and the bridge, 2H for
stage 3. The top block of its Table 2 trains the teacher on the whole pool; the replay control runs stage 3 on 1H
again with the same counts. The probe snapshots score the policy against its counterpart: for the teacher stage
the fixed base student's rollouts scored by the teacher being trained (C1 emerging), for student stages the
student's rollouts scored by the RL teacher (display only: the teacher plays no part in GRPO's update).

    s2dlab stage teacher_grpo --out runs/tiny
    s2dlab stage cold_grpo --out runs/tiny cold_grpo.learning_rate=3e-5
    s2dlab stage teacher_grpo --preset qwen3_paper --out runs/qwen3   # GPU box, vLLM colocated
"""

from __future__ import annotations

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from s2dlab.core import data
from s2dlab.core.config import Config, GRPOStageConfig
from s2dlab.core.distributed import split_evenly
from s2dlab.core.runs import Run
from s2dlab.workflow.stages import lifecycle


def rl_dataset(cfg: Config, records: list[dict]) -> Dataset:
    return Dataset.from_list([{"prompt": data.user_message(cfg, r["prompt"]), "answer": r["answer"],
                               "prompt_id": r["id"]} for r in records])


def grpo_config(cfg: Config, section: GRPOStageConfig, stage_dir) -> GRPOConfig:
    completions = section.prompts_per_step * section.num_generations
    split_evenly(completions, f"{stage_dir.name}: prompts_per_step*num_generations={completions}")
    g = cfg.generation
    return GRPOConfig(
        **lifecycle.training_args(cfg, stage_dir, steps=section.steps, learning_rate=section.learning_rate,
                                  batch_size=completions, save_every=section.save_every,
                                  warmup_ratio=section.warmup_ratio),
        num_generations=section.num_generations,
        max_completion_length=g.max_new_tokens,
        temperature=g.temperature if section.temperature is None else section.temperature,
        top_p=g.top_p,
        top_k=g.top_k,
        beta=section.kl_coef,  # GRPO's beta = coefficient of the KL penalty to the reference model
        epsilon=section.epsilon,
        epsilon_high=section.epsilon_high,
        loss_type=section.loss_type,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        chat_template_kwargs=data.chat_kwargs(cfg) or None,
        remove_unused_columns=False,
    )


def run(cfg: Config, run: Run, *, out: str, section: str, policy_from: str, role: str, labels: str,
        counterpart_from: str | None = None) -> dict:
    """GRPO on the model handed off by `policy_from` (a "teacher" or "student"), on the labeled set `labels`
    (pool | 1h | 2h), with the hyperparameters of config section `section`, into stage folder `out`."""
    if info := lifecycle.finished(run, out):
        return info
    sec: GRPOStageConfig = getattr(cfg, section)
    records = data.labeled(cfg, labels)
    st = lifecycle.begin(cfg, run, out, trained=role,
                         student_from=policy_from if role == "student" else counterpart_from,
                         teacher_from=policy_from if role == "teacher" else counterpart_from,
                         section=section, labels=lifecycle.labels_info(cfg, labels))
    policy = st.student if role == "student" else st.teacher
    trainer = GRPOTrainer(model=policy, reward_funcs=data.reward_fn(cfg), args=grpo_config(cfg, sec, st.dir),
                          train_dataset=rl_dataset(cfg, records), processing_class=st.tokenizer)
    return st.train(trainer, steps=sec.steps, sequences=sec.steps * sec.prompts_per_step * sec.num_generations)
