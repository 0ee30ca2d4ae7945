"""Counterfactual branches: what a token at position t is worth, measured by rolling the student out from it.

The implicit reward `log pT(y_t) - log pS(y_t)` (docs/DESIGN.md, "Sign conventions") is the teacher's opinion of a
token. Whether that token actually helps is a Monte Carlo question: force the token, let the student finish the
solution N times, grade every finish. For a prefix h = prompt + y_<t and a token c,

    V(h + c) = P(correct | h, c, continuations ~ pS)       the value of a branch
    V(h)     = E_{c ~ pS(.|h)} V(h + c)                     the value of the prefix (the student picks y_t itself)
    V(h + y_t) - V(h)                                       the advantage of the student's own token

`branch_values` reports, for one scored rollout, position and candidate set (by default the student's token and
the teacher's top alternatives at t), each branch's success rate with a binomial standard error and a Wilson
interval, beside the implicit reward of that token. `probe_branch_values` does it for a sample of positions of
many rollouts and asks the question the implicit reward is supposed to answer: does a negative implicit reward
predict that the student's token lowers the chance of success? (AUROC, `s2dlab.core.diagnostics.auroc`.)

Every branch set is one `generate` call (all candidates x N continuations in one batch), seeded, so the result is
a pure function of its inputs and the seed. Sampling is at temperature 1 with no top-k or top-p (the student's
own distribution, as on-policy distillation samples it).

Bounds: at most `MAX_BRANCH_SAMPLES` continuations per branch, `MAX_BRANCH_TOKENS` new tokens each,
`MAX_BRANCH_CANDIDATES` branches; on CPU, parameters x sequences x new tokens at most `CPU_BUDGET_PARAM_TOKENS`
(2e11, about 4e11 FLOP of decoding). The tiny shipped student (80,512 parameters) needs 2.5e8 for 16 x 3
branches of 64 tokens and answers in ~0.2 s (bench/bench_branches.py); a 135M-parameter model gets ~1,500
generated tokens in all, which at the rate measured for SmolLM2-135M on the 2-core CPU box (96 tokens in 6.4 s,
one sequence; docs/DESIGN.md) is under two minutes. A model on a GPU is not bounded by this budget.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Sequence

import torch

from s2dlab.core.errors import InputError

MAX_BRANCH_SAMPLES = 64  # continuations per branch
MAX_BRANCH_TOKENS = 256  # new tokens per continuation
MAX_BRANCH_CANDIDATES = 16  # branches (candidate tokens) per call
CPU_BUDGET_PARAM_TOKENS = 2e11  # on CPU: parameters x sequences x max new tokens, at most this
DEFAULT_TOP_K = 2  # teacher alternatives beside the student's own token (3 branches in all)
WILSON_Z = 1.96  # 95% Wilson score interval


# --------------------------------------------------------------------------------------------------------------
# Binomial summaries


def binomial_summary(successes: int, n: int, z: float = WILSON_Z) -> dict:
    """`success_rate`, its binomial standard error `se` = sqrt(p(1-p)/n), and the Wilson score interval."""
    if n <= 0:
        return {"n": 0, "successes": 0, "success_rate": None, "se": None, "wilson_low": None, "wilson_high": None}
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return {"n": n, "successes": successes, "success_rate": p, "se": math.sqrt(p * (1 - p) / n),
            "wilson_low": max(0.0, center - half), "wilson_high": min(1.0, center + half)}


# --------------------------------------------------------------------------------------------------------------
# Input checks


def _get(r, name, default=None):
    value = r.get(name) if isinstance(r, dict) else getattr(r, name, None)
    return default if value is None else value


def _ids(r) -> tuple[list[int], list[int]]:
    prompt_ids = [int(t) for t in _get(r, "prompt_ids", [])]
    completion_ids = _get(r, "completion_ids")
    if completion_ids is None:
        completion_ids = _get(r, "token_ids", [])
    if not prompt_ids:
        raise InputError(f"rollout {_get(r, 'prompt_id')}/{_get(r, 'sample_idx')} has no prompt_ids: add them "
                         f"(s2dlab.instruments.lens.with_prompt_ids rebuilds them from a run-store row)")
    return prompt_ids, [int(t) for t in completion_ids]


def _is_index(x) -> bool:
    if isinstance(x, bool):
        return False
    try:
        operator.index(x)  # int, numpy integers
    except TypeError:
        return False
    return True


def _vocab_size(model, tokenizer) -> int:
    return min(len(tokenizer), model.get_output_embeddings().weight.shape[0])


def check_budget(model, n_sequences: int, max_new_tokens: int, cpu_budget: float = CPU_BUDGET_PARAM_TOKENS) -> float:
    """parameters x sequences x new tokens; InputError when the model is on CPU and that exceeds `cpu_budget`."""
    params = sum(p.numel() for p in model.parameters())
    cost = float(params) * n_sequences * max_new_tokens
    device = next(model.parameters()).device
    if device.type == "cpu" and cost > cpu_budget:
        raise InputError(f"branching {n_sequences} sequences x {max_new_tokens} new tokens on a "
                         f"{params / 1e6:.1f}M-parameter model on CPU is {cost:.2g} parameter-tokens, above the CPU "
                         f"budget of {cpu_budget:.2g} (CPU_BUDGET_PARAM_TOKENS): lower n_samples or max_new_tokens, "
                         f"use a GPU, or pass a larger cpu_budget")
    return cost


def _check_bounds(position, length: int, n_samples: int, max_new_tokens: int) -> None:
    if not _is_index(position) or not 0 <= int(position) < length:
        raise InputError(f"position={position!r} is outside the completion of {length} tokens: pick 0..{length - 1}")
    if not isinstance(n_samples, int) or not 1 <= n_samples <= MAX_BRANCH_SAMPLES:
        raise InputError(f"n_samples={n_samples!r}: need 1..{MAX_BRANCH_SAMPLES} (MAX_BRANCH_SAMPLES) "
                         f"continuations per branch")
    if not isinstance(max_new_tokens, int) or not 1 <= max_new_tokens <= MAX_BRANCH_TOKENS:
        raise InputError(f"max_new_tokens={max_new_tokens!r}: need 1..{MAX_BRANCH_TOKENS} (MAX_BRANCH_TOKENS)")


# --------------------------------------------------------------------------------------------------------------
# Sampling and grading


@torch.no_grad()
def _continue(model, tokenizer, prefixes: list[list[int]], n_samples: int, max_new_tokens: int, seed: int,
              temperature: float) -> list[list[list[int]]]:
    """For each prefix, `n_samples` continuations (token ids up to and including eos), from one `generate` call."""
    device = next(model.parameters()).device
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    rows = [p for p in prefixes for _ in range(n_samples)]
    L = max(len(p) for p in rows)
    input_ids_BL = torch.full((len(rows), L), pad_id, dtype=torch.long)
    attention_mask_BL = torch.zeros(len(rows), L, dtype=torch.long)
    for b, p in enumerate(rows):  # left padding, as `generate` wants for decoder-only models
        input_ids_BL[b, L - len(p):] = torch.tensor(p, dtype=torch.long)
        attention_mask_BL[b, L - len(p):] = 1
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(seed)
            out_BT = model.generate(input_ids=input_ids_BL.to(device), attention_mask=attention_mask_BL.to(device),
                                    max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                    top_k=0, top_p=1.0, pad_token_id=pad_id, eos_token_id=eos_id)
    finally:
        model.train(was_training)
    new_BT = out_BT[:, L:].tolist()
    conts = []
    for ids in new_BT:
        conts.append(ids[:ids.index(eos_id) + 1] if eos_id in ids else ids)
    return [conts[i * n_samples:(i + 1) * n_samples] for i in range(len(prefixes))]


def _grade_branch(tokenizer, head: list[int], conts: list[list[int]], grade_fn, answer, eos_id) -> dict:
    successes = sum(bool(grade_fn(tokenizer.decode(head + c, skip_special_tokens=True), answer)) for c in conts)
    out = binomial_summary(successes, len(conts))
    out["finished_rate"] = sum(bool(c) and c[-1] == eos_id for c in conts) / len(conts) if conts else None
    out["mean_continuation_tokens"] = sum(len(c) for c in conts) / len(conts) if conts else None
    return out


@torch.no_grad()
def _logprobs_at(student, teacher, prefix: list[int], candidates: list[int], vocab_size: int) -> dict[str, list]:
    """log pS(c), log pT(c) and the implicit reward of each candidate after `prefix`, via scoring.token_scores."""
    from s2dlab.core.scoring import token_scores

    def last_logits(model):
        device = next(model.parameters()).device
        ids = torch.tensor([prefix], dtype=torch.long, device=device)
        return model(input_ids=ids, logits_to_keep=1).logits[0, -1].float().cpu()

    s_V, t_V = last_logits(student), last_logits(teacher)
    C = len(candidates)
    scores = token_scores(s_V.expand(1, C, -1), t_V.expand(1, C, -1), torch.tensor([candidates]), top_k=1,
                          vocab_size=vocab_size)
    return {"student_logprob": scores.student_logprob[0].tolist(),
            "teacher_logprob": scores.teacher_logprob[0].tolist(),
            "implicit_reward": scores.implicit_reward[0].tolist()}


def _teacher_ranking(teacher, rollout, prefix: list[int], position: int, top_k: int, vocab_size: int) -> list[int]:
    """The teacher's `top_k + 1` most likely tokens at t, most likely first (from `teacher`, else the row)."""
    if top_k <= 0:
        return []
    if teacher is not None:
        device = next(teacher.parameters()).device
        with torch.no_grad():
            logits_V = teacher(input_ids=torch.tensor([prefix], device=device), logits_to_keep=1).logits[0, -1]
        return logits_V[:vocab_size].float().topk(min(top_k + 1, vocab_size)).indices.tolist()
    topk = _get(rollout, "teacher_topk_ids")
    if topk is None or len(topk) <= position:
        return []
    return [int(v) for v in list(topk[position])[:top_k + 1] if int(v) >= 0]


