"""Stage 2b, `opd`: on-policy distillation. The student samples, the teacher scores every token.

For a student rollout `y ~ pS(.|x)` the per-token implicit reward is `log pT(y_t) - log pS(y_t)`; its expectation
under the student is minus the reverse KL, `E_{y_t~pS}[-implicit_reward[t]] = KL(pS || pT)[t]`. So minimising the
reverse KL on the student's own samples is RL with a dense, per-token reward from the teacher. Two losses:

- `opd.loss=full_reverse_kl` (default): TRL's `DistillationTrainer` with `beta=1` (its generalised JSD at beta 1
  is the reverse KL `KL(pS || pT)`), full vocabulary, on-policy generation, chunked over the vocabulary.
- `opd.loss=sampled_token`: the implicit reward of each sampled token as its advantage, with importance sampling
  against the sampler's log-probs (the form used in on-policy distillation write-ups that sample with a separate
  engine). Advantage `A_t = log pT(y_t) - log q(y_t)` with `q` the sampler, loss
  `-sum_t exp(log pS(y_t) - log q(y_t)) * A_t / num_tokens`. TRL has no such trainer, so this is a small loop
  of our own (one optimizer step per sampled batch, AdamW, constant lr).

One rollout per prompt (n=1) from the label-free prompt pool, as in the paper. Probe snapshots show the dense
reward and the reverse KL falling during training.

    s2dlab stage opd --out runs/tiny
    s2dlab stage opd --out runs/tiny opd.loss=sampled_token opd.steps=50
"""

from __future__ import annotations

import json
import os
import random
import shutil

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from trl import DistillationConfig, DistillationTrainer
from trl.trainer.utils import selective_log_softmax

from s2dlab.config import Config, ConfigError
from s2dlab.generation import sample
from s2dlab.runs import Run
from s2dlab.stages import common

STAGE = "opd"


def run(cfg: Config, run: Run, *, init: str = "fkl_warmup", teacher: str = "teacher_grpo", out: str = STAGE
        ) -> dict:
    if common.stage_done(run, out):
        return run.read_json(f"{out}/stage.json")
    if cfg.opd.loss == "sampled_token" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("opd.loss=sampled_token is a single-process loop; run it without accelerate launch, or "
                          "use opd.loss=full_reverse_kl (TRL's DistillationTrainer) on several processes")
    tokenizer = common.tokenizer_for(cfg, run)
    device = common.device_of(cfg)
    teacher_model = common.load_stage_model(cfg, run, teacher, tokenizer, device).eval()
    student = common.load_stage_model(cfg, run, init, tokenizer, device)
    common.check_pair(teacher_model, student, tokenizer)
    common.mark_started(run, out, init=init, teacher=teacher, loss=cfg.opd.loss)
    probe = common.Probe.for_stage(cfg, run, out, tokenizer)
    state_dict = None
    if cfg.opd.loss == "full_reverse_kl":
        model, state_dict = _train_distillation(cfg, run, out, student, teacher_model, tokenizer, probe)
    else:
        model = _train_sampled_token(cfg, run, out, student, teacher_model, tokenizer, probe)
    if model is None:
        return {}
    return common.finish_stage(run, out, model, tokenizer, state_dict=state_dict, init=init, teacher=teacher,
                               loss=cfg.opd.loss, steps=cfg.opd.steps)


# --- full reverse KL: TRL's DistillationTrainer ---------------------------------------------------------------------

def _train_distillation(cfg, run, stage, student, teacher, tokenizer, probe):
    o, g = cfg.opd, cfg.generation
    stage_dir = run.stage_dir(stage)
    args = DistillationConfig(
        **common.training_args(cfg, stage_dir, steps=o.steps, learning_rate=o.learning_rate,
                               batch_size=o.batch_size, save_every=o.save_every),
        beta=1.0,  # DistillationTrainer's beta selects the divergence: 1.0 = reverse KL(pS || pT)
        max_completion_length=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
        use_vllm=g.use_vllm, vllm_mode=g.vllm_mode, vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        chat_template_kwargs=common.chat_kwargs(cfg) or None,
    )
    # DistillationTrainer wants a prompt-only dataset.
    data = Dataset.from_list([{"prompt": common.user_message(cfg, r["prompt"])} for r in common.prompt_pool(cfg)])
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args, train_dataset=data,
                                  processing_class=tokenizer)
    store = common.RunStoreCallback(run, stage, probe, lambda: (trainer.model, teacher), cfg.probe.every)
    trainer.add_callback(store)
    if not common.last_checkpoint(stage_dir):
        store.take(0)
    trainer.train(resume_from_checkpoint=common.last_checkpoint(stage_dir))
    state_dict = common.gathered_state_dict(trainer)  # every process: a collective under ZeRO-3 / FSDP
    if not trainer.accelerator.is_main_process:
        return None, None
    store.take(o.steps)
    return trainer.model, state_dict


# --- sampled-token implicit reward with importance sampling (own loop) ----------------------------------------------

