"""The conditions of the sparse-to-dense principle and the intervals every comparison is read with: pure functions
of scored rollout rows (`scoring.score_rollouts`) and per-problem eval counts (`evaluate`). `s2dlab.workflow.summary` calls
them once per run; every reader (CLI, dashboard, notebooks) renders what it wrote.

- **C1**, the teacher is reward-shaped. The paper never measures it; we do, on one fixed set of base-student
  rollouts scored by each teacher: the AUROC with which the summed implicit reward `sum_t log pT(y_t) - log pS(y_t)`
  ranks correct rollouts above incorrect ones, as the *difference* RL teacher minus raw teacher with a bootstrap
  interval over problems (`auroc_difference`), and the mean implicit reward at the first wrong character of wrong
  rollouts against the rest of their tokens (`first_error_reward`). The summed reward is confounded with length
  (each token's expectation is minus a KL, so longer rollouts score lower): `length_auroc` is the control.
- **C2**, the teacher is close: per-token reverse KL(pS || pT) on the student's own rollouts before and after the
  warmup, with bootstrap intervals over rollouts (`mean_reverse_kl`, `kl_change`).
- **Accuracy** of an arm: mean avg@k with a 95% interval that adds the standard error over problems and the spread
  over seeds (`accuracy_interval`); two arms are compared per problem and per seed (`paired_difference`).

Verdicts compare two measured values and say "within noise" when the interval of their difference holds 0; no
verdict rests on a fixed threshold on one side alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

# C2 in `s2dlab check`: a pair whose whole interval of mean per-token reverse KL (nats) lies above this is far apart
# (the tiny base pair measures about 0.3 before the warmup), one whose whole interval lies at or below it is close.
C2_MAX_MEAN_REVERSE_KL = 0.3


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _records(rows, policy: str | None = None) -> list[dict]:
    """Rows as a list of dicts, optionally only those sampled by `policy` ("student" / "teacher")."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame, without importing pandas here
        rows = rows.to_dict("records")
    rows = list(rows)
    if policy is not None:
        rows = [r for r in rows if r.get("policy", "student") == policy]
    return rows


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _sum_implicit_reward(row: dict) -> float:
    value = row.get("sum_implicit_reward")
    if _missing(value):
        value = float(np.sum(np.asarray(row["implicit_reward"], dtype=np.float64)))
    return float(value)


# ---------------------------------------------------------------------------------------------------------------
# C1