def branch_values(student, tokenizer, rollout, position: int, grade_fn: Callable[[str, object], bool],
                  answer=None, candidates: Sequence[int] | None = None, n_samples: int = 16,
                  max_new_tokens: int = 64, teacher=None, top_k: int = DEFAULT_TOP_K, include_prefix: bool = False,
                  seed: int = 0, temperature: float = 1.0, cpu_budget: float = CPU_BUDGET_PARAM_TOKENS) -> dict:
    """Success rate of N student continuations from each branch `prompt + y_<t + c`, beside c's implicit reward.

    `rollout`: a scored rollout, i.e. a mapping or object with `prompt_ids` and `completion_ids` (or `token_ids`),
    and optionally the run-store columns `implicit_reward`, `student_logprob`, `teacher_logprob`,
    `teacher_topk_ids`, `teacher_topk_logprobs`, `answer` (a run-store row plus `prompt_ids`, see
    `s2dlab.instruments.lens.with_prompt_ids`). `position` t indexes the completion (0 = its first token).

    `candidates`: token ids to branch on; default the student's token y_t followed by the teacher's `top_k` most
    likely tokens at t other than y_t (from `teacher` when given, else the row's `teacher_topk_ids`), so
    `top_k + 1` branches; duplicates are dropped. `teacher_rank` is a branch's 0-based rank in the teacher's
    ranking at t when it is among the `top_k + 1` most likely, else None.
    `grade_fn(completion_text, answer) -> bool` grades `decode(y_<t + c + continuation)`; `answer` defaults to the
    rollout's. A candidate that is the eos token ends the completion: it is graded once (`terminal`, n = 1).
    `include_prefix` adds the prefix itself (`token_id` None): the student samples y_t, giving V(h).
    `temperature` applies to the continuations only (1.0, the default, is the student's own distribution).

    Implicit rewards: with `teacher`, every candidate's `log pT(c) - log pS(c)` at t is computed now (through
    `scoring.token_scores`); without it, the student's token takes the row's stored values and the alternatives
    only their stored teacher log-prob (implicit reward None).

    Returns `{"prompt_id", "sample_idx", "position", "prefix_length", "student_token_id", "n_samples",
    "max_new_tokens", "seed", "branches": [...], "prefix": {...} | None}`; each branch is `{"token_id", "token",
    "is_student_token", "teacher_rank", "implicit_reward", "student_logprob", "teacher_logprob", "terminal", "n",
    "successes", "success_rate", "se", "wilson_low", "wilson_high", "finished_rate", "mean_continuation_tokens"}`.
    Bad input raises InputError; see the module docstring for the bounds.
    """
    prompt_ids, completion_ids = _ids(rollout)
    _check_bounds(position, len(completion_ids), n_samples, max_new_tokens)
    position = int(position)
    if not temperature > 0:
        raise InputError(f"temperature={temperature!r}: need a positive sampling temperature (1.0 samples pS)")
    if not callable(grade_fn):
        raise InputError(f"grade_fn={grade_fn!r} is not callable: pass grade_fn(completion_text, answer) -> bool")
    if answer is None:
        answer = _get(rollout, "answer")
    V = _vocab_size(student, tokenizer)
    eos_id = tokenizer.eos_token_id
    head = completion_ids[:position]
    prefix = prompt_ids + head
    y_t = completion_ids[position]
    ranking = _teacher_ranking(teacher, rollout, prefix, position, top_k, V)
    if candidates is None:  # y_t and the teacher's top_k most likely tokens other than y_t
        candidates = [y_t] + [v for v in ranking if v != y_t][:top_k]
    bad = [c for c in candidates if not _is_index(c) or not 0 <= int(c) < V]
    if bad:
        raise InputError(f"candidate token id {bad[0]!r} is outside the vocabulary of {V} tokens: use ids 0..{V - 1}")
    candidates = list(dict.fromkeys(int(c) for c in candidates))
    if not candidates and not include_prefix:
        raise InputError("candidates=[]: give at least one token id to branch on, or include_prefix=True")
    if len(candidates) > MAX_BRANCH_CANDIDATES:
        raise InputError(f"{len(candidates)} candidates: at most {MAX_BRANCH_CANDIDATES} (MAX_BRANCH_CANDIDATES) "
                         f"branches per call")
    sampled = [c for c in candidates if c != eos_id]
    check_budget(student, (len(sampled) + include_prefix) * n_samples, max_new_tokens, cpu_budget)

    prefixes = [prefix + [c] for c in sampled] + ([prefix] if include_prefix else [])
    conts = _continue(student, tokenizer, prefixes, n_samples, max_new_tokens, seed, temperature) if prefixes else []
    by_token = dict(zip(sampled, conts))

    if teacher is not None:
        lp = _logprobs_at(student, teacher, prefix, candidates, V)
    else:
        lp = {"student_logprob": [None] * len(candidates), "teacher_logprob": [None] * len(candidates),
              "implicit_reward": [None] * len(candidates)}
        topk_ids, topk_lp = _get(rollout, "teacher_topk_ids"), _get(rollout, "teacher_topk_logprobs")
        stored_t = {}
        if topk_ids is not None and topk_lp is not None and len(topk_ids) > position:
            stored_t = {int(v): float(x) for v, x in zip(topk_ids[position], topk_lp[position]) if int(v) >= 0}
        for i, c in enumerate(candidates):
            if c == y_t:
                for name in lp:
                    column = _get(rollout, name)
                    lp[name][i] = float(column[position]) if column is not None and len(column) > position else None
            if lp["teacher_logprob"][i] is None and c in stored_t:
                lp["teacher_logprob"][i] = float(stored_t[c])

    branches = []
    for i, c in enumerate(candidates):
        if c == eos_id:
            stats = _grade_branch(tokenizer, head + [c], [[]], grade_fn, answer, eos_id)
            stats["finished_rate"] = 1.0
        else:
            stats = _grade_branch(tokenizer, head + [c], by_token[c], grade_fn, answer, eos_id)
        branches.append({
            "token_id": c, "token": tokenizer.decode([c]), "is_student_token": c == y_t,
            "teacher_rank": ranking.index(c) if c in ranking else None,
            "implicit_reward": lp["implicit_reward"][i], "student_logprob": lp["student_logprob"][i],
            "teacher_logprob": lp["teacher_logprob"][i], "terminal": c == eos_id, **stats})
    prefix_stats = None
    if include_prefix:
        prefix_stats = {"token_id": None, **_grade_branch(tokenizer, head, conts[-1], grade_fn, answer, eos_id)}
    return {"prompt_id": _get(rollout, "prompt_id"), "sample_idx": _get(rollout, "sample_idx"),
            "position": position, "prefix_length": len(prefix), "student_token_id": y_t, "n_samples": n_samples,
            "max_new_tokens": max_new_tokens, "seed": seed, "branches": branches, "prefix": prefix_stats}


