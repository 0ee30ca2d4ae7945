"""The two conditions of the sparse-to-dense principle, measured on scored rollout rows (`scoring.score_rollouts`).

- C1, the teacher is reward-shaped: after sparse-reward RL, the teacher's dense signal on a student rollout, summed
  over its tokens (`sum_implicit_reward = sum_t log pT(y_t) - log pS(y_t)`), ranks correct rollouts above
  incorrect ones. Measured as an AUROC (`c1_separation`).
- C2, the student is close to the teacher: the student samples inside the teacher's support, so per-token reverse
  KL(pS || pT) on the student's own rollouts is small (`c2_closeness`).

`token_quadrants` splits tokens by student entropy x teacher-student divergence (per-token reverse KL) and says
where the implicit-reward mass sits; recent work finds the low-entropy, high-divergence tokens (the student is
confident and the teacher disagrees) carry most of the corrective signal.

Everything here is a pure function of rows: a list of dicts or a pandas DataFrame read back from the run store.
`verdict_c1` / `verdict_c2` turn the figures into one sentence each, with the thresholds below.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

# C1: summed implicit reward separates correct from incorrect student rollouts at least this well.
C1_MIN_AUROC = 0.65
# C1: stage 1 counts as having improved the teacher when accuracy rises by at least this much (fraction).
C1_MIN_ACCURACY_GAIN = 0.05
# C2: the student is inside the teacher's support when the mean per-token reverse KL (nats) is at most this.
C2_MAX_MEAN_REVERSE_KL = 0.3
# Reverse-KL histogram edges (nats); the last bin is stretched to hold every larger value.
C2_HISTOGRAM_EDGES = (0.0, 0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

QUADRANTS = ("low_entropy_low_divergence", "low_entropy_high_divergence", "high_entropy_low_divergence",
             "high_entropy_high_divergence")


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


def _flat(rows: list[dict], column: str) -> np.ndarray:
    """One float64 array of a per-token column over all rows (lists or arrays, as parquet gives them back)."""
    parts = [np.asarray(r[column], dtype=np.float64).reshape(-1) for r in rows if r.get(column) is not None]
    return np.concatenate(parts) if parts else np.zeros(0)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _sum_implicit_reward(row: dict) -> float:
    value = row.get("sum_implicit_reward")
    if _missing(value):
        value = float(np.sum(np.asarray(row["implicit_reward"], dtype=np.float64)))
    return float(value)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


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


def verdict_c1(separation: dict, accuracy_before: float | None = None, accuracy_after: float | None = None) -> str:
    """One sentence on C1 from `c1_separation` and, when given, the teacher's accuracy (fractions) before and
    after stage 1. The verdict rests on the AUROC (`C1_MIN_AUROC`); the accuracy change is reported beside it."""
    value = separation.get("auroc")
    n_good, n_bad = separation.get("n_correct", 0), separation.get("n_incorrect", 0)
    accuracy = ""
    if accuracy_before is not None and accuracy_after is not None:
        gain = accuracy_after - accuracy_before
        moved = "" if gain >= C1_MIN_ACCURACY_GAIN else " (barely moved)"
        accuracy = f"accuracy {_pct(accuracy_before)} -> {_pct(accuracy_after)} after stage 1{moved}"
    if value is None:
        return (f"Cannot judge C1: the student rollouts are all correct or all incorrect ({n_good} correct, "
                f"{n_bad} incorrect), so there is nothing to separate" + (f"; {accuracy}." if accuracy else "."))
    if value >= C1_MIN_AUROC:
        head = "Teacher is reward-shaped: "
        body = (f"summed implicit reward separates correct from incorrect student rollouts (AUROC {value:.2f}, "
                f"{n_good} correct vs {n_bad} incorrect).")
    else:
        head = "Teacher is not reward-shaped yet: "
        body = (f"summed implicit reward barely separates correct from incorrect student rollouts (AUROC "
                f"{value:.2f}, below {C1_MIN_AUROC:.2f}; {n_good} correct vs {n_bad} incorrect).")
    return head + (f"{accuracy} and {body}" if accuracy else body)


# ---------------------------------------------------------------------------------------------------------------
# C2


def c2_closeness(rows, edges: Sequence[float] = C2_HISTOGRAM_EDGES, policy: str | None = None) -> dict:
    """Per-token reverse KL(pS || pT) over all tokens of the rows (token-weighted: long rollouts count more).

    `histogram["counts"][i]` counts tokens in `[edges[i], edges[i+1])`; the last bin is closed and its right edge
    is raised to the largest value, so the counts always sum to `n_tokens`.
    """
    kl = np.clip(_flat(_records(rows, policy), "reverse_kl"), 0.0, None)  # a KL below 0 is rounding
    edges = [float(e) for e in edges]
    if len(kl):
        edges[-1] = max(edges[-1], float(kl.max()))
    counts, _ = np.histogram(kl, bins=np.asarray(edges))
    empty = len(kl) == 0
    return {
        "mean_reverse_kl": None if empty else float(kl.mean()),
        "median": None if empty else float(np.median(kl)),
        "p90": None if empty else float(np.percentile(kl, 90)),
        "histogram": {"edges": edges, "counts": [int(c) for c in counts]},
        "n_tokens": int(len(kl)),
    }


def verdict_c2(closeness: dict, before: dict | None = None) -> str:
    """One sentence on C2 from `c2_closeness` of the student's rollouts, optionally against the same figure
    before the warmup. Close means a mean reverse KL of at most `C2_MAX_MEAN_REVERSE_KL` nats per token."""
    mean = closeness.get("mean_reverse_kl")
    if mean is None:
        return "Cannot judge C2: no scored student tokens."
    detail = (f"mean reverse KL(student || teacher) {mean:.3f} nats/token on the student's own rollouts "
              f"(median {closeness['median']:.3f}, p90 {closeness['p90']:.3f}, {closeness['n_tokens']:,} tokens)")
    if before is not None and before.get("mean_reverse_kl") is not None:
        direction = "down" if mean < before["mean_reverse_kl"] else "up"
        detail += f", {direction} from {before['mean_reverse_kl']:.3f} before the warmup"
    if mean <= C2_MAX_MEAN_REVERSE_KL:
        return f"Student is inside the teacher's support: {detail}."
    return f"Student is not yet inside the teacher's support: {detail}, above {C2_MAX_MEAN_REVERSE_KL}."


# ---------------------------------------------------------------------------------------------------------------
# Where the signal sits


def token_quadrants(rows, entropy_threshold: float | None = None, divergence_threshold: float | None = None,
                    policy: str | None = None) -> dict:
    """Tokens split by student entropy (low: <= threshold) x divergence = per-token reverse KL (low: <= threshold);
    thresholds default to the medians over the rows' tokens.

    Per quadrant: `n_tokens`, `token_share`, `abs_reward_share` (share of the total sum of |implicit_reward|; None
    when that total is 0) and `mean_implicit_reward` (None for an empty quadrant).
    """
    rows = _records(rows, policy)
    entropy, divergence, reward = _flat(rows, "student_entropy"), _flat(rows, "reverse_kl"), _flat(rows,
                                                                                                   "implicit_reward")
    if not len(entropy) == len(divergence) == len(reward):
        raise ValueError("student_entropy, reverse_kl and implicit_reward have different numbers of tokens")
    n = len(reward)
    if entropy_threshold is None:
        entropy_threshold = float(np.median(entropy)) if n else 0.0
    if divergence_threshold is None:
        divergence_threshold = float(np.median(divergence)) if n else 0.0
    low_h, low_d = entropy <= entropy_threshold, divergence <= divergence_threshold
    masks = {"low_entropy_low_divergence": low_h & low_d, "low_entropy_high_divergence": low_h & ~low_d,
             "high_entropy_low_divergence": ~low_h & low_d, "high_entropy_high_divergence": ~low_h & ~low_d}
    total_abs = float(np.abs(reward).sum())
    quadrants = {}
    for name in QUADRANTS:
        m = masks[name]
        k = int(m.sum())
        quadrants[name] = {
            "n_tokens": k,
            "token_share": k / n if n else None,
            "abs_reward_share": float(np.abs(reward[m]).sum()) / total_abs if total_abs > 0 else None,
            "mean_implicit_reward": float(reward[m].mean()) if k else None,
        }
    return {"entropy_threshold": float(entropy_threshold), "divergence_threshold": float(divergence_threshold),
            "n_tokens": n, "quadrants": quadrants}
