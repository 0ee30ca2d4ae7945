"""Stage 2a, `fkl_warmup`: forward KL on the teacher's rollouts, moving the student inside the teacher's support (C2).

As in the paper: the teacher samples `rollouts_per_prompt` completions for every prompt of the bridge's prompt set
(answers unused), its next-token distribution at every position of those rollouts is cached, and the student
minimises the forward KL against the cache on the teacher's own prefixes,

    loss = mean over cached positions t of  KL(pT(.|s_t) || pS(.|s_t)) = sum_v pT(v) (log pT(v) - log pS(v)),
    s_t ~ d_pT (teacher prefixes),

which is distribution matching: the student learns every alternative the teacher would weigh, not just the token
it happened to sample. Two options (`fkl_warmup.loss`, `fkl_warmup.top_k`):

- `loss=full, top_k=0` (default; the tiny vocabulary has 100 tokens): the cache holds the whole distribution.
- `loss=full, top_k=K`: for large vocabularies (Qwen3: 151,936) the cache holds the teacher's K most likely tokens
  and one *tail bucket* with the rest of its mass; the student's distribution is lumped the same way (its mass
  outside those K tokens), so the loss is the exact KL between two (K+1)-outcome distributions. Lumping can only
  lower a KL (log-sum inequality), so this under-estimates the full forward KL; the gap, measured with the live
  teacher on the first cached rollouts at the start and end of training, is stored in stage.json (`truncation`).
- `loss=sampled`: the paper's separate "teacher-sample SFT" arm, cross-entropy on the sampled teacher tokens (a
  one-sample estimate of the same forward KL up to the teacher's entropy). Same rollouts, same batches; only the
  target differs, which is why both losses live in one small trainer rather than GKD/SFT trainers with their own
  tokenisation.

The rollouts are cached in `<stage>/teacher_rollouts.jsonl` (token ids as sampled, so nothing is re-tokenised) and
the distributions in `<stage>/teacher_cache.pt`, so a resumed warmup trains on the same data. Only rollouts that
ended with EOS are kept; `only_correct=true` also drops wrong ones (uses labels; off by default).

    s2dlab stage fkl_warmup --out runs/tiny
    s2dlab stage fkl_warmup --out runs/tiny fkl_warmup.top_k=8        # the large-vocabulary path, on the tiny model
"""

from __future__ import annotations

import math
import os

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from s2dlab.core import data
from s2dlab.core.config import Config, ConfigError
from s2dlab.core.distributed import process_state
from s2dlab.core.generation import sample
from s2dlab.core.runs import Run
from s2dlab.workflow.stages import lifecycle

# Beyond this many cached floats (positions x tokens kept) the full-vocabulary cache would not fit in memory.
MAX_CACHE_FLOATS = 2_000_000_000


# --- the teacher's rollouts and distributions, sampled once ----------------------------------------------------------

def teacher_rollouts(cfg: Config, run: Run, stage: str, teacher, tokenizer, prompts: list[dict]) -> list[dict]:
    """Sample (once; cached in `<stage>/teacher_rollouts.jsonl`) `rollouts_per_prompt` completions per prompt."""
    path = run.stage_dir(stage) / "teacher_rollouts.jsonl"
    if path.exists():
        return data.read_jsonl(path)
    w, g = cfg.fkl_warmup, cfg.generation
    # Several processes: each samples a contiguous block of the prompts with its own copy of the teacher, and the
    # blocks are gathered in order, so every process trains on the same rows. vLLM samples on the main process only.
    ps = process_state(cfg)
    if g.backend == "vllm":
        mine = prompts if ps.is_main_process else []
    else:
        block = math.ceil(len(prompts) / ps.num_processes)
        mine = prompts[ps.process_index * block:(ps.process_index + 1) * block]
    rollouts = []
    if mine:
        source = teacher
        if g.backend == "vllm":
            from s2dlab.core.generation import vllm_engine

            source = vllm_engine(teacher.name_or_path, gpu_memory_utilization=g.vllm_gpu_memory_utilization,
                                 seed=cfg.seed, dtype=cfg.models.dtype)
        rollouts = sample(source, tokenizer, mine, n=w.rollouts_per_prompt, max_new_tokens=g.max_new_tokens,
                          temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, batch_size=g.batch_size,
                          seed=cfg.seed, prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=data.chat_kwargs(cfg),
                          backend=g.backend, policy="teacher", progress=False)
        del source
    rows = [{"prompt_id": r.prompt_id, "prompt_ids": r.prompt_ids, "completion_ids": r.completion_ids,
             "completion": r.completion, "finished": r.finished} for r in rollouts]
    if ps.num_processes > 1:
        from accelerate.utils import gather_object

        rows = gather_object(rows)
    if ps.is_main_process:
        data.write_jsonl(path, rows)
    return rows


