"""Dense per-token rewards: the teacher scores every token of a rollout.

For a rollout `y ~ pS(.|x)` and position t, with pS, pT the student's and teacher's full next-token distributions
(docs/DESIGN.md, "Sign conventions"):

    implicit_reward[t] = log pT(y_t) - log pS(y_t)          > 0: the teacher likes y_t more than the student does
    reverse_kl[t]      = KL(pS || pT) = sum_v pS(v) (log pS(v) - log pT(v))    >= 0
    forward_kl[t]      = KL(pT || pS) = sum_v pT(v) (log pT(v) - log pS(v))    >= 0
    student_entropy[t] = -sum_v pS(v) log pS(v),  teacher_entropy[t] likewise

so `E_{y_t ~ pS}[-implicit_reward[t]] = reverse_kl[t]`: the sampled-token implicit reward is a one-sample estimate
of minus the reverse KL that on-policy distillation minimises.

Three layers, smallest first:
- `token_scores(student_logits_BTV, teacher_logits_BTV, token_ids_BT)`: the math on logits that are already aligned.
- `score_sequences(student, teacher, input_ids_BL, completion_mask_BL)`: runs each model's body once and projects
  hidden states through each `lm_head` a chunk of positions at a time, so peak memory is `chunk_size x vocab`,
  not `length x vocab` (a 4,096-token rollout with Qwen3's 151,936-token vocabulary is 2.5 GB of float32 logits
  per model; see bench/bench_scoring.py).
- `score_rollouts(student, teacher, tokenizer, rollouts)`: `Rollout`s in, run-store rows out (plain lists/floats).

Shape suffixes: B batch, T scored positions, L input length, V vocabulary, H hidden size, K top-k, N packed
positions. All scores are float32 whatever the model dtype, and are diagnostics: no autograd graph is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields

import torch

from s2dlab.core.token_text import TokenText

# Top-k slots at masked positions hold this id (and log-prob 0.0).
MASKED_TOPK_ID = -1


@dataclass
class TokenScores:
    """Per-token scores of a batch. `[B, T]` float32 unless noted; every field is 0 where `mask` is False
    (top-k ids are `MASKED_TOPK_ID` = -1 there)."""

    student_logprob: torch.Tensor  # log pS(y_t)
    teacher_logprob: torch.Tensor  # log pT(y_t)
    implicit_reward: torch.Tensor  # log pT(y_t) - log pS(y_t)
    reverse_kl: torch.Tensor  # KL(pS || pT)
    forward_kl: torch.Tensor  # KL(pT || pS)
    student_entropy: torch.Tensor  # H(pS)
    teacher_entropy: torch.Tensor  # H(pT)
    teacher_topk_ids: torch.Tensor  # [B, T, K] int64, the teacher's K most likely tokens, most likely first
    teacher_topk_logprobs: torch.Tensor  # [B, T, K] their log pT
    student_topk_ids: torch.Tensor  # [B, T, K] int64
    student_topk_logprobs: torch.Tensor  # [B, T, K] their log pS
    mask: torch.Tensor  # [B, T] bool, True where the position was scored

    def to(self, device) -> TokenScores:
        return TokenScores(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


PER_TOKEN_FIELDS = ("student_logprob", "teacher_logprob", "implicit_reward", "reverse_kl", "forward_kl",
                    "student_entropy", "teacher_entropy")
TOPK_FIELDS = ("teacher_topk_ids", "teacher_topk_logprobs", "student_topk_ids", "student_topk_logprobs")


# --------------------------------------------------------------------------------------------------------------
# The math on aligned logits


def _dot_V(a_BTV: torch.Tensor, b_BTV: torch.Tensor) -> torch.Tensor:
    """sum_v a[..., v] * b[..., v] without materialising the product (einsum contracts through a batched matmul)."""
    return torch.einsum("btv,btv->bt", a_BTV, b_BTV)


@torch.no_grad()
def token_scores(student_logits_BTV: torch.Tensor, teacher_logits_BTV: torch.Tensor, token_ids_BT: torch.Tensor,
                 mask_BT: torch.Tensor | None = None, top_k: int = 5, temperature: float = 1.0,
                 vocab_size: int | None = None) -> TokenScores:
    """Score tokens from logits already aligned so that position t predicts `token_ids_BT[:, t]`.

    Scores are computed in float32 whatever the input dtype (bf16 in, float32 out); the inputs are not modified.
    Both distributions are `softmax(logits / temperature)` over the shared vocabulary: the teacher and student
    heads may be padded to different sizes (Qwen3 pads its 151,669-token tokenizer to 151,936 rows), so both are
    sliced to the smaller head, and further to `vocab_size` when given (pass `len(tokenizer)` to drop the padding
    rows, which renormalises over real tokens). A token id at or beyond that size at a scored position is an error.

    Peak extra memory is about three float32 copies of one logits tensor; callers with long sequences and large
    vocabularies should go through `score_sequences`, which feeds this function a chunk at a time.
    """
    if student_logits_BTV.shape[:2] != token_ids_BT.shape or teacher_logits_BTV.shape[:2] != token_ids_BT.shape:
        raise ValueError(f"logits {tuple(student_logits_BTV.shape)} / {tuple(teacher_logits_BTV.shape)} do not "
                         f"align with token ids {tuple(token_ids_BT.shape)}: expected [B, T, V] and [B, T]")
    V = min(student_logits_BTV.shape[-1], teacher_logits_BTV.shape[-1])
    if vocab_size is not None:
        if vocab_size > V:
            raise ValueError(f"vocab_size={vocab_size} but the smaller output head has only {V} rows")
        V = vocab_size
    device = student_logits_BTV.device
    token_ids_BT = token_ids_BT.to(device)
    mask_BT = torch.ones_like(token_ids_BT, dtype=torch.bool) if mask_BT is None else mask_BT.to(device).bool()
    if mask_BT.any() and int(token_ids_BT[mask_BT].max()) >= V:
        raise ValueError(f"token id {int(token_ids_BT[mask_BT].max())} is outside the shared vocabulary of {V}")
    K = min(top_k, V)

    s_BTV = student_logits_BTV[..., :V]
    t_BTV = teacher_logits_BTV[..., :V]
    if temperature != 1.0:
        s_BTV, t_BTV = s_BTV / temperature, t_BTV / temperature
    # Buffers 1 and 2: log-probabilities in float32 (log_softmax upcasts before reducing).
    s_logp_BTV = torch.log_softmax(s_BTV, dim=-1, dtype=torch.float32)
    t_logp_BTV = torch.log_softmax(t_BTV, dim=-1, dtype=torch.float32)
    del s_BTV, t_BTV

    # Masked positions may hold pad or -100 ids; any valid id will do for the gather, the result is zeroed below.
    ids_BT1 = torch.where(mask_BT, token_ids_BT, 0).long().unsqueeze(-1)
    student_logprob = s_logp_BTV.gather(-1, ids_BT1).squeeze(-1)
    teacher_logprob = t_logp_BTV.gather(-1, ids_BT1).squeeze(-1)
    implicit_reward = teacher_logprob - student_logprob  # log pT(y_t) - log pS(y_t)
    t_top_logp_BTK, t_top_ids_BTK = t_logp_BTV.topk(K, dim=-1)
    s_top_logp_BTK, s_top_ids_BTK = s_logp_BTV.topk(K, dim=-1)

    # Buffer 3: pS. H(pS) = -sum pS log pS.
    p_BTV = s_logp_BTV.exp()
    student_entropy = -_dot_V(p_BTV, s_logp_BTV)
    # log pS - log pT, in place over log pS (no longer needed): KL(pS||pT) = sum pS (log pS - log pT).
    d_BTV = s_logp_BTV.sub_(t_logp_BTV)
    reverse_kl = _dot_V(p_BTV, d_BTV)
    # Reuse buffer 3 for pT. H(pT) = -sum pT log pT; KL(pT||pS) = sum pT (log pT - log pS) = -sum pT d.
    torch.exp(t_logp_BTV, out=p_BTV)
    teacher_entropy = -_dot_V(p_BTV, t_logp_BTV)
    forward_kl = -_dot_V(p_BTV, d_BTV)
    del p_BTV, d_BTV, s_logp_BTV, t_logp_BTV

    keep_BT = mask_BT
    keep_BTK = keep_BT.unsqueeze(-1)

    def zero(x):
        return torch.where(keep_BT if x.dim() == 2 else keep_BTK, x, torch.zeros((), dtype=x.dtype, device=x.device))

    return TokenScores(
        student_logprob=zero(student_logprob),
        teacher_logprob=zero(teacher_logprob),
        implicit_reward=zero(implicit_reward),
        # Rounding can leave a KL of -1e-8 where pS = pT; a KL is never negative.
        reverse_kl=zero(reverse_kl.clamp_min(0.0)),
        forward_kl=zero(forward_kl.clamp_min(0.0)),
        student_entropy=zero(student_entropy.clamp_min(0.0)),
        teacher_entropy=zero(teacher_entropy.clamp_min(0.0)),
        teacher_topk_ids=torch.where(keep_BTK, t_top_ids_BTK, MASKED_TOPK_ID),
        teacher_topk_logprobs=zero(t_top_logp_BTK),
        student_topk_ids=torch.where(keep_BTK, s_top_ids_BTK, MASKED_TOPK_ID),
        student_topk_logprobs=zero(s_top_logp_BTK),
        mask=keep_BT,
    )


# --------------------------------------------------------------------------------------------------------------
# Models in, scores out, a chunk of positions at a time


@contextmanager
def _eval_mode(*models):
    """Dropout off while scoring; each model's training flag is restored afterwards."""
    was_training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, flag in zip(models, was_training):
            m.train(flag)


