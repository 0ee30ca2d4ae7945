"""The GRPO stage shared by stage 1 (`teacher_grpo`), stage 3 (`student_grpo`) and the `direct_grpo` baseline.

Sparse-reward RL with TRL's `GRPOTrainer`: per step `prompts_per_step` labeled problems, `num_generations`
completions each, reward 1 when the boxed final answer verifies (math-verify, boxed-only; the arithmetic task
accepts only a plain integer in the box), group-normalised advantages, clip 0.2 / 0.28, no KL term, token-mean
loss (TRL's `loss_type="dapo"`), as in the paper's GRPO recipe. In TRL `per_device_train_batch_size` counts
completions, so we set it to `prompts_per_step * num_generations / world_size`.

The probe takes scored snapshots during training. For the teacher stage the probe samples the fixed base student
and scores it with the teacher being trained, so the run store shows the teacher becoming reward-shaped (C1): its
implicit reward starts separating correct from incorrect student rollouts.
"""

from __future__ import annotations

import os

from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

from s2dlab.config import Config, GRPOStageConfig
from s2dlab.runs import Run
from s2dlab.stages import common


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rl_dataset(cfg: Config, records: list[dict]) -> Dataset:
    return Dataset.from_list([{"prompt": common.user_message(cfg, r["prompt"]), "answer": r["answer"],
                               "prompt_id": r["id"]} for r in records])


def grpo_config(cfg: Config, section: GRPOStageConfig, stage_dir) -> GRPOConfig:
    completions = section.prompts_per_step * section.num_generations
    if completions % world_size():
        raise ValueError(f"prompts_per_step*num_generations={completions} is not divisible by the {world_size()} "
                         f"processes; change prompts_per_step or the process count")
    g = cfg.generation
    return GRPOConfig(
        **common.training_args(cfg, stage_dir, steps=section.steps, learning_rate=section.learning_rate,
                               batch_size=completions, save_every=section.save_every,
                               warmup_ratio=section.warmup_ratio),
        num_generations=section.num_generations,
        max_completion_length=g.max_new_tokens,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=g.top_k,
        beta=section.kl_coef,  # GRPO's beta = coefficient of the KL penalty to the reference model
        epsilon=section.epsilon,
        epsilon_high=section.epsilon_high,
        loss_type=section.loss_type,
        use_vllm=g.use_vllm,
        vllm_mode=g.vllm_mode,
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        chat_template_kwargs=common.chat_kwargs(cfg) or None,
        remove_unused_columns=False,
    )


def run_grpo(cfg: Config, run: Run, *, stage: str, section: GRPOStageConfig, policy_from: str, role: str,
             counterpart_from: str | None, records: list[dict]) -> dict:
    """GRPO on the model handed off by `policy_from`, writing `stage`. `role` is "teacher" or "student"."""
    if common.stage_done(run, stage):
        return run.read_json(f"{stage}/stage.json")
    tokenizer = common.tokenizer_for(cfg, run)
    device = common.device_of(cfg)
    policy = common.load_stage_model(cfg, run, policy_from, tokenizer, device)
    counterpart = None
    if counterpart_from and cfg.probe.num_prompts and common.stage_done(run, counterpart_from):
        counterpart = common.load_stage_model(cfg, run, counterpart_from, tokenizer, device).eval()
        common.check_pair(policy, counterpart, tokenizer)
    stage_dir = run.stage_dir(stage)
    common.mark_started(run, stage, init=policy_from, role=role, counterpart=counterpart_from)
    trainer = GRPOTrainer(model=policy, reward_funcs=common.reward_fn(cfg), args=grpo_config(cfg, section, stage_dir),
                          train_dataset=rl_dataset(cfg, records), processing_class=tokenizer)
    store = common.RunStoreCallback(run, stage)
    if counterpart is not None:
        def models():
            return (trainer.model, counterpart) if role == "student" else (counterpart, trainer.model)
        store = common.RunStoreCallback(run, stage, common.Probe.for_stage(cfg, run, stage, tokenizer), models,
                                        cfg.probe.every)
    trainer.add_callback(store)
    if store.probe and not common.last_checkpoint(stage_dir):
        store.take(0)
    trainer.train(resume_from_checkpoint=common.last_checkpoint(stage_dir))
    state_dict = common.gathered_state_dict(trainer)  # every process: a collective under ZeRO-3 / FSDP
    if store.probe and trainer.accelerator.is_main_process:
        store.take(section.steps)
    if not trainer.accelerator.is_main_process:
        return {}
    return common.finish_stage(run, stage, trainer.model, tokenizer, state_dict=state_dict, init=policy_from,
                               steps=section.steps)
