"""Stage 2a, `fkl_warmup`: the student learns forward KL on teacher rollouts, moving inside the teacher's support (C2).

The teacher samples completions for the label-free prompt pool (teacher-RL and student-RL problems, answers
unused), and the base student is trained toward them:

- `fkl_warmup.loss=sampled` (default): SFT on the sampled teacher tokens with TRL's `SFTTrainer`. This is the
  forward KL `KL(pT || pS)` estimated with one teacher sample per position, up to the teacher's entropy.
- `fkl_warmup.loss=full`: the full-vocabulary forward KL with the teacher's logits on the same sequences, with
  TRL's `GKDTrainer` at `lmbda=0` (off-policy: the teacher's sequences only) and `beta=0` (GKD's generalised JSD
  at beta 0 is `KL(pT || pS)`).

Only finished rollouts (that stopped with EOS) are kept; `fkl_warmup.only_correct=true` also drops those with a
wrong answer, which uses labels and is off by default. The teacher's rollouts are cached in the stage folder,
so a resumed warmup trains on the same data. Probe snapshots score the student against the teacher.

    s2dlab stage fkl_warmup --out runs/tiny
    s2dlab stage fkl_warmup --out runs/tiny fkl_warmup.loss=full
"""

from __future__ import annotations

import math

from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from s2dlab.config import Config
from s2dlab.generation import sample
from s2dlab.runs import Run
from s2dlab.stages import common

STAGE = "fkl_warmup"


def teacher_rollouts(cfg: Config, run: Run, stage: str, teacher, tokenizer) -> list[dict]:
    """Sample (once; cached in `<stage>/teacher_rollouts.jsonl`) the teacher's completions on the prompt pool."""
    path = run.stage_dir(stage) / "teacher_rollouts.jsonl"
    if path.exists():
        return common.read_jsonl(path)
    w, g = cfg.fkl_warmup, cfg.generation
    pool = common.prompt_pool(cfg)
    n = math.ceil(w.num_rollouts / len(pool))
    # Several processes: each samples a contiguous block of the pool with its own copy of the teacher, and the
    # blocks are gathered in order, so every process trains on the same rows. vLLM samples on the main process only.
    ps = common.process_state(cfg)
    if g.backend == "vllm":
        mine = pool if ps.is_main_process else []
    else:
        block = math.ceil(len(pool) / ps.num_processes)
        mine = pool[ps.process_index * block:(ps.process_index + 1) * block]
    rollouts = []
    if mine:
        source = teacher
        if g.backend == "vllm":
            from s2dlab.generation import vllm_engine

            source = vllm_engine(teacher.name_or_path, gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                                 seed=cfg.seed, dtype=cfg.models.dtype)
        rollouts = sample(source, tokenizer, mine, n=n, max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                          top_p=g.top_p, top_k=g.top_k, batch_size=g.batch_size, seed=cfg.seed,
                          prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=common.chat_kwargs(cfg),
                          backend=g.backend, policy="teacher")
        del source
    rows = [{"prompt_id": r.prompt_id, "prompt": r.prompt, "completion": r.completion, "finished": r.finished}
            for r in rollouts]
    if ps.num_processes > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    rows = rows[: w.num_rollouts]
    if ps.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        common.write_jsonl(path, rows)
    return rows


def warmup_rows(cfg: Config, rows: list[dict]) -> list[dict]:
    keep = [r for r in rows if r["finished"]]
    if cfg.fkl_warmup.only_correct:
        splits = common.task_splits(cfg)
        answers = {r["id"]: r["answer"] for r in splits["teacher_rl"] + splits["student_rl"]}
        grade = common.grade_fn(cfg)
        keep = [r for r in keep if grade(r["completion"], answers[r["prompt_id"]])]
    if not keep:
        raise RuntimeError(f"no usable teacher rollouts for the warmup ({len(rows)} sampled, 0 finished"
                           f"{' and correct' if cfg.fkl_warmup.only_correct else ''}); raise "
                           f"generation.max_new_tokens or set fkl_warmup.only_correct=false")
    return keep


def run(cfg: Config, run: Run, *, init: str = "base_student", teacher: str = "teacher_grpo", out: str = STAGE
        ) -> dict:
    if common.stage_done(run, out):
        return run.read_json(f"{out}/stage.json")
    w = cfg.fkl_warmup
    tokenizer = common.tokenizer_for(cfg, run)
    device = common.device_of(cfg)
    teacher_model = common.load_stage_model(cfg, run, teacher, tokenizer, device).eval()
    student = common.load_stage_model(cfg, run, init, tokenizer, device)
    common.check_pair(teacher_model, student, tokenizer)
    stage_dir = run.stage_dir(out)
    common.mark_started(run, out, init=init, teacher=teacher, loss=w.loss)
    rows = warmup_rows(cfg, teacher_rollouts(cfg, run, out, teacher_model, tokenizer))
    args_kw = common.training_args(cfg, stage_dir, steps=w.steps, learning_rate=w.learning_rate,
                                   batch_size=w.batch_size, save_every=w.save_every)
    if w.loss == "sampled":
        data = Dataset.from_list([{"prompt": common.user_message(cfg, r["prompt"]),
                                   "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows])
        trainer = SFTTrainer(model=student, args=SFTConfig(**args_kw, max_length=1024 if common.is_tiny(cfg) else 8192,
                                                           packing=False, completion_only_loss=True),
                             train_dataset=data, processing_class=tokenizer)
    else:
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        data = Dataset.from_list([{"messages": common.user_message(cfg, r["prompt"])
                                   + [{"role": "assistant", "content": r["completion"]}]} for r in rows])
        trainer = GKDTrainer(model=student, teacher_model=teacher_model,
                             args=GKDConfig(**args_kw, lmbda=0.0, beta=0.0, temperature=1.0,
                                            max_length=1024 if common.is_tiny(cfg) else 8192),
                             train_dataset=data, processing_class=tokenizer)
    probe = common.Probe.for_stage(cfg, run, out, tokenizer)
    store = common.RunStoreCallback(run, out, probe, lambda: (trainer.model, teacher_model), cfg.probe.every)
    trainer.add_callback(store)
    if not common.last_checkpoint(stage_dir):
        store.take(0)
    trainer.train(resume_from_checkpoint=common.last_checkpoint(stage_dir))
    state_dict = common.gathered_state_dict(trainer)  # every process: a collective under ZeRO-3 / FSDP
    if not trainer.accelerator.is_main_process:
        return {}
    store.take(w.steps)
    return common.finish_stage(run, out, trainer.model, tokenizer, state_dict=state_dict, init=init, teacher=teacher,
                               loss=w.loss, steps=w.steps, rollouts_used=len(rows))
