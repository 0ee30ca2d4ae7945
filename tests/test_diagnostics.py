"""Tests for s2dlab.core.diagnostics: AUROC against a brute-force pair count, shares and counts that add up."""

import itertools
import random

import numpy as np
import pytest

from s2dlab.core import diagnostics
from s2dlab.core.diagnostics import auroc, c1_separation


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


def test_accepts_a_dataframe_read_back_from_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    rows = make_rows(seed=4)
    pd.DataFrame(rows).to_parquet(tmp_path / "rows.parquet")
    df = pd.read_parquet(tmp_path / "rows.parquet")
    assert c1_separation(df)["auroc"] == pytest.approx(c1_separation(rows)["auroc"])


# --- intervals and the fixed-rollout measurements (known values) -------------------------------------------------

def test_t975_table():
    assert diagnostics.t975(4) == pytest.approx(2.776) and diagnostics.t975(1) == pytest.approx(12.706)
    assert diagnostics.t975(200) == pytest.approx(1.96, abs=1e-3)
    with pytest.raises(ValueError):
        diagnostics.t975(0)


def test_accuracy_interval_adds_problem_and_seed_noise():
    per_seed = [{"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.5}, {"a": 0.5, "b": 0.5, "c": 0.0, "d": 1.0},
                {"a": 1.0, "b": 0.0, "c": 0.5, "d": 0.5, "extra": 1.0}]  # "extra" is not common: dropped
    out = diagnostics.accuracy_interval(per_seed)
    m = np.array([[1, .5, 0, .5], [.5, .5, 0, 1], [1, 0, .5, .5]])
    se_p = m.mean(0).std(ddof=1) / 2
    se_s = m.mean(1).std(ddof=1) / np.sqrt(3)
    half = np.sqrt((1.959964 * se_p) ** 2 + (4.303 * se_s) ** 2)
    assert out["mean"] == pytest.approx(m.mean()) and out["n_problems"] == 4 and out["n_seeds"] == 3
    assert out["se_problems"] == pytest.approx(se_p) and out["se_seeds"] == pytest.approx(se_s)
    assert out["ci"] == pytest.approx([m.mean() - half, m.mean() + half], rel=1e-5)
    one = diagnostics.accuracy_interval(per_seed[:1])
    assert one["se_seeds"] == 0 and one["ci"][1] - one["mean"] == pytest.approx(1.959964 * m[0].std(ddof=1) / 2,
                                                                                rel=1e-5)
    # near 0%: mean 1/8 with half-width 1.96 * sd / sqrt(4) > 1/8, so the lower bound is cut at 0, the upper kept
    low = diagnostics.accuracy_interval([{"a": 0.5, "b": 0.0, "c": 0.0, "d": 0.0}])
    assert low["ci"] == pytest.approx([0.0, 0.125 + 1.959964 * 0.25 / 2], rel=1e-5)
    high = diagnostics.accuracy_interval([{"a": 0.5, "b": 1.0, "c": 1.0, "d": 1.0}])
    assert high["ci"] == pytest.approx([0.875 - 1.959964 * 0.25 / 2, 1.0], rel=1e-5)


def test_paired_difference_verdicts():
    a = [{f"p{i}": 1.0 for i in range(30)}]
    b = [{f"p{i}": float(i % 2) for i in range(30)}]
    assert diagnostics.paired_difference(a, b)["verdict"] == "higher"
    lower = diagnostics.paired_difference(b, a)
    assert lower["verdict"] == "lower"
    # a difference lies in [-1, 1]: its interval is symmetric about the mean, never cut at 0 like an accuracy's
    half = 1.959964 * np.std([-(i % 2 == 0) for i in range(30)], ddof=1) / np.sqrt(30)
    assert lower["ci"] == pytest.approx([-0.5 - half, -0.5 + half], rel=1e-5)
    noisy = [{f"p{i}": float(i % 2) for i in range(30)}]
    other = [{f"p{i}": float((i + 1) % 2) for i in range(30)}]
    d = diagnostics.paired_difference(noisy, other)
    assert d["mean"] == 0 and d["verdict"] == "within noise"
    with pytest.raises(ValueError, match="pair the same seeds"):
        diagnostics.paired_difference(a, a + a)


def test_auroc_difference_and_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.4
    groups = np.arange(400) // 4
    good = y * 2.0 + rng.normal(size=400)
    noise = rng.normal(size=400)
    out = diagnostics.auroc_difference(good, noise, y, groups, n_boot=300)
    assert out["a"] == pytest.approx(auroc(good, y)) and out["b"] == pytest.approx(auroc(noise, y))
    assert out["difference"] == pytest.approx(out["a"] - out["b"]) and out["verdict"] == "higher"
    assert out["ci"][0] < out["difference"] < out["ci"][1]
    same = diagnostics.auroc_difference(noise, noise, y, groups, n_boot=100)
    assert same["difference"] == 0 and same["verdict"] == "within noise"
    iv = diagnostics.auroc_with_ci(good, y, groups, n_boot=300)
    assert iv["ci"][0] < iv["auroc"] < iv["ci"][1] and iv["n_correct"] == int(y.sum())


def test_first_error_reward_finds_the_token_of_the_first_wrong_character():
    rows = [
        {"prompt_id": "a", "sample_idx": 0, "correct": False, "tokens": ["1", "+", "2", "=", "4"],
         "implicit_reward": [0.0, -0.1, 0.1, 0.0, -3.0]},
        {"prompt_id": "b", "sample_idx": 0, "correct": False, "tokens": ["12", "=", "x"],
         "implicit_reward": [-1.0, 0.5, 0.5]},
        {"prompt_id": "c", "sample_idx": 0, "correct": True, "tokens": ["5"], "implicit_reward": [9.0]},
    ]
    out = diagnostics.first_error_reward(rows, {("a", 0): 4, ("b", 0): 1, ("c", 0): None}, n_boot=50)
    # a: character 4 is token 4 (-3.0); b: character 1 sits in the two-character token "12" (-1.0)
    assert out["at_error"] == pytest.approx(-2.0) and out["n_rollouts"] == 2
    assert out["elsewhere"] == pytest.approx(np.mean([0.0, -0.1, 0.1, 0.0, 0.5, 0.5]))
    assert diagnostics.token_index_of_char(["ab", "c"], 2) == 1 and diagnostics.token_index_of_char(["a"], 5) is None


def test_mean_reverse_kl_is_token_weighted_and_kl_change_has_a_verdict():
    before = [{"reverse_kl": [1.0, 1.0, 1.0]}, {"reverse_kl": [0.0]}] * 20
    after = [{"reverse_kl": [0.1, 0.1]}, {"reverse_kl": [0.2]}] * 20
    b = diagnostics.mean_reverse_kl(before, n_boot=100)
    assert b["mean"] == pytest.approx(3 / 4) and b["n_tokens"] == 80 and b["ci"][0] <= 0.75 <= b["ci"][1]
    ch = diagnostics.kl_change(before, after, n_boot=200)
    assert ch["difference"] == pytest.approx(0.4 / 3 - 0.75) and ch["verdict"] == "lower"


def test_signal_quadrants_split_on_confidence_and_agreement():
    import math

    row = {"policy": "student", "implicit_reward": [-2.0, 0.5, 0.1, -0.1],
           "student_topk_ids": [[3, 1], [3, 1], [4, 1], [4, 1]],
           "student_topk_logprobs": [[math.log(0.95), -3], [math.log(0.95), -3], [math.log(0.5), -1],
                                     [math.log(0.5), -1]],
           "teacher_topk_ids": [[1, 3], [3, 1], [4, 2], [2, 4]]}
    out = diagnostics.signal_quadrants([row])
    q = out["quadrants"]
    assert out["n_tokens"] == 4 and out["confident_prob"] == 0.9
    assert q["confident_disagree"]["n_tokens"] == 1 and q["confident_disagree"]["mean_implicit_reward"] == -2.0
    assert q["confident_agree"]["n_tokens"] == q["uncertain_agree"]["n_tokens"] == q["uncertain_disagree"][
        "n_tokens"] == 1
    assert q["confident_disagree"]["abs_reward_share"] == pytest.approx(2.0 / 2.7)