def auroc(scores: Iterable[float], labels: Iterable) -> float | None:
    """Probability that a random positive scores above a random negative (ties count one half).

    Rank based (Mann-Whitney U with average ranks for ties). Pairs with a missing score or label are dropped;
    None when only one class is left.
    """
    pairs = [(float(s), bool(y)) for s, y in zip(scores, labels) if not _missing(s) and not _missing(y)]
    s = np.array([p[0] for p in pairs], dtype=np.float64)
    y = np.array([p[1] for p in pairs], dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average rank (1-based) over each run of equal scores
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def c1_separation(rows, policy: str | None = None) -> dict:
    """How well the summed implicit reward separates correct from incorrect rollouts (ungraded rows skipped).

    Pass the teacher-scored student rollouts (or `policy="student"` to pick them from mixed rows).
    """
    rows = [r for r in _records(rows, policy) if not _missing(r.get("correct"))]
    scores = [_sum_implicit_reward(r) for r in rows]
    labels = [bool(r["correct"]) for r in rows]
    good = [s for s, y in zip(scores, labels) if y]
    bad = [s for s, y in zip(scores, labels) if not y]
    return {
        "auroc": auroc(scores, labels),
        "n_correct": len(good),
        "n_incorrect": len(bad),
        "mean_sum_reward_correct": float(np.mean(good)) if good else None,
        "mean_sum_reward_incorrect": float(np.mean(bad)) if bad else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# Intervals

Z95 = 1.959963984540054  # two-sided 95% normal quantile
# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom (a table: scipy is not a dependency).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """Two-sided 95% Student-t quantile for `df` >= 1 degrees of freedom (the normal 1.96 beyond 30)."""
    if df < 1:
        raise ValueError(f"df={df}: need at least one degree of freedom")
    return _T975[df - 1] if df <= len(_T975) else Z95


def _common_matrix(per_seed: Sequence[dict]) -> tuple[np.ndarray, list[str]]:
    """`[S, P]` array of per-problem scores over the problems every seed has, and those problem ids."""
    ids = sorted(set.intersection(*(set(d) for d in per_seed))) if per_seed else []
    return np.array([[float(d[i]) for i in ids] for d in per_seed], dtype=np.float64).reshape(len(per_seed), len(ids)), ids


def accuracy_interval(per_seed: Sequence[dict]) -> dict:
    """Mean accuracy with a 95% interval from per-problem scores (fractions in [0, 1]) of one or more seeds.

    `per_seed[s][problem_id]` is seed s's score on a problem (avg@k: correct samples / k). With P problems common
    to all S seeds: the mean is over seeds and problems; `se_problems` is the standard error of the mean over
    problems (of the seed-averaged scores: every seed is evaluated on the same problems, so this is the eval set's
    own sampling noise); `se_seeds` the standard error over seeds of the per-seed means (training noise). The 95%
    half-width adds the two in quadrature, the seed term with a Student-t quantile on S-1 degrees of freedom:
    `sqrt((1.96 se_problems)^2 + (t_{S-1} se_seeds)^2)`. An accuracy cannot leave [0, 1], so the interval is cut
    there (a few problems near 0% or 100% would otherwise print a bound like -3.2%).
    """
    out = _mean_interval(per_seed)
    if out["mean"] is not None:
        out["ci"] = [max(0.0, out["ci"][0]), min(1.0, out["ci"][1])]
    return out


def _mean_interval(per_seed: Sequence[dict]) -> dict:
    """`accuracy_interval` without the cut to [0, 1]: per-problem values of any sign (the paired differences)."""
    m, ids = _common_matrix(per_seed)
    S, P = m.shape
    if P == 0:
        return {"mean": None, "ci": [None, None], "n_problems": 0, "n_seeds": S}
    per_problem = m.mean(axis=0)
    per_seed_means = m.mean(axis=1)
    se_p = float(per_problem.std(ddof=1) / math.sqrt(P)) if P > 1 else 0.0
    se_s = float(per_seed_means.std(ddof=1) / math.sqrt(S)) if S > 1 else 0.0
    half = math.sqrt((Z95 * se_p) ** 2 + ((t975(S - 1) * se_s) if S > 1 else 0.0) ** 2)
    mean = float(per_problem.mean())
    return {"mean": mean, "ci": [mean - half, mean + half], "se_problems": se_p, "se_seeds": se_s,
            "sd_seeds": float(per_seed_means.std(ddof=1)) if S > 1 else 0.0,
            "per_seed": [float(x) for x in per_seed_means], "n_problems": P, "n_seeds": S}


def paired_difference(a_per_seed: Sequence[dict], b_per_seed: Sequence[dict]) -> dict:
    """A minus B, paired by seed and problem (both arms evaluated on the same problems in every seed), with the
    interval of `accuracy_interval` applied to the per-problem differences (not cut: a difference lies in
    [-1, 1]), and a verdict: "higher" when the whole interval is above 0, "lower" when below, "within noise" when
    it holds 0."""
    if len(a_per_seed) != len(b_per_seed):
        raise ValueError(f"{len(a_per_seed)} seeds against {len(b_per_seed)}: pair the same seeds")
    diffs = []
    for a, b in zip(a_per_seed, b_per_seed):
        common = set(a) & set(b)
        diffs.append({i: float(a[i]) - float(b[i]) for i in common})
    out = _mean_interval(diffs)
    lo, hi = out["ci"]
    out["verdict"] = None if lo is None else "higher" if lo > 0 else "lower" if hi < 0 else "within noise"
    return out


def bootstrap_ci(values: np.ndarray, stat, groups: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0
                 ) -> list[float]:
    """Percentile 95% interval of `stat(indices)` over bootstrap resamples of `groups` (clusters: all items of a
    resampled group come along) or of single items. `stat` takes an index array into `values`' first axis."""
    rng = np.random.default_rng(seed)
    n = len(values)
    if groups is None:
        groups = np.arange(n)
    _, inv = np.unique(groups, return_inverse=True)
    order = np.argsort(inv, kind="stable")  # items grouped together, group by group
    sizes = np.bincount(inv)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    stats = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(sizes), len(sizes))
        lens = sizes[pick]
        # the items of every picked group, vectorised: each group's run of positions in `order`
        offsets = np.repeat(starts[pick] - (np.cumsum(lens) - lens), lens)
        idx = order[offsets + np.arange(lens.sum())]
        v = stat(idx)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            stats.append(v)
    if not stats:
        return [None, None]
    return [float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))]


def _auroc_arrays(s: np.ndarray, y: np.ndarray) -> float | None:
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average ranks of ties: the start and end of each run of equal values
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2 + 1
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------------------------
# C1 on fixed rollouts


