"""How good is each KL estimate that on-policy distillation might train on? Exact values beside estimates, per token.

For a student rollout `y ~ pS(.|x)` and position t, with pS, pT the student's and teacher's full next-token
distributions (docs/DESIGN.md, "Sign conventions"; `implicit_reward = log pT(y_t) - log pS(y_t)`):

Exact (full vocabulary, from `s2dlab.core.scoring.token_scores`, the one definition):
    reverse_kl = KL(pS || pT),   forward_kl = KL(pT || pS)

Single-sample estimators of the reverse KL (J. Schulman, "Approximating KL divergence", 2020), from the sampled
token only, with r = pT(y)/pS(y), so log r = implicit_reward:
    k1 = log pS(y) - log pT(y) = -implicit_reward        unbiased: E_{y~pS}[k1] = KL(pS||pT); can be negative
    k2 = 1/2 (log pS(y) - log pT(y))^2                   biased (low bias when pS ~ pT), always >= 0
    k3 = (r - 1) - log r                                 unbiased (E_{y~pS}[r] = 1), always >= 0
Unbiasedness holds only when y was sampled from the same pS that scores it: pass student samples.

Top-k truncations of the reverse KL over S = the student's k most likely tokens, for k in `TOPK` (1, 8, 64),
with tail masses tail_S = 1 - pS(S), tail_T = 1 - pT(S):
    top{k}_renorm = KL(pS|S || pT|S), both distributions renormalised over S   (k=1 is always 0)
    top{k}_tail   = sum_{v in S} pS(v) log(pS(v)/pT(v)) + tail_S log(tail_S/tail_T)
                    the exact KL of the (k+1)-outcome coarsening (S and one tail bucket): 0 <= top{k}_tail <=
                    reverse_kl, non-decreasing in k, equal to reverse_kl at k = V
    top{k}_raw    = sum_{v in S} pS(v) log(pS(v)/pT(v)), neither renormalised nor with a tail: the truncated sum
                    verl first shipped (verl PR #5041), which can go negative and which a student minimises by
                    moving mass out of S; reported so its failure is visible, not as a recommendation
Every estimate `e` also comes as `e_error = e - reverse_kl`; tail masses as `top{k}_tail_mass_student/_teacher`.

Gradients with respect to the student's logits z (of `logits / temperature`), per position:
    exact (full-vocab reverse KL):     g_exact   = dKL(pS||pT)/dz = pS * (log pS - log pT - KL(pS||pT))
    sampled token (score function):    g_sampled = -A * (onehot(y) - pS),   A = log pT(y) - log pS(y)
g_sampled is the gradient of the loss -A log pS(y) with A held fixed (REINFORCE with the implicit reward as the
advantage); E_{y~pS}[g_sampled] = g_exact. Reported: `grad_cosine` (cos(g_exact, g_sampled); None where either
is zero), `grad_exact_at_token` = g_exact[y], `grad_sampled_at_token` = g_sampled[y] = -A (1 - pS(y)), and both
norms. A positive cosine says this one sample pushes the logits the way the exact gradient does.

Layers, smallest first:
- `token_estimators(student_logits_NV, teacher_logits_NV, token_ids_N)`: the math on aligned rows (logits or
  log-probs), `[N]` float32 tensors out.
- `estimate_sequences(student, teacher, input_ids_BL, completion_mask_BL)`: models in; each body runs once and
  hidden states go through each `lm_head` `chunk_size` positions at a time, like `scoring.score_sequences`, so a
  151,936-token vocabulary never holds `[L, V]` logits (peak ~5 float32 buffers of `chunk_size x V`).
- `estimate_rollouts(student, teacher, tokenizer, rollouts)`: `Rollout`s (or dicts with `prompt_ids` and
  `completion_ids`) in, one plain dict per rollout out (per-token lists, ready for JSON or parquet).
- `summarize_estimators(rows)`: per snapshot, each estimator's bias and spread over every scored token.
- `snapshot_estimators(run, stage, step)`: the same for a run's probe snapshot, re-scored with the saved
  checkpoints that took it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from s2dlab.core.scoring import _eval_mode, _hidden_states_BLH, _project, token_scores

# Truncation sizes of the top-k reverse KL variants.
TOPK = (1, 8, 64)
TOPK_VARIANTS = ("renorm", "tail", "raw")
SAMPLED_ESTIMATORS = ("k1", "k2", "k3")
GRADIENT_FIELDS = ("grad_cosine", "grad_exact_at_token", "grad_sampled_at_token", "grad_exact_norm",
                   "grad_sampled_norm")
# Positions per lm_head projection. 128 x 151,936 float32 logits are 78 MB; ~5 such buffers live at the peak.
DEFAULT_CHUNK_SIZE = 128


def estimator_names(ks: Sequence[int] = TOPK) -> list[str]:
    """Every estimate of the reverse KL that `token_estimators` returns (each also has an `_error` field)."""
    return list(SAMPLED_ESTIMATORS) + [f"top{k}_{v}" for k in ks for v in TOPK_VARIANTS]


def field_names(ks: Sequence[int] = TOPK) -> list[str]:
    """Every per-token field of `token_estimators`, in a stable order."""
    names = ["implicit_reward", "reverse_kl", "forward_kl"]
    for name in estimator_names(ks):
        names += [name, f"{name}_error"]
    for k in ks:
        names += [f"top{k}_tail_mass_student", f"top{k}_tail_mass_teacher"]
    return names + list(GRADIENT_FIELDS)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    from s2dlab.core.errors import InputError

    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise InputError(f"ks={ks}: need one or more positive top-k sizes, e.g. (1, 8, 64)")
    return ks


def _dot_NV(a_NV: torch.Tensor, b_NV: torch.Tensor) -> torch.Tensor:
    """sum_v a[n, v] b[n, v] without a `[N, V]` product buffer."""
    return torch.einsum("nv,nv->n", a_NV, b_NV)


def _lse_cols(x_NK: torch.Tensor) -> torch.Tensor:
    """logsumexp over the last dim; -inf for zero columns (an empty set has no mass)."""
    if x_NK.shape[-1] == 0:
        return torch.full(x_NK.shape[:-1], -math.inf, dtype=x_NK.dtype, device=x_NK.device)
    return torch.logsumexp(x_NK, dim=-1)


@torch.no_grad()
# One function of ~100 lines on purpose: it frees each [N, V] buffer as soon as the next estimator no longer needs
# it (the `del`s), which split into helpers would keep several vocabulary-sized buffers alive at once.
def token_estimators(student_logits_NV: torch.Tensor, teacher_logits_NV: torch.Tensor, token_ids_N: torch.Tensor,
                     ks: Sequence[int] = TOPK, temperature: float = 1.0, vocab_size: int | None = None
                     ) -> dict[str, torch.Tensor]:
    """Every estimator of the module docstring for N aligned positions: row n of each logits tensor predicts
    `token_ids_N[n]`. Logits or log-probs both work (log_softmax of log-probs is the identity).

    Returns `{field: [N] float32 tensor}` for the fields of `field_names(ks)`; `grad_cosine` is NaN where a
    gradient is zero (A = 0, or pS = pT). Heads of different sizes are sliced to the smaller one, and to
    `vocab_size` when given, as `token_scores` does. A k at or above the vocabulary size covers every token
    (tail masses 0, every variant equal to the exact KL). Peak extra memory ~5 float32 `[N, V]` buffers.
    """
    ks = _check_ks(ks)
    if student_logits_NV.dim() != 2 or teacher_logits_NV.dim() != 2 or token_ids_N.dim() != 1:
        raise ValueError(f"expected [N, V] logits and [N] token ids, got {tuple(student_logits_NV.shape)}, "
                         f"{tuple(teacher_logits_NV.shape)}, {tuple(token_ids_N.shape)}")
    V = min(student_logits_NV.shape[-1], teacher_logits_NV.shape[-1])
    if vocab_size is not None:
        if vocab_size > V:
            raise ValueError(f"vocab_size={vocab_size} but the smaller output head has only {V} rows")
        V = vocab_size
    device = student_logits_NV.device
    ids_N = token_ids_N.to(device).long()
    out: dict[str, torch.Tensor] = {}

    # Log-probabilities, float32 (buffers 1, 2).
    s_NV = student_logits_NV[:, :V].to(device)
    t_NV = teacher_logits_NV[:, :V].to(device)
    if temperature != 1.0:
        s_NV, t_NV = s_NV / temperature, t_NV / temperature
    ls_NV = torch.log_softmax(s_NV, dim=-1, dtype=torch.float32)
    lt_NV = torch.log_softmax(t_NV, dim=-1, dtype=torch.float32)
    del s_NV, t_NV

    # Exact KLs and the implicit reward: the one definition in scoring.token_scores (3 more buffers, freed).
    exact = token_scores(ls_NV.unsqueeze(0), lt_NV.unsqueeze(0), ids_N.unsqueeze(0), top_k=1)
    implicit_reward = exact.implicit_reward[0]  # log pT(y) - log pS(y)
    reverse_kl = exact.reverse_kl[0]
    out["implicit_reward"], out["reverse_kl"], out["forward_kl"] = implicit_reward, reverse_kl, exact.forward_kl[0]
    del exact
    exact64 = reverse_kl.double()

    # Sampled-token estimators, in float64 (exp(log r) for k3 overflows float32 at log r ~ 88).
    log_r = implicit_reward.double()  # log r = log pT(y) - log pS(y)
    est = {"k1": -log_r, "k2": 0.5 * log_r.square(), "k3": torch.expm1(log_r) - log_r}

    # Top-k over the student's most likely tokens (sorted, most likely first) and the teacher's log-probs there.
    K = min(max(ks), V)
    s_top_NK, top_ids_NK = ls_NV.topk(K, dim=-1)
    t_top_NK = lt_NV.gather(-1, top_ids_NK)

    # Gradients w.r.t. the student's logits. g_exact = pS * (d - KL), d = log pS - log pT (buffers reused:
    # pS, then d in place over log pS, then g_exact in place over d).
    ps_y = ls_NV.gather(-1, ids_N.unsqueeze(-1)).squeeze(-1).double().exp()  # pS(y)
    p_NV = ls_NV.exp()
    g_NV = ls_NV.sub_(lt_NV)
    g_NV.sub_(reverse_kl.unsqueeze(-1)).mul_(p_NV)  # g_exact
    g_y = g_NV.gather(-1, ids_N.unsqueeze(-1)).squeeze(-1).double()  # g_exact[y]
    g_dot_p = _dot_NV(g_NV, p_NV).double()  # <g_exact, pS>
    g_norm = torch.linalg.vector_norm(g_NV, dim=-1).double()
    p_sq = _dot_NV(p_NV, p_NV).double()  # sum_v pS(v)^2
    del g_NV, ls_NV
    A = log_r  # the advantage of the sampled-token loss: the implicit reward
    # g_sampled = -A (e_y - pS): its y component, norm, and inner product with g_exact
    s_y = -A * (1 - ps_y)
    s_norm = A.abs() * (1 - 2 * ps_y + p_sq).clamp_min(0).sqrt()
    dot = -A * (g_y - g_dot_p)
    denom = g_norm * s_norm
    cosine = torch.where(denom > 0, dot / denom.clamp_min(1e-300), torch.full_like(dot, math.nan))
    out["grad_cosine"] = cosine.clamp(-1, 1).float()
    out["grad_exact_at_token"] = g_y.float()
    out["grad_sampled_at_token"] = s_y.float()
    out["grad_exact_norm"] = g_norm.float()
    out["grad_sampled_norm"] = s_norm.float()

    # Mass outside the top-K_max: the probabilities with the top entries zeroed, summed (not 1 - sum(top-k),
    # which loses a tail of 1e-9 to float32 rounding); pS's buffer is reused for pT.
    rest_s64 = p_NV.scatter_(-1, top_ids_NK, 0.0).sum(-1, dtype=torch.float64).log()
    torch.exp(lt_NV, out=p_NV)
    rest_t64 = p_NV.scatter_(-1, top_ids_NK, 0.0).sum(-1, dtype=torch.float64).log()
    del p_NV, lt_NV, top_ids_NK
    s_top64, t_top64 = s_top_NK.double(), t_top_NK.double()
    for k in ks:
        kk = min(k, K)
        hs, ht = s_top64[:, :kk], t_top64[:, :kk]
        raw = (hs.exp() * (hs - ht)).sum(-1)
        # renormalised over S: log pS|S = log pS - log pS(S), likewise for pT
        ns, nt = hs - _lse_cols(hs).unsqueeze(-1), ht - _lse_cols(ht).unsqueeze(-1)
        renorm = (ns.exp() * (ns - nt)).sum(-1)
        # tail log-masses: outside the top-K_max, plus the ranks between k and K_max
        log_tail_s = torch.logaddexp(rest_s64, _lse_cols(s_top64[:, kk:]))
        log_tail_t = torch.logaddexp(rest_t64, _lse_cols(t_top64[:, kk:]))
        tail_s, tail_t = log_tail_s.exp(), log_tail_t.exp()
        # 0 log(0/x) = 0; tail_S > 0 with tail_T = 0 is an infinite KL, as it should be
        tail_term = torch.where(tail_s > 0, tail_s * (log_tail_s - log_tail_t), torch.zeros_like(tail_s))
        est[f"top{k}_renorm"] = renorm
        est[f"top{k}_tail"] = raw + tail_term
        est[f"top{k}_raw"] = raw
        out[f"top{k}_tail_mass_student"] = tail_s.float()
        out[f"top{k}_tail_mass_teacher"] = tail_t.float()
    for name, value in est.items():
        out[name] = value.float()
        out[f"{name}_error"] = (value - exact64).float()
    return {name: out[name] for name in field_names(ks)}


# --------------------------------------------------------------------------------------------------------------
# Models in, estimates out, a chunk of positions at a time


@torch.no_grad()
def estimate_sequences(student, teacher, input_ids_BL: torch.Tensor, completion_mask_BL: torch.Tensor,
                       attention_mask_BL: torch.Tensor | None = None, ks: Sequence[int] = TOPK,
                       chunk_size: int = DEFAULT_CHUNK_SIZE, temperature: float = 1.0,
                       vocab_size: int | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """`token_estimators` for the completion tokens of a batch, `chunk_size` positions of logits at a time.

    Alignment as `scoring.score_sequences`: `[B, L-1]` results where column j scores token `input_ids_BL[:, j+1]`.
    Returns `(fields, mask_BT)`: each field is `[B, L-1]` float32, 0 where `mask_BT` is False. Runs on the
    student's device; models are put in eval mode while scoring and restored afterwards.
    """
    ks = _check_ks(ks)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if attention_mask_BL is None:
        attention_mask_BL = torch.ones_like(input_ids_BL)
    with _eval_mode(student, teacher):
        B, L = input_ids_BL.shape
        h_s_BLH = _hidden_states_BLH(student, input_ids_BL, attention_mask_BL)
        h_t_BLH = _hidden_states_BLH(teacher, input_ids_BL, attention_mask_BL)
        device = student.get_output_embeddings().weight.device
        mask_BT = (completion_mask_BL[:, 1:].bool() & attention_mask_BL[:, 1:].bool()).to(device)
        h_s_NH = h_s_BLH[:, :-1][mask_BT.to(h_s_BLH.device)]
        h_t_NH = h_t_BLH[:, :-1][mask_BT.to(h_t_BLH.device)]
        ids_N = input_ids_BL[:, 1:].to(device)[mask_BT]
        del h_s_BLH, h_t_BLH
        names = field_names(ks)
        parts: dict[str, list[torch.Tensor]] = {name: [] for name in names}
        for start in range(0, ids_N.shape[0], chunk_size):
            stop = min(start + chunk_size, ids_N.shape[0])
            s_CV = _project(student, h_s_NH[start:stop])
            t_CV = _project(teacher, h_t_NH[start:stop]).to(device)
            chunk = token_estimators(s_CV, t_CV, ids_N[start:stop], ks=ks, temperature=temperature,
                                     vocab_size=vocab_size)
            del s_CV, t_CV
            for name in names:
                parts[name].append(chunk[name])
        fields = {}
        for name in names:
            full_BT = torch.zeros(B, L - 1, dtype=torch.float32, device=device)
            if ids_N.shape[0]:
                full_BT[mask_BT] = torch.cat(parts[name])
            fields[name] = full_BT
    return fields, mask_BT


def _get(r, *names):
    for name in names:
        value = r.get(name) if isinstance(r, dict) else getattr(r, name, None)
        if value is not None:
            return value
    return None


def _nan_to_none(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]


def estimate_rollouts(student, teacher, tokenizer, rollouts: Sequence, ks: Sequence[int] = TOPK,
                      batch_size: int = 16, chunk_size: int = DEFAULT_CHUNK_SIZE, temperature: float = 1.0,
                      progress: bool = False) -> list[dict]:
    """One plain dict per rollout, in input order: `policy`, `prompt_id`, `sample_idx`, `length`, `token_ids` and a
    list of `length` floats per field of `field_names(ks)` (`grad_cosine` entries are None where undefined).

    `rollouts`: `generation.Rollout`s or dicts with `prompt_ids` and `completion_ids` (or `token_ids`). Batched by
    length, left padded, scored over `len(tokenizer)` tokens as `scoring.score_rollouts` does.
    """
    from tqdm.auto import tqdm

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    seqs = []
    for r in rollouts:
        prompt_ids = list(_get(r, "prompt_ids") or [])
        completion_ids = [int(t) for t in (_get(r, "completion_ids", "token_ids") or [])]
        if not prompt_ids:
            raise ValueError(f"rollout {_get(r, 'prompt_id')}/{_get(r, 'sample_idx')} has no prompt tokens: nothing "
                             f"predicts its first completion token")
        seqs.append((prompt_ids, completion_ids))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]) + len(seqs[i][1]))
    per: dict[int, dict[str, list]] = {}
    names = field_names(_check_ks(ks))
    for start in tqdm(range(0, len(order), batch_size), desc="estimators", disable=not progress, leave=False):
        idx = order[start:start + batch_size]
        L = max(len(seqs[i][0]) + len(seqs[i][1]) for i in idx)
        input_ids_BL = torch.full((len(idx), L), pad_id, dtype=torch.long)
        attention_mask_BL = torch.zeros(len(idx), L, dtype=torch.long)
        completion_mask_BL = torch.zeros(len(idx), L, dtype=torch.long)
        for b, i in enumerate(idx):  # left padding: every completion ends at column L-1
            p, c = seqs[i]
            input_ids_BL[b, L - len(p) - len(c):] = torch.tensor(p + c, dtype=torch.long)
            attention_mask_BL[b, L - len(p) - len(c):] = 1
            if c:
                completion_mask_BL[b, L - len(c):] = 1
        fields, _ = estimate_sequences(student, teacher, input_ids_BL, completion_mask_BL, attention_mask_BL, ks=ks,
                                       chunk_size=chunk_size, temperature=temperature, vocab_size=len(tokenizer))
        for b, i in enumerate(idx):
            C = len(seqs[i][1])
            cols = slice(L - 1 - C, L - 1)
            per[i] = {name: _nan_to_none(fields[name][b, cols].cpu().tolist()) for name in names}
    rows = []
    for i, r in enumerate(rollouts):
        rows.append({"policy": _get(r, "policy") or "student", "prompt_id": _get(r, "prompt_id"),
                     "sample_idx": int(_get(r, "sample_idx") or 0), "length": len(seqs[i][1]),
                     "token_ids": seqs[i][1], **per[i]})
    return rows


# --------------------------------------------------------------------------------------------------------------
# Per snapshot: bias and spread over every scored token


def _flat(rows: Iterable[dict], name: str) -> list[float]:
    out = []
    for r in rows:
        out.extend(float(v) for v in (r.get(name) or []) if v is not None)
    return out


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _sd(xs: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def summarize_estimators(rows: Iterable[dict], policy: str | None = "student", ks: Sequence[int] = TOPK) -> dict:
    """Bias and spread of every estimator over all scored tokens of `rows` (from `estimate_rollouts`).

    Only rows sampled by `policy` count (None: all); the unbiasedness of k1 and k3 needs student samples. Per
    estimator: `n` tokens, `mean_exact` (mean reverse KL), `mean_estimate`, `bias` = mean(e - exact),
    `sd` = sample sd of (e - exact), `se_bias` = sd / sqrt(n), `rmse`, `relative_bias` = bias / mean_exact and
    `relative_rmse` = rmse / mean_exact (None when mean_exact is 0), `frac_negative` (share of tokens with e < 0,
    impossible for a KL). `tail_mass`: mean student and teacher tail mass per k. `gradient`: mean and median
    cosine, share of tokens with a positive cosine (of those where it is defined), share where the two gradients'
    components on the sampled token have the same sign. Plain floats (None where undefined), JSON-ready.
    """
    rows = [r for r in rows if policy is None or (r.get("policy") or "student") == policy]
    exact = _flat(rows, "reverse_kl")
    mean_exact = _mean(exact)
    out: dict = {"n_rollouts": len(rows), "n_tokens": len(exact), "policy": policy, "mean_reverse_kl": mean_exact,
                 "mean_forward_kl": _mean(_flat(rows, "forward_kl")), "estimators": {}, "tail_mass": {}}
    for name in estimator_names(ks):
        e = _flat(rows, name)
        err = _flat(rows, f"{name}_error")
        bias, sd = _mean(err), _sd(err)
        rmse = math.sqrt(sum(x * x for x in err) / len(err)) if err else None
        rel = mean_exact not in (None, 0.0)
        out["estimators"][name] = {
            "n": len(err), "mean_exact": mean_exact, "mean_estimate": _finite(_mean(e)), "bias": _finite(bias),
            "sd": _finite(sd), "se_bias": _finite(sd / math.sqrt(len(err))) if sd is not None else None,
            "rmse": _finite(rmse), "relative_bias": _finite(bias / mean_exact) if rel and bias is not None else None,
            "relative_rmse": _finite(rmse / mean_exact) if rel and rmse is not None else None,
            "frac_negative": (sum(x < 0 for x in e) / len(e)) if e else None,
        }
    for k in ks:
        out["tail_mass"][f"top{k}"] = {"student": _mean(_flat(rows, f"top{k}_tail_mass_student")),
                                       "teacher": _mean(_flat(rows, f"top{k}_tail_mass_teacher"))}
    cos = sorted(_flat(rows, "grad_cosine"))
    gy, sy = _flat(rows, "grad_exact_at_token"), _flat(rows, "grad_sampled_at_token")
    same = [a * b > 0 for a, b in zip(gy, sy) if a != 0 and b != 0]
    out["gradient"] = {
        "n_defined": len(cos), "mean_cosine": _mean(cos),
        "median_cosine": (cos[len(cos) // 2] if len(cos) % 2 else (cos[len(cos) // 2 - 1] + cos[len(cos) // 2]) / 2)
        if cos else None,
        "frac_positive_cosine": (sum(c > 0 for c in cos) / len(cos)) if cos else None,
        "frac_same_sign_at_token": (sum(same) / len(same)) if same else None,
    }
    return out


# --------------------------------------------------------------------------------------------------------------
# A run's probe snapshot


def snapshot_estimators(run, stage: str, step: int | None = None, ks: Sequence[int] = TOPK, device: str | None = None,
                        dtype: str = "auto", batch_size: int = 16, chunk_size: int = DEFAULT_CHUNK_SIZE,
                        with_rows: bool = False, progress: bool = False) -> dict:
    """`summarize_estimators` for the student rollouts of one probe snapshot (`step=None`: the latest), re-scored
    with the saved checkpoints that took it (`s2dlab.instruments.lens.snapshot_pair`).

    Returns `{"stage", "step", "teacher", "student" (stage names), "models_match_snapshot", "summary", "rows"
    (only with `with_rows`)}`. `models_match_snapshot` is False for a step in the middle of a stage, whose
    student (or teacher) was never saved: the stage's final model stands in, so the student did not sample these
    rollouts and k1 / k3 are then no longer unbiased for its reverse KL. MissingError when the stage has no
    snapshot or the models are not saved.
    """
    from s2dlab.core.errors import MissingError
    from s2dlab.core.models import load_model
    from s2dlab.instruments.lens import (
        _as_run,
        load_tokenizer_for,
        prompt_settings,
        snapshot_pair,
        to_rollouts,
        with_prompt_ids,
    )

    run = _as_run(run)
    if step is None:
        steps = run.rollout_steps(stage)
        if not steps:
            raise MissingError(f"{run.stage_dir(stage)}: no rollout snapshot in stage {stage!r}")
        step = steps[-1]
    snapshot = run.rollouts(stage, step)
    teacher_stage, student_stage, exact = snapshot_pair(run, stage, step)
    tokenizer = load_tokenizer_for(run)
    rows = with_prompt_ids(snapshot, tokenizer, *prompt_settings(run))
    rows = [r for r in rows if (r.get("policy") or "student") == "student"]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def model_of(s):
        source = run.stage(s).model
        if not source:
            raise MissingError(f"{run.model_dir(s)}: stage {s!r} saved no model, so snapshot {stage}/{step} "
                               f"cannot be re-scored")
        return load_model(source, dtype=dtype, device=device).eval()

    student, teacher = model_of(student_stage), model_of(teacher_stage)
    est = estimate_rollouts(student, teacher, tokenizer, to_rollouts(rows), ks=ks, batch_size=batch_size,
                            chunk_size=chunk_size, progress=progress)
    out = {"stage": stage, "step": int(step), "teacher": teacher_stage, "student": student_stage,
           "models_match_snapshot": bool(exact), "summary": summarize_estimators(est, ks=ks)}
    if with_rows:
        out["rows"] = est
    return out