# --------------------------------------------------------------------------------------------------------------
# Across a probe set: does a negative implicit reward predict a drop in success?


def _pick_positions(length: int, k: int, seed: int, key: str) -> list[int]:
    rng = random.Random(f"{seed}:{key}")  # str seeds are hashed deterministically (not with PYTHONHASHSEED)
    return sorted(rng.sample(range(length), min(k, length)))


def _pearson(x: list[float], y: list[float]) -> float | None:
    if len(x) < 2:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sx = math.sqrt(sum((a - mx) ** 2 for a in x))
    sy = math.sqrt(sum((b - my) ** 2 for b in y))
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / (sx * sy) if sx > 0 and sy > 0 else None


def probe_branch_values(student, tokenizer, rollouts: Sequence, grade_fn: Callable[[str, object], bool],
                        positions_per_rollout: int = 4, n_samples: int = 16, max_new_tokens: int = 64,
                        teacher=None, seed: int = 0, temperature: float = 1.0, progress: bool = True,
                        cpu_budget: float = CPU_BUDGET_PARAM_TOKENS) -> dict:
    """The Monte Carlo advantage of the student's own token, `V(h + y_t) - V(h)`, at a seeded sample of positions
    of each rollout, against the implicit reward at t; and how well a negative implicit reward predicts a drop.

    `rollouts` as in `branch_values` (each with `answer`, and `implicit_reward` unless `teacher` is given). Each
    position is one `generate` call of 2 x `n_samples` continuations (prefix + y_t, and the prefix alone).

    Returns `{"positions": [...], "summary": {...}}`. A position: `{"rollout", "prompt_id", "sample_idx",
    "position", "token_id", "token", "implicit_reward", "value_token", "value_prefix", "delta", "delta_se", "n"}`
    (`delta_se` = sqrt of the two binomial variances over n). The summary: `n_positions`, `n_drop` (delta < 0),
    `n_rise` (delta > 0), `n_flat` (delta = 0: both estimates equal, mostly prefixes already always right or
    always wrong); `auroc_drop`: AUROC of -implicit_reward for "delta < 0" over all positions (0.5 = no signal);
    `auroc_drop_vs_rise`: the same over drops and rises only; `pearson_reward_delta`; mean implicit reward of
    drops and of rises; `n_samples`, `max_new_tokens`, `seed`.
    """
    from tqdm.auto import tqdm

    from s2dlab.core.diagnostics import auroc

    jobs = []
    for i, r in enumerate(rollouts):
        _, completion_ids = _ids(r)
        key = f"{_get(r, 'policy', 'student')}/{_get(r, 'prompt_id')}/{_get(r, 'sample_idx')}/{i}"
        jobs += [(i, t) for t in _pick_positions(len(completion_ids), positions_per_rollout, seed, key)]
    check_budget(student, 2 * n_samples, max_new_tokens, cpu_budget)
    out = []
    for j, (i, t) in enumerate(tqdm(jobs, desc="branches", disable=not progress, leave=False)):
        r = rollouts[i]
        _, completion_ids = _ids(r)
        res = branch_values(student, tokenizer, r, t, grade_fn, candidates=[completion_ids[t]], n_samples=n_samples,
                            max_new_tokens=max_new_tokens, teacher=teacher, top_k=0, include_prefix=True,
                            seed=seed * 1_000_003 + j, temperature=temperature, cpu_budget=cpu_budget)
        b, p = res["branches"][0], res["prefix"]
        delta = b["success_rate"] - p["success_rate"]
        se = math.sqrt(b["se"] ** 2 + p["se"] ** 2)
        out.append({"rollout": i, "prompt_id": res["prompt_id"], "sample_idx": res["sample_idx"], "position": t,
                    "token_id": b["token_id"], "token": b["token"], "implicit_reward": b["implicit_reward"],
                    "value_token": b["success_rate"], "value_prefix": p["success_rate"], "delta": delta,
                    "delta_se": se, "n": n_samples})
    scored = [o for o in out if o["implicit_reward"] is not None]
    drops = [o for o in scored if o["delta"] < 0]
    rises = [o for o in scored if o["delta"] > 0]
    moved = drops + rises

    def mean_reward(xs):
        return sum(o["implicit_reward"] for o in xs) / len(xs) if xs else None

    summary = {
        "n_positions": len(out), "n_scored": len(scored), "n_drop": len(drops), "n_rise": len(rises),
        "n_flat": len(scored) - len(moved),
        "auroc_drop": auroc([-o["implicit_reward"] for o in scored], [o["delta"] < 0 for o in scored]),
        "auroc_drop_vs_rise": auroc([-o["implicit_reward"] for o in moved], [o["delta"] < 0 for o in moved]),
        "pearson_reward_delta": _pearson([o["implicit_reward"] for o in scored], [o["delta"] for o in scored]),
        "mean_implicit_reward_drop": mean_reward(drops), "mean_implicit_reward_rise": mean_reward(rises),
        "n_samples": n_samples, "max_new_tokens": max_new_tokens, "seed": seed,
    }
    return {"positions": out, "summary": summary}