def auroc_difference(scores_a: Sequence[float], scores_b: Sequence[float], labels: Sequence, groups: Sequence,
                     n_boot: int = 1000, seed: int = 0) -> dict:
    """AUROC of `scores_a` minus AUROC of `scores_b` on the same items (two teachers scoring the same rollouts), with
    a paired bootstrap over `groups` (problems: the rollouts of one problem are resampled together)."""
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    y, g = np.asarray(labels, bool), np.asarray(groups)
    diff = lambda idx: (lambda x, z: None if x is None or z is None else x - z)(  # noqa: E731
        _auroc_arrays(a[idx], y[idx]), _auroc_arrays(b[idx], y[idx]))
    auc_a, auc_b = _auroc_arrays(a, y), _auroc_arrays(b, y)
    point = None if auc_a is None or auc_b is None else auc_a - auc_b
    ci = bootstrap_ci(a, diff, g, n_boot, seed) if point is not None else [None, None]
    verdict = None if ci[0] is None else "higher" if ci[0] > 0 else "lower" if ci[1] < 0 else "within noise"
    return {"a": auc_a, "b": auc_b, "difference": point, "ci": ci, "verdict": verdict}


def auroc_with_ci(scores: Sequence[float], labels: Sequence, groups: Sequence, n_boot: int = 1000, seed: int = 0
                  ) -> dict:
    s, y, g = np.asarray(scores, float), np.asarray(labels, bool), np.asarray(groups)
    value = _auroc_arrays(s, y)
    ci = bootstrap_ci(s, lambda idx: _auroc_arrays(s[idx], y[idx]), g, n_boot, seed) if value is not None \
        else [None, None]
    return {"auroc": value, "ci": ci, "n_correct": int(y.sum()), "n_incorrect": int((~y).sum())}


def token_index_of_char(tokens: Sequence[str], char_index: int) -> int | None:
    """The index of the token holding character `char_index` of the concatenated token texts (None past the end)."""
    pos = 0
    for k, t in enumerate(tokens):
        pos += len(t)
        if char_index < pos:
            return k
    return None