def completion_logprobs(model, rollouts, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """`log p(y_t)` of each completion token under `model`: `[B, C]` log-probs and `[B, C]` completion mask.

    Sequences are left-padded so completions end at the right edge; position ids follow the attention mask.
    """
    seqs = [r.prompt_ids + r.completion_ids for r in rollouts]
    width = max(map(len, seqs))
    ids_BL = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn_BL = torch.zeros((len(seqs), width), dtype=torch.long)
    C = max(len(r.completion_ids) for r in rollouts)
    cmask_BC = torch.zeros((len(seqs), C), dtype=torch.bool)
    for i, (s, r) in enumerate(zip(seqs, rollouts)):
        ids_BL[i, width - len(s):] = torch.tensor(s)
        attn_BL[i, width - len(s):] = 1
        cmask_BC[i, C - len(r.completion_ids):] = True
    ids_BL, attn_BL, cmask_BC = ids_BL.to(device), attn_BL.to(device), cmask_BC.to(device)
    pos_BL = (attn_BL.cumsum(-1) - 1).clamp(min=0)
    # logits at position j predict token j+1: keep the C positions that predict the completion tokens
    logits_BCV = model(input_ids=ids_BL, attention_mask=attn_BL, position_ids=pos_BL,
                       logits_to_keep=C + 1).logits[:, :-1].float()
    logp_BC = selective_log_softmax(logits_BCV, ids_BL[:, -C:])
    return logp_BC * cmask_BC, cmask_BC


def sampled_token_loss(student_logp_BC, sampler_logp_BC, teacher_logp_BC, mask_BC):
    """Importance-sampled policy gradient with the implicit reward as per-token advantage.

    A_t = log pT(y_t) - log q(y_t)   (q: the sampler; equals pS when sampling from the current student)
    loss = -sum_t [exp(log pS(y_t) - log q(y_t)) * A_t] / num_tokens
    Returns the loss and the mean advantage (= minus the sampled estimate of the reverse KL).
    """
    adv_BC = (teacher_logp_BC - sampler_logp_BC).detach() * mask_BC
    ratio_BC = torch.exp(student_logp_BC - sampler_logp_BC.detach()) * mask_BC
    n = mask_BC.sum().clamp(min=1)
    return -(ratio_BC * adv_BC).sum() / n, adv_BC.sum() / n


def _train_sampled_token(cfg, run, stage, student, teacher, tokenizer, probe):
    o, g = cfg.opd, cfg.generation
    device = next(student.parameters()).device
    ckpt_dir = run.stage_dir(stage) / "checkpoints" / "last"
    optim = torch.optim.AdamW(student.parameters(), lr=o.learning_rate, weight_decay=0.0)
    start = 0
    if (ckpt_dir / "state.json").exists():
        state = json.loads((ckpt_dir / "state.json").read_text())
        student.load_state_dict(torch.load(ckpt_dir / "model.pt", map_location=device))
        optim.load_state_dict(torch.load(ckpt_dir / "optimizer.pt", map_location=device))
        start = state["step"]
        common.truncate_metrics(run, stage, start)
    store = common.RunStoreCallback(run, stage, probe, lambda: (student, teacher), cfg.probe.every)
    if start == 0:
        store.take(0)
    pool = common.prompt_pool(cfg)
    rng = random.Random(cfg.seed)
    order = [rng.sample(range(len(pool)), len(pool)) for _ in range(o.steps * o.batch_size // len(pool) + 1)]
    order = [i for perm in order for i in perm]
    pad_id = tokenizer.pad_token_id
    for step in tqdm(range(start, o.steps), desc=f"{stage} (sampled_token)", initial=start, total=o.steps):
        batch = [pool[i] for i in order[step * o.batch_size:(step + 1) * o.batch_size]]
        rollouts = sample(student, tokenizer, batch, n=1, max_new_tokens=g.max_new_tokens, temperature=g.temperature,
                          top_p=g.top_p, top_k=g.top_k, batch_size=g.batch_size, seed=cfg.seed * 100003 + step,
                          prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=common.chat_kwargs(cfg),
                          progress=False)
        rollouts = [r for r in rollouts if r.completion_ids]
        C = max(len(r.completion_ids) for r in rollouts)
        sampler_BC = torch.zeros((len(rollouts), C), device=device)
        for i, r in enumerate(rollouts):
            sampler_BC[i, C - len(r.completion_ids):] = torch.tensor(r.sampler_logprobs, device=device)
        with torch.no_grad():
            teacher_BC, _ = completion_logprobs(teacher, rollouts, pad_id, device)
        student.train()
        student_BC, mask_BC = completion_logprobs(student, rollouts, pad_id, device)
        loss, mean_adv = sampled_token_loss(student_BC, sampler_BC, teacher_BC, mask_BC)
        optim.zero_grad()
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optim.step()
        done = step + 1
        run.append_metrics(stage, {"step": done, "loss": loss.item(), "grad_norm": grad_norm.item(),
                                   "learning_rate": o.learning_rate, "implicit_reward": mean_adv.item(),
                                   "sampled_reverse_kl": -mean_adv.item(),
                                   "completions/mean_length": mask_BC.sum(-1).float().mean().item()})
        if done % o.save_every == 0 and done < o.steps:
            tmp = ckpt_dir.with_name("last.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            torch.save(student.state_dict(), tmp / "model.pt")
            torch.save(optim.state_dict(), tmp / "optimizer.pt")
            (tmp / "state.json").write_text(json.dumps({"step": done}))
            shutil.rmtree(ckpt_dir, ignore_errors=True)
            tmp.rename(ckpt_dir)
        if cfg.probe.every and done % cfg.probe.every == 0 and done < o.steps:
            store.take(done)
    store.take(o.steps)
    return student