def usable(cfg: Config, rows: list[dict], prompts_set: str) -> list[dict]:
    keep = [r for r in rows if r["finished"] and r["completion_ids"]]
    if cfg.fkl_warmup.only_correct:
        answers = {r["id"]: r["answer"] for r in data.labeled(cfg, prompts_set)}
        grade = data.grade_fn(cfg)
        keep = [r for r in keep if grade(r["completion"], answers[r["prompt_id"]])]
    if not keep:
        raise ConfigError(f"no usable teacher rollouts for the warmup ({len(rows)} sampled, none finished"
                          f"{' and correct' if cfg.fkl_warmup.only_correct else ''}); raise "
                          f"generation.max_new_tokens or set fkl_warmup.only_correct=false")
    return keep


def _batch_BL(rows: list[dict], pad_id: int):
    """Right-padded `[B, L]` ids, attention mask and a mask of the positions whose logits predict a completion
    token (position j predicts token j+1)."""
    L = max(len(r["prompt_ids"]) + len(r["completion_ids"]) for r in rows)
    ids_BL = torch.full((len(rows), L), pad_id, dtype=torch.long)
    attn_BL = torch.zeros((len(rows), L), dtype=torch.long)
    target_BL = torch.zeros((len(rows), L), dtype=torch.bool)
    for b, r in enumerate(rows):
        P, C = len(r["prompt_ids"]), len(r["completion_ids"])
        ids_BL[b, :P + C] = torch.tensor(r["prompt_ids"] + r["completion_ids"])
        attn_BL[b, :P + C] = 1
        target_BL[b, P - 1:P + C - 1] = True
    return ids_BL, attn_BL, target_BL


@torch.no_grad()
def teacher_distributions(teacher, rows: list[dict], top_k: int, vocab: int, pad_id: int, batch_size: int = 16
                          ) -> list[dict]:
    """Per rollout `[C, K]` log-probs of the teacher's next-token distribution at every completion position (and the
    ids, and the tail bucket's log-prob, when `top_k` keeps K < V tokens). Distributions are over the tokenizer's
    `vocab` tokens (padding rows of the head dropped), in float32."""
    device = next(teacher.parameters()).device
    teacher.eval()
    out = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        ids_BL, attn_BL, target_BL = _batch_BL(chunk, pad_id)
        logits_BLV = teacher(input_ids=ids_BL.to(device), attention_mask=attn_BL.to(device)).logits[..., :vocab]
        logp_BLV = torch.log_softmax(logits_BLV.float(), dim=-1)
        for b in range(len(chunk)):
            logp_CV = logp_BLV[b][target_BL[b].to(device)].cpu()
            if top_k:
                top_CK, ids_CK = logp_CV.topk(top_k, dim=-1)
                tail_C = _log1mexp(torch.logsumexp(top_CK, dim=-1))
                out.append({"logp": top_CK, "ids": ids_CK.to(torch.int32), "tail": tail_C})
            else:
                out.append({"logp": logp_CV})
    return out


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x <= 0, stable at both ends (Mächler 2012); clamped so an empty tail stays finite."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


# --- the loss ---------------------------------------------------------------------------------------------------------

