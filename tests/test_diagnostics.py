"""Tests for s2dlab.diagnostics: AUROC against a brute-force pair count, shares and counts that add up."""

import itertools
import random

import pytest

from s2dlab import diagnostics
from s2dlab.diagnostics import (QUADRANTS, auroc, c1_separation, c2_closeness, token_quadrants, verdict_c1,
                                verdict_c2)


def brute_force_auroc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_pair_count_with_ties(seed):
    rng = random.Random(seed)
    scores = [rng.choice([-1.0, 0.0, 0.5, 2.0, 3.0]) + (rng.random() if seed % 2 else 0.0) for _ in range(40)]
    labels = [rng.random() < 0.4 for _ in range(40)]
    assert auroc(scores, labels) == pytest.approx(brute_force_auroc(scores, labels))


def test_auroc_edge_cases():
    assert auroc([1, 2, 3], [True, True, True]) is None
    assert auroc([], []) is None
    assert auroc([1, 2], [False, True]) == 1.0
    assert auroc([2, 1], [False, True]) == 0.0
    assert auroc([1, 1], [False, True]) == 0.5
    assert auroc([1, None, float("nan"), 2], [False, True, False, True]) == 1.0  # missing scores dropped


def make_rows(n=12, seed=0, policy="student"):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        length = rng.randint(1, 9)
        correct = i % 3 == 0
        reward = [rng.gauss(0.3 if correct else -0.3, 0.5) for _ in range(length)]
        rows.append({"policy": policy, "correct": correct, "implicit_reward": reward,
                     "sum_implicit_reward": sum(reward),
                     "reverse_kl": [abs(rng.gauss(0, 0.4)) for _ in range(length)],
                     "student_entropy": [abs(rng.gauss(1, 0.5)) for _ in range(length)]})
    return rows


def test_c1_separation():
    rows = make_rows() + [{"policy": "student", "correct": None, "implicit_reward": [9.0]}]  # ungraded: skipped
    got = c1_separation(rows)
    graded = [r for r in rows if r["correct"] is not None]
    assert got["n_correct"] == 4 and got["n_incorrect"] == 8
    assert got["auroc"] == pytest.approx(brute_force_auroc([r["sum_implicit_reward"] for r in graded],
                                                           [r["correct"] for r in graded]))
    assert got["mean_sum_reward_correct"] == pytest.approx(
        sum(r["sum_implicit_reward"] for r in graded if r["correct"]) / 4)
    # Falls back to summing the per-token column; the policy filter picks student rows.
    stripped = [{k: v for k, v in r.items() if k != "sum_implicit_reward"} for r in graded]
    assert c1_separation(stripped + make_rows(seed=1, policy="teacher"), policy="student")["auroc"] == got["auroc"]


def test_c2_closeness_histogram_counts_all_tokens():
    rows = make_rows(seed=2)
    rows[0]["reverse_kl"][0] = 25.0  # beyond the last default edge
    rows[1]["reverse_kl"][0] = -1e-9  # rounding below zero
    got = c2_closeness(rows)
    n = sum(len(r["reverse_kl"]) for r in rows)
    assert got["n_tokens"] == n and sum(got["histogram"]["counts"]) == n
    assert len(got["histogram"]["edges"]) == len(got["histogram"]["counts"]) + 1
    assert got["histogram"]["edges"][-1] == 25.0
    flat = [max(x, 0.0) for r in rows for x in r["reverse_kl"]]
    assert got["mean_reverse_kl"] == pytest.approx(sum(flat) / n)  # token-weighted
    assert got["median"] <= got["p90"]
    assert c2_closeness([])["mean_reverse_kl"] is None


def test_token_quadrants_shares_sum_to_one():
    rows = make_rows(seed=3)
    got = token_quadrants(rows)
    q = got["quadrants"]
    assert set(q) == set(QUADRANTS)
    assert sum(v["n_tokens"] for v in q.values()) == got["n_tokens"]
    assert sum(v["token_share"] for v in q.values()) == pytest.approx(1.0)
    assert sum(v["abs_reward_share"] for v in q.values()) == pytest.approx(1.0)
    # Explicit thresholds: everything low-entropy and high-divergence.
    forced = token_quadrants(rows, entropy_threshold=1e9, divergence_threshold=-1.0)["quadrants"]
    assert forced["low_entropy_high_divergence"]["token_share"] == 1.0
    assert forced["low_entropy_high_divergence"]["abs_reward_share"] == 1.0
    flat = [x for r in rows for x in r["implicit_reward"]]
    assert forced["low_entropy_high_divergence"]["mean_implicit_reward"] == pytest.approx(sum(flat) / len(flat))
    assert forced["high_entropy_low_divergence"]["mean_implicit_reward"] is None


def test_accepts_a_dataframe_read_back_from_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = make_rows(seed=4)
    pd.DataFrame(rows).to_parquet(tmp_path / "rows.parquet")
    df = pd.read_parquet(tmp_path / "rows.parquet")
    assert c1_separation(df)["auroc"] == pytest.approx(c1_separation(rows)["auroc"])
    assert c2_closeness(df)["mean_reverse_kl"] == pytest.approx(c2_closeness(rows)["mean_reverse_kl"])
    assert token_quadrants(df)["n_tokens"] == token_quadrants(rows)["n_tokens"]


def test_verdicts():
    shaped = {"auroc": 0.81, "n_correct": 40, "n_incorrect": 88}
    text = verdict_c1(shaped, 0.42, 0.67)
    assert text.startswith("Teacher is reward-shaped: accuracy 42% -> 67% after stage 1")
    assert "AUROC 0.81" in text
    assert verdict_c1({**shaped, "auroc": diagnostics.C1_MIN_AUROC - 0.1}).startswith("Teacher is not reward-shaped")
    assert verdict_c1({"auroc": None, "n_correct": 5, "n_incorrect": 0}).startswith("Cannot judge C1")

    close = {"mean_reverse_kl": 0.12, "median": 0.03, "p90": 0.3, "n_tokens": 4096}
    assert verdict_c2(close, before={"mean_reverse_kl": 0.85}).startswith("Student is inside the teacher's support")
    assert "down from 0.850" in verdict_c2(close, before={"mean_reverse_kl": 0.85})
    far = {**close, "mean_reverse_kl": diagnostics.C2_MAX_MEAN_REVERSE_KL + 1}
    assert verdict_c2(far).startswith("Student is not yet inside")
    assert verdict_c2({"mean_reverse_kl": None}).startswith("Cannot judge C2")