def first_error_reward(rows: Sequence[dict], first_error_char: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean implicit reward at the first wrong token of wrong rollouts against the mean over their other tokens.

    `first_error_char[(prompt_id, sample_idx)]` is the character offset of the first wrong character in the
    completion (`tasks.arithmetic.first_divergence`); the token holding it is found from the row's `tokens`.
    Intervals: bootstrap over rollouts.
    """
    at, rest = [], []
    for r in rows:
        key = (r["prompt_id"], int(r["sample_idx"]))
        if r.get("correct") or key not in first_error_char or first_error_char[key] is None:
            continue
        k = token_index_of_char(list(r["tokens"]), first_error_char[key])
        reward = np.asarray(r["implicit_reward"], float)
        if k is None or k >= len(reward):
            continue
        at.append(reward[k])
        rest.append(np.delete(reward, k))
    if not at:
        return {"at_error": None, "elsewhere": None, "n_rollouts": 0}
    at_arr = np.asarray(at)
    rest_means = np.array([x.mean() if len(x) else np.nan for x in rest])
    rest_all = np.concatenate(rest) if rest else np.zeros(0)
    return {"at_error": float(at_arr.mean()),
            "at_error_ci": bootstrap_ci(at_arr, lambda idx: float(at_arr[idx].mean()), None, n_boot, seed),
            "elsewhere": float(rest_all.mean()) if len(rest_all) else None,
            "elsewhere_ci": bootstrap_ci(rest_means, lambda idx: float(np.nanmean(rest_means[idx])), None, n_boot,
                                         seed),
            "n_rollouts": len(at)}


def length_auroc(rows: Sequence[dict]) -> float | None:
    """The AUROC of minus the length alone: how much of a summed-reward AUROC length could explain."""
    rows = [r for r in rows if not _missing(r.get("correct"))]
    return _auroc_arrays(-np.array([len(r["implicit_reward"]) for r in rows], float),
                         np.array([bool(r["correct"]) for r in rows]))


# ---------------------------------------------------------------------------------------------------------------
# C2 with intervals


def mean_reverse_kl(rows: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """Token-weighted mean per-token reverse KL(pS || pT) over the rows' tokens, bootstrap interval over rollouts."""
    sums = np.array([float(np.sum(r["reverse_kl"])) for r in rows])
    lens = np.array([len(r["reverse_kl"]) for r in rows], float)
    if lens.sum() == 0:
        return {"mean": None, "ci": [None, None], "n_tokens": 0, "n_rollouts": len(rows)}
    ratio = lambda idx: float(sums[idx].sum() / max(lens[idx].sum(), 1.0))  # noqa: E731
    return {"mean": float(sums.sum() / lens.sum()), "ci": bootstrap_ci(sums, ratio, None, n_boot, seed),
            "n_tokens": int(lens.sum()), "n_rollouts": len(rows)}


def kl_change(before: Sequence[dict], after: Sequence[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """After minus before of `mean_reverse_kl` on two independent sets of rollouts, with a bootstrap interval that
    resamples both, and a verdict ("lower" = the student moved closer)."""
    sb = np.array([float(np.sum(r["reverse_kl"])) for r in before]); lb = np.array([len(r["reverse_kl"]) for r in before], float)
    sa = np.array([float(np.sum(r["reverse_kl"])) for r in after]); la = np.array([len(r["reverse_kl"]) for r in after], float)
    if lb.sum() == 0 or la.sum() == 0:
        return {"difference": None, "ci": [None, None], "verdict": None}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        i, j = rng.integers(0, len(sb), len(sb)), rng.integers(0, len(sa), len(sa))
        diffs.append(sa[j].sum() / max(la[j].sum(), 1) - sb[i].sum() / max(lb[i].sum(), 1))
    point = float(sa.sum() / la.sum() - sb.sum() / lb.sum())
    ci = [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
    verdict = "higher" if ci[0] > 0 else "lower" if ci[1] < 0 else "within noise"
    return {"difference": point, "ci": ci, "verdict": verdict}


# ---------------------------------------------------------------------------------------------------------------
# Where the signal sits: a split that means something

CONFIDENT_PROB = 0.9  # the student is confident at a token when its top choice has at least this probability


def signal_quadrants(rows, policy: str | None = "student") -> dict:
    """Tokens split by two questions with a plain meaning, and where the |implicit reward| mass sits:

    - is the student confident?  its most likely next token has probability >= `CONFIDENT_PROB` (0.9);
    - does the teacher agree?    the teacher's most likely next token is the student's most likely one.

    "Confident and disagreeing" tokens are where the student would go wrong with conviction: the corrective
    signal. Per quadrant: tokens, share of tokens, share of the total |implicit reward|, mean implicit reward.
    """
    rows = _records(rows, policy)
    conf, agree, reward = [], [], []
    for r in rows:
        s_ids, t_ids = r["student_topk_ids"], r["teacher_topk_ids"]
        s_lp = r["student_topk_logprobs"]
        for k in range(len(r["implicit_reward"])):
            conf.append(math.exp(float(s_lp[k][0])) >= CONFIDENT_PROB)
            agree.append(int(s_ids[k][0]) == int(t_ids[k][0]))
            reward.append(float(r["implicit_reward"][k]))
    conf_a, agree_a, rew = np.array(conf, bool), np.array(agree, bool), np.array(reward, float)
    total = float(np.abs(rew).sum())
    out = {}
    for name, m in (("confident_agree", conf_a & agree_a), ("confident_disagree", conf_a & ~agree_a),
                    ("uncertain_agree", ~conf_a & agree_a), ("uncertain_disagree", ~conf_a & ~agree_a)):
        k = int(m.sum())
        out[name] = {"n_tokens": k, "token_share": k / len(rew) if len(rew) else None,
                     "abs_reward_share": float(np.abs(rew[m]).sum()) / total if total > 0 else None,
                     "mean_implicit_reward": float(rew[m].mean()) if k else None}
    return {"confident_prob": CONFIDENT_PROB, "n_tokens": int(len(rew)), "quadrants": out}


def probe_metrics(rows: list[dict]) -> dict:
    """The `probe/*` numbers of one scored snapshot (student rows: policy="student"; teacher rows beside them).

    Token-weighted means over the student's tokens (`probe/mean_reverse_kl` is `diagnostics.mean_reverse_kl`'s
    mean), accuracies over graded rollouts only, and `probe/auroc`, the separation of correct from wrong student
    rollouts by their summed implicit reward (`diagnostics.c1_separation`), when both kinds are present. The
    workflow's probes (`s2dlab.workflow.stages.lifecycle.Probe`), `DenseRewardCallback` and `s2dlab check` all log these, so
    the dashboard draws them alike.
    """
    srows = [r for r in rows if r.get("policy", "student") == "student"]
    trows = [r for r in rows if r.get("policy") == "teacher"]
    ntok = sum(r["length"] for r in srows)
    out = {"probe/rollouts": len(srows), "probe/mean_length": ntok / len(srows) if srows else None}
    if ntok:
        out["probe/mean_reverse_kl"] = mean_reverse_kl(srows, n_boot=0)["mean"]
        out["probe/mean_forward_kl"] = sum(sum(r["forward_kl"]) for r in srows) / ntok
        out["probe/mean_implicit_reward"] = sum(sum(r["implicit_reward"]) for r in srows) / ntok
    graded = [r for r in srows if r.get("correct") is not None]
    if graded:
        out["probe/accuracy"] = sum(bool(r["correct"]) for r in graded) / len(graded)
        auroc = c1_separation(graded).get("auroc")
        if auroc is not None:
            out["probe/auroc"] = auroc
    tgraded = [r for r in trows if r.get("correct") is not None]
    if tgraded:
        out["probe/teacher_accuracy"] = sum(bool(r["correct"]) for r in tgraded) / len(tgraded)
    return out