def forward_kl_terms(student_logp_NV: torch.Tensor, teacher_logp_NK: torch.Tensor, ids_NK: torch.Tensor | None,
                     teacher_tail_N: torch.Tensor | None) -> torch.Tensor:
    """Per-position KL(pT || pS) against a cached teacher distribution, `[N]`.

    Full cache (`ids_NK` None, K = V): `sum_v pT (log pT - log pS)`. Top-k cache: the K cached tokens plus one tail
    bucket on both sides, `sum_k pT_k (log pT_k - log pS_k) + pT_tail (log pT_tail - log pS_tail)`, with
    `pS_tail = 1 - sum_k pS_k` over the same K tokens.
    """
    pT_NK = teacher_logp_NK.exp()
    if ids_NK is None:
        return (pT_NK * (teacher_logp_NK - student_logp_NV)).sum(-1)
    s_NK = student_logp_NV.gather(-1, ids_NK.long())
    s_tail_N = _log1mexp(torch.logsumexp(s_NK, dim=-1))
    head = (pT_NK * (teacher_logp_NK - s_NK)).sum(-1)
    return head + teacher_tail_N.exp() * (teacher_tail_N - s_tail_N)


class WarmupTrainer(Trainer):
    """`transformers.Trainer` with the warmup's loss on prepared teacher rollouts (see the module docstring).

    Batches carry `input_ids`, `attention_mask`, `target_mask` (positions predicting a completion token), `labels`
    (the next token there, -100 elsewhere: lets the Trainer count tokens across gradient accumulation) and, for the
    forward KL, the cached teacher log-probs (and ids and tail) at the target positions, packed `[N, K]`.
    """

    def __init__(self, *args, loss: str, vocab: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_kind, self.vocab = loss, vocab

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target_BL = inputs["target_mask"].bool()
        logits_BLV = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        # distributions over the tokenizer's tokens: padding rows of the output head are dropped
        logp_NV = torch.log_softmax(logits_BLV[target_BL][..., :self.vocab].float(), dim=-1)
        if self.loss_kind == "sampled":
            terms_N = -logp_NV.gather(-1, inputs["next_ids"].unsqueeze(-1)).squeeze(-1)
        else:
            terms_N = forward_kl_terms(logp_NV, inputs["teacher_logp"], inputs.get("teacher_ids"),
                                       inputs.get("teacher_tail"))
        n = num_items_in_batch if num_items_in_batch is not None else terms_N.numel()
        return terms_N.sum() / n


def collate(pad_id: int, cache: list[dict] | None):
    """Batches for `WarmupTrainer` from dataset rows `{"index"}` into the rollouts and the teacher cache."""

    def fn(rows_and_index):
        rows = [r["row"] for r in rows_and_index]
        ids_BL, attn_BL, target_BL = _batch_BL(rows, pad_id)
        labels_BL = torch.full_like(ids_BL, -100)
        labels_BL[:, 1:][target_BL[:, :-1]] = ids_BL[:, 1:][target_BL[:, :-1]]
        batch = {"input_ids": ids_BL, "attention_mask": attn_BL, "target_mask": target_BL, "labels": labels_BL,
                 "next_ids": ids_BL[:, 1:][target_BL[:, :-1]]}
        if cache is not None:
            entries = [cache[r["index"]] for r in rows_and_index]
            batch["teacher_logp"] = torch.cat([e["logp"] for e in entries])
            if "ids" in entries[0]:
                batch["teacher_ids"] = torch.cat([e["ids"] for e in entries])
                batch["teacher_tail"] = torch.cat([e["tail"] for e in entries])
        return batch

    return fn


# --- the stage --------------------------------------------------------------------------------------------------------

def run(cfg: Config, run: Run, *, out: str, init: str, teacher: str, prompts: str, loss: str | None = None,
        steps: int | None = None) -> dict:
    """Warm up the student handed off by `init` on rollouts of `teacher` for the prompts of `prompts` (pool | 1h).
    `loss` and `steps` override the config (the teacher-sample-SFT arm runs `loss="sampled"` for the bridge's
    student steps)."""
    if info := lifecycle.finished(run, out):
        return info
    w = cfg.fkl_warmup
    loss, steps = loss or w.loss, steps or w.steps
    st = lifecycle.begin(cfg, run, out, student_from=init, teacher_from=teacher, trained="student", teacher=teacher,
                         loss=loss, top_k=w.top_k if loss == "full" else None, prompts=lifecycle.prompts_info(cfg, prompts))
    tok = st.tokenizer
    vocab = len(tok)
    rows = usable(cfg, teacher_rollouts(cfg, run, out, st.teacher, tok, data.prompt_set(cfg, prompts)), prompts)
    cache, truncation = None, None
    if loss == "full":
        positions = sum(len(r["completion_ids"]) for r in rows)
        if positions * (w.top_k or vocab) > MAX_CACHE_FLOATS:
            raise ConfigError(f"fkl_warmup.top_k={w.top_k} caches {positions:,} positions x {w.top_k or vocab:,} "
                              f"tokens, too many to hold; set fkl_warmup.top_k=64 (top-k plus a tail bucket)")
        cache = _load_or_make_cache(run, out, st.teacher, rows, w.top_k, vocab, tok.pad_token_id)
        if w.top_k:
            truncation = {"start": truncation_error(st.student, st.teacher, rows[:64], w.top_k, vocab,
                                                    tok.pad_token_id)}
    args = TrainingArguments(**lifecycle.training_args(cfg, st.dir, steps=steps, learning_rate=w.learning_rate,
                                                       batch_size=w.batch_size, save_every=w.save_every),
                             remove_unused_columns=False)
    dataset = Dataset.from_list([{"index": i, "row": r} for i, r in enumerate(rows)])
    trainer = WarmupTrainer(model=st.student, args=args, train_dataset=dataset,
                            data_collator=collate(tok.pad_token_id, cache), loss=loss, vocab=vocab)
    info = dict(rollouts_used=len(rows), sequences=steps * w.batch_size)
    if truncation is None:
        return st.train(trainer, steps=steps, **info)

    def with_end_truncation(model) -> dict:  # the truncation error of the trained student, in the final record
        end = truncation_error(model, st.teacher, rows[:64], w.top_k, vocab, tok.pad_token_id)
        return {"truncation": {**truncation, "end": end}}

    return st.train(trainer, steps=steps, finish_info=with_end_truncation, **info)


def _load_or_make_cache(run: Run, stage: str, teacher, rows, top_k: int, vocab: int, pad_id: int) -> list[dict]:
    path = run.stage_dir(stage) / "teacher_cache.pt"
    if path.exists():
        return torch.load(path)
    cache = teacher_distributions(teacher, rows, top_k, vocab, pad_id)
    if lifecycle.is_main_process():
        tmp = path.with_name(".teacher_cache.pt.tmp")
        torch.save(cache, tmp)
        os.replace(tmp, path)
    return cache


@torch.no_grad()
def truncation_error(student, teacher, rows, top_k: int, vocab: int, pad_id: int) -> dict:
    """Mean per-position forward KL exact vs. with the top-k + tail cache, on `rows`, and the teacher's tail mass."""
    device = next(student.parameters()).device
    was = student.training
    student.eval()
    ids_BL, attn_BL, target_BL = _batch_BL(rows, pad_id)
    ids_BL, attn_BL, target_BL = ids_BL.to(device), attn_BL.to(device), target_BL.to(device)
    s_NV = torch.log_softmax(student(input_ids=ids_BL, attention_mask=attn_BL).logits[target_BL][..., :vocab].float(), -1)
    t_NV = torch.log_softmax(teacher(input_ids=ids_BL, attention_mask=attn_BL).logits[target_BL][..., :vocab].float(), -1)
    student.train(was)
    exact_N = forward_kl_terms(s_NV, t_NV, None, None)
    top_NK, ids_NK = t_NV.topk(top_k, dim=-1)
    tail_N = _log1mexp(torch.logsumexp(top_NK, dim=-1))
    trunc_N = forward_kl_terms(s_NV, top_NK, ids_NK, tail_N)
    return {"exact": exact_N.mean().item(), "truncated": trunc_N.mean().item(),
            "error": (exact_N - trunc_N).mean().item(), "teacher_tail_mass": tail_N.exp().mean().item(),
            "positions": int(exact_N.numel())}