def _hidden_states_BLH(model, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor) -> torch.Tensor:
    """Final hidden states of the model's body (after its last norm), without the vocabulary projection."""
    device = model.get_output_embeddings().weight.device
    # Left padding: positions count real tokens only, as `generate` does, so a padded prompt sees the same
    # rotary positions as the unpadded one.
    position_ids_BL = (attention_mask_BL.long().cumsum(-1) - 1).clamp_min(0)
    out = model.get_decoder()(input_ids=input_ids_BL.to(device), attention_mask=attention_mask_BL.to(device),
                              position_ids=position_ids_BL.to(device), use_cache=False)
    return out.last_hidden_state


def _project(model, hidden_NH: torch.Tensor) -> torch.Tensor:
    """Logits of a chunk of hidden states: `lm_head`, plus the final soft-capping of models that have one."""
    head = model.get_output_embeddings()
    logits_NV = head(hidden_NH.to(head.weight.device))
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits_NV = torch.tanh(logits_NV / cap) * cap
    return logits_NV


@torch.no_grad()
def score_sequences(student, teacher, input_ids_BL: torch.Tensor, completion_mask_BL: torch.Tensor,
                    attention_mask_BL: torch.Tensor | None = None, chunk_size: int = 256, top_k: int = 5,
                    temperature: float = 1.0, vocab_size: int | None = None) -> TokenScores:
    """Score the completion tokens of a batch with both models, without ever holding `[B, L, V]` logits.

    Alignment: the result is `[B, L-1]`, shifted by one. Column j scores token `input_ids_BL[:, j+1]`, predicted
    from the hidden state at position j; it is scored where `completion_mask_BL[:, j+1]` and
    `attention_mask_BL[:, j+1]` are both set. So `scores.implicit_reward[b, j]` belongs to `input_ids_BL[b, j+1]`,
    and `scores.mask == completion_mask_BL[:, 1:] & attention_mask_BL[:, 1:]`. Position 0 is never scored (nothing
    predicts it).

    Each model's body runs once over the whole batch (left or right padding both work: position ids come from
    `attention_mask_BL`). The scored positions are then packed across the batch and projected through each
    `lm_head` `chunk_size` positions at a time, so peak memory is about `chunk_size x V` floats per model (plus the
    `[B, L, H]` hidden states) and the prompt costs no projection. Scores are computed on the student's device,
    in float32; see `token_scores` for `temperature` and `vocab_size`. Models are put in eval mode while scoring
    and restored afterwards.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if attention_mask_BL is None:
        attention_mask_BL = torch.ones_like(input_ids_BL)
    with _eval_mode(student, teacher):
        return _score_sequences(student, teacher, input_ids_BL, completion_mask_BL, attention_mask_BL, chunk_size,
                                top_k, temperature, vocab_size)


def _score_sequences(student, teacher, input_ids_BL, completion_mask_BL, attention_mask_BL, chunk_size, top_k,
                     temperature, vocab_size) -> TokenScores:
    B, L = input_ids_BL.shape
    h_s_BLH = _hidden_states_BLH(student, input_ids_BL, attention_mask_BL)
    h_t_BLH = _hidden_states_BLH(teacher, input_ids_BL, attention_mask_BL)
    device = student.get_output_embeddings().weight.device

    mask_BT = (completion_mask_BL[:, 1:].bool() & attention_mask_BL[:, 1:].bool()).to(device)
    ids_BT = input_ids_BL[:, 1:].to(device)
    # Pack the scored positions of every row: hidden state at j predicts token j+1.
    h_s_NH = h_s_BLH[:, :-1][mask_BT.to(h_s_BLH.device)]
    h_t_NH = h_t_BLH[:, :-1][mask_BT.to(h_t_BLH.device)]
    ids_N = ids_BT[mask_BT]
    N = ids_N.shape[0]
    del h_s_BLH, h_t_BLH

    V = min(student.get_output_embeddings().weight.shape[0], teacher.get_output_embeddings().weight.shape[0])
    K = min(top_k, vocab_size if vocab_size is not None else V)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in PER_TOKEN_FIELDS + TOPK_FIELDS}
    for start in range(0, N, chunk_size):
        stop = min(start + chunk_size, N)
        s_1CV = _project(student, h_s_NH[start:stop]).unsqueeze(0)
        t_1CV = _project(teacher, h_t_NH[start:stop]).to(device).unsqueeze(0)
        chunk = token_scores(s_1CV, t_1CV, ids_N[start:stop].unsqueeze(0), top_k=top_k, temperature=temperature,
                             vocab_size=vocab_size)
        del s_1CV, t_1CV
        for name in parts:
            parts[name].append(getattr(chunk, name)[0])

    # Unpack into [B, T] (and [B, T, K]) tensors, zero / MASKED_TOPK_ID at unscored positions.
    out = {}
    for name in PER_TOKEN_FIELDS:
        full_BT = torch.zeros(B, L - 1, dtype=torch.float32, device=device)
        if N:
            full_BT[mask_BT] = torch.cat(parts[name])
        out[name] = full_BT
    for name in TOPK_FIELDS:
        is_ids = name.endswith("_ids")
        full_BTK = torch.full((B, L - 1, K), MASKED_TOPK_ID if is_ids else 0, device=device,
                              dtype=torch.long if is_ids else torch.float32)
        if N:
            full_BTK[mask_BT] = torch.cat(parts[name])
        out[name] = full_BTK
    return TokenScores(**out, mask=mask_BT)


# --------------------------------------------------------------------------------------------------------------
# Rollouts in, run-store rows out


def _answer_for(answers, i: int, rollout):
    if answers is None:
        return None
    if isinstance(answers, Mapping):
        return answers.get(rollout.prompt_id)
    return answers[i]


def score_rollouts(student, teacher, tokenizer, rollouts: Sequence, grade_fn=None, answers=None, stage: str = "",
                   step: int = 0, top_k: int = 5, batch_size: int = 16, chunk_size: int = 256,
                   temperature: float = 1.0) -> list[dict]:
    """Score `Rollout`s (any objects with the attributes in CONTRACTS.md) into run-store rows, one per rollout.

    `answers`: the gold answer per rollout, either a mapping `prompt_id -> answer` or a sequence aligned with
    `rollouts`. `grade_fn(completion, answer) -> bool` grades each completion; without it (or without an answer)
    `correct` and `reward` are None. `reward` is the sparse reward, 1.0 if correct else 0.0.

    Every per-token column has one entry per completion token (`length` entries, eos included when the model
    stopped); top-k columns are lists of `top_k` lists. The token text columns (`tokens`, `token_bytes`,
    `token_special`, `span_starts`, `span_texts`) come from `s2dlab.core.token_text`: readers render whole characters
    from them without the tokenizer, even where a byte-level tokenizer splits one. Values are plain Python lists,
    floats and bytes, ready for parquet. Rollouts are batched by length to keep padding small; rows come back in
    input order. Distributions are over the tokenizer's `len(tokenizer)` tokens (padding rows of the heads dropped).
    """
    from s2dlab.core.rewards import (
        extract_boxed,  # grading lives in rewards.py; imported here to keep scoring light
    )

    token_text = TokenText(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(rollouts)), key=lambda i: len(rollouts[i].prompt_ids) + len(rollouts[i].completion_ids))
    per_rollout: dict[int, dict[str, list]] = {}
    for start in range(0, len(order), batch_size):
        batch = [rollouts[i] for i in order[start:start + batch_size]]
        for r in batch:
            if not r.prompt_ids:
                raise ValueError(f"rollout {r.prompt_id}/{r.sample_idx} has no prompt tokens: nothing predicts its "
                                 f"first completion token")
        L = max(len(r.prompt_ids) + len(r.completion_ids) for r in batch)
        input_ids_BL = torch.full((len(batch), L), pad_id, dtype=torch.long)
        attention_mask_BL = torch.zeros(len(batch), L, dtype=torch.long)
        completion_mask_BL = torch.zeros(len(batch), L, dtype=torch.long)
        for b, r in enumerate(batch):  # left padding: every completion ends at column L-1
            seq = list(r.prompt_ids) + list(r.completion_ids)
            input_ids_BL[b, L - len(seq):] = torch.tensor(seq, dtype=torch.long)
            attention_mask_BL[b, L - len(seq):] = 1
            completion_mask_BL[b, L - len(r.completion_ids):] = 1 if r.completion_ids else 0
        scores = score_sequences(student, teacher, input_ids_BL, completion_mask_BL, attention_mask_BL,
                                 chunk_size=chunk_size, top_k=top_k, temperature=temperature,
                                 vocab_size=len(tokenizer)).to("cpu")
        for b, r in enumerate(batch):
            C = len(r.completion_ids)
            # Token L-C sits at output column L-C-1 (column j scores token j+1); the completion runs to column L-2.
            cols = slice(L - 1 - C, L - 1)
            per_rollout[order[start + b]] = {name: getattr(scores, name)[b, cols].tolist()
                                             for name in PER_TOKEN_FIELDS + TOPK_FIELDS}

    rows = []
    for i, r in enumerate(rollouts):
        answer = _answer_for(answers, i, r)
        correct = bool(grade_fn(r.completion, answer)) if grade_fn is not None and answer is not None else None
        token_ids = [int(t) for t in r.completion_ids]
        per_token = per_rollout[i]
        row = {
            "stage": stage,
            "step": int(step),
            "policy": getattr(r, "policy", "student"),
            "prompt_id": r.prompt_id,
            "sample_idx": int(r.sample_idx),
            "prompt": r.prompt,
            "completion": r.completion,
            "answer": None if answer is None else str(answer),
            "extracted": extract_boxed(r.completion),
            "correct": correct,
            "reward": None if correct is None else float(correct),
            "finished": bool(r.finished),
            "length": len(token_ids),
            "prompt_ids": [int(t) for t in r.prompt_ids],  # as the model saw it: re-scoring and branching need it
            "token_ids": token_ids,
            # tokens, token_bytes, token_special, span_starts, span_texts (s2dlab.core.token_text)
            **token_text.columns(token_ids),
            **per_token,
            "sum_implicit_reward": float(sum(per_token["implicit_reward"])),
            "mean_reverse_kl": (float(sum(per_token["reverse_kl"]) / len(token_ids)) if token_ids else None),
        }
        rows.append(row)
    return rows
