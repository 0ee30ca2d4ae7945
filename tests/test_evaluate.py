from itertools import combinations
from math import comb

import pytest

from s2dlab.workflow.evaluate import pass_at_k, summarize


def brute_pass_at_k(n, c, k):
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n,c,k", [(4, 0, 1), (4, 1, 1), (4, 1, 2), (5, 2, 3), (6, 3, 6), (8, 1, 4), (3, 3, 2)])
def test_pass_at_k_matches_enumeration(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k))


def test_pass_at_k_closed_form_and_edges():
    # the unbiased estimator 1 - C(n-c, k) / C(n, k) (Chen et al. 2021), against its closed form
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - comb(7, 4) / comb(10, 4))
    assert pass_at_k(5, 0, 5) == 0.0 and pass_at_k(5, 1, 5) == 1.0  # with k = n: "any sample correct"
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)  # pass@1 is the share of correct samples


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError, match="c=5"):
        pass_at_k(4, 5, 1)


def test_summarize_avg_and_pass():
    res = summarize({"a": [True, False, False, False], "b": [False] * 4, "c": [True] * 4}, 4)
    assert res["avg@4"] == pytest.approx((0.25 + 0 + 1) / 3)
    assert res["pass@4"] == pytest.approx(2 / 3)
    assert res["n_problems"] == 3
    with pytest.raises(ValueError, match="every problem needs 4 samples"):
        summarize({"a": [True]}, 4)
