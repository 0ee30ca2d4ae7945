"""s2dlab.instruments.estimators against independent computations: torch.nn.functional.kl_div, autograd, brute-force
set arithmetic in float64, and Monte Carlo over many samples with a fixed seed."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2dlab.core.errors import InputError
from s2dlab.core.models import (
    TINY_STUDENT,
    TINY_TEACHER,
    build_char_tokenizer,
    build_tiny_model,
)
from s2dlab.core.scoring import score_rollouts
from s2dlab.instruments.estimators import (
    estimate_rollouts,
    estimate_sequences,
    estimator_names,
    field_names,
    summarize_estimators,
    token_estimators,
)


def random_logits(N=5, V=13, seed=0, scale=2.5):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(N, V, generator=g) * scale
    t = torch.randn(N, V, generator=g) * scale
    ids = torch.randint(0, V, (N,), generator=g)
    return s, t, ids


def close(a, b, atol=1e-5, rtol=1e-4):
    torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), atol=atol, rtol=rtol)


# --------------------------------------------------------------------------------------------------------------
# per-position formulas


def test_exact_kls_match_kl_div_and_sampled_estimators_match_definitions():
    s, t, ids = random_logits()
    got = token_estimators(s, t, ids, ks=(1, 4))
    ls, lt = F.log_softmax(s.double(), -1), F.log_softmax(t.double(), -1)
    # kl_div(input, target) = sum target (log target - input) = KL(target || input's distribution)
    close(got["reverse_kl"], F.kl_div(lt, ls, reduction="none", log_target=True).sum(-1))
    close(got["forward_kl"], F.kl_div(ls, lt, reduction="none", log_target=True).sum(-1))
    ps_y, pt_y = ls.exp()[range(len(ids)), ids], lt.exp()[range(len(ids)), ids]
    r = pt_y / ps_y  # ratio of probabilities, not of log-probs
    close(got["implicit_reward"], torch.log(pt_y) - torch.log(ps_y))
    close(got["k1"], torch.log(ps_y) - torch.log(pt_y))
    close(got["k2"], 0.5 * (torch.log(ps_y) - torch.log(pt_y)) ** 2)
    close(got["k3"], (r - 1) - torch.log(r), rtol=1e-4, atol=1e-4)
    assert (got["k3"] >= 0).all() and (got["k2"] >= 0).all()
    close(got["k1_error"], got["k1"].double() - got["reverse_kl"].double())
    assert set(got) == set(field_names((1, 4)))
    assert all(v.dtype == torch.float32 and v.shape == (5,) for v in got.values())


def test_log_probs_in_give_the_same_as_logits_in():
    s, t, ids = random_logits(seed=3)
    a = token_estimators(s, t, ids)
    b = token_estimators(F.log_softmax(s, -1), F.log_softmax(t, -1) + 7.0, ids)  # shifts do not matter either
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, equal_nan=True, msg=name)


def test_k1_k3_unbiased_and_k2_biased_by_monte_carlo():
    # One position, y ~ pS many times (fixed seed): sample means of k1 and k3 sit within a few standard errors of
    # KL(pS||pT); k2's mean does not (the teacher is far from the student, where k2's bias is large).
    V, n = 6, 200_000
    g = torch.Generator().manual_seed(0)
    s = torch.randn(1, V, generator=g) * 1.5
    t = torch.randn(1, V, generator=g) * 1.5
    ps = torch.softmax(s.double(), -1)[0]
    ys = torch.multinomial(ps, n, replacement=True, generator=g)
    got = token_estimators(s.expand(n, V), t.expand(n, V), ys)
    kl = float(got["reverse_kl"][0])
    for name, unbiased in (("k1", True), ("k3", True), ("k2", False)):
        x = got[name].double()
        mean, se = float(x.mean()), float(x.std() / math.sqrt(n))
        if unbiased:
            assert abs(mean - kl) < 4 * se, (name, mean, kl, se)
        else:
            assert abs(mean - kl) > 10 * se, (name, mean, kl, se)
    assert kl > 0.3  # far apart, so the k2 check means something


def test_topk_variants_against_brute_force_sets():
    V = 20
    s, t, ids = random_logits(N=4, V=V, seed=5)
    ks = (1, 3, 8, V)
    got = token_estimators(s, t, ids, ks=ks)
    ps, pt = torch.softmax(s.double(), -1), torch.softmax(t.double(), -1)
    for n in range(4):
        order = torch.argsort(ps[n], descending=True)
        for k in ks:
            S = order[:k]
            outside = torch.ones(V, dtype=torch.bool)
            outside[S] = False
            pS_S, pT_S = ps[n, S], pt[n, S]
            raw = float((pS_S * (pS_S.log() - pT_S.log())).sum())
            renorm = float(F.kl_div((pT_S / pT_S.sum()).log(), pS_S / pS_S.sum(), reduction="sum"))
            tail_s, tail_t = float(ps[n, outside].sum()), float(pt[n, outside].sum())
            coarse_s = torch.cat([pS_S, torch.tensor([tail_s], dtype=torch.float64)])
            coarse_t = torch.cat([pT_S, torch.tensor([tail_t], dtype=torch.float64)])
            keep = coarse_s > 0
            tail = float((coarse_s[keep] * (coarse_s[keep].log() - coarse_t[keep].log())).sum())
            assert float(got[f"top{k}_raw"][n]) == pytest.approx(raw, abs=1e-5)
            assert float(got[f"top{k}_renorm"][n]) == pytest.approx(renorm, abs=1e-5)
            assert float(got[f"top{k}_tail"][n]) == pytest.approx(tail, abs=1e-5)
            assert float(got[f"top{k}_tail_mass_student"][n]) == pytest.approx(tail_s, abs=1e-6)
            assert float(got[f"top{k}_tail_mass_teacher"][n]) == pytest.approx(tail_t, abs=1e-6)
    # Renormalised over one token is always 0; the tail variant is a coarsening: 0 <= it <= exact, growing in k.
    assert (got["top1_renorm"] == 0).all()
    exact = got["reverse_kl"]
    tails = torch.stack([got[f"top{k}_tail"] for k in ks])
    assert (tails >= -1e-6).all() and (tails <= exact + 1e-5).all()
    assert (tails[1:] >= tails[:-1] - 1e-6).all()
    for v in ("raw", "renorm", "tail"):
        assert got[f"top{V}_{v}_error"].abs().max() < 1e-5
    assert (got[f"top{V}_tail_mass_student"] == 0).all()


def test_raw_truncation_goes_negative_where_the_teacher_gives_the_top_tokens_more():
    # Student top token at 0.5, teacher puts 0.9 on it: its term 0.5 log(0.5/0.9) < 0 and nothing offsets it.
    ls = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    lt = torch.log(torch.tensor([[0.9, 0.05, 0.05]]))
    got = token_estimators(ls, lt, torch.tensor([0]), ks=(1,))
    assert float(got["top1_raw"]) == pytest.approx(0.5 * math.log(0.5 / 0.9), abs=1e-6)
    assert float(got["top1_raw"]) < 0 < float(got["top1_tail"]) < float(got["reverse_kl"])


def test_gradients_match_autograd():
    s, t, ids = random_logits(N=6, V=9, seed=7)
    got = token_estimators(s, t, ids)
    lt = F.log_softmax(t.double(), -1)
    for n in range(6):
        z = s[n].double().clone().requires_grad_(True)
        ls = F.log_softmax(z, -1)
        F.kl_div(lt[n], ls, reduction="sum", log_target=True).backward()  # KL(pS || pT) as a function of z
        g_exact = z.grad.clone()
        z.grad = None
        y = int(ids[n])
        ls = F.log_softmax(z, -1)
        A = (lt[n, y] - ls[y]).detach()  # advantage held fixed
        (-A * ls[y]).backward()  # sampled-token (score-function) loss
        g_sampled = z.grad.clone()
        assert float(got["grad_exact_at_token"][n]) == pytest.approx(float(g_exact[y]), abs=1e-5)
        assert float(got["grad_sampled_at_token"][n]) == pytest.approx(float(g_sampled[y]), abs=1e-5)
        assert float(got["grad_exact_norm"][n]) == pytest.approx(float(g_exact.norm()), abs=1e-5)
        assert float(got["grad_sampled_norm"][n]) == pytest.approx(float(g_sampled.norm()), abs=1e-5)
        cos = float(F.cosine_similarity(g_exact, g_sampled, dim=0))
        assert float(got["grad_cosine"][n]) == pytest.approx(cos, abs=1e-4)


def test_sampled_gradient_is_unbiased_exhaustively():
    # sum_y pS(y) g_sampled(y) = g_exact, by enumerating y; checks the formulas' directions, not just components.
    V = 7
    s, t, _ = random_logits(N=1, V=V, seed=11)
    ps = torch.softmax(s.double(), -1)[0]
    lt = F.log_softmax(t.double(), -1)[0]
    expected = torch.zeros(V, dtype=torch.float64)
    for y in range(V):
        z = s[0].double().clone().requires_grad_(True)
        ls = F.log_softmax(z, -1)
        (-(lt[y] - ls[y]).detach() * ls[y]).backward()
        expected += ps[y] * z.grad
    z = s[0].double().clone().requires_grad_(True)
    F.kl_div(lt, F.log_softmax(z, -1), reduction="sum", log_target=True).backward()
    torch.testing.assert_close(expected, z.grad, atol=1e-10, rtol=1e-8)


def test_cosine_undefined_when_student_equals_teacher():
    s, _, ids = random_logits(seed=2)
    got = token_estimators(s, s.clone(), ids)
    assert torch.isnan(got["grad_cosine"]).all()
    assert got["grad_exact_norm"].abs().max() < 1e-6 and got["grad_sampled_norm"].abs().max() < 1e-6


def test_bad_ks_raise_input_error():
    s, t, ids = random_logits()
    with pytest.raises(InputError, match="ks="):
        token_estimators(s, t, ids, ks=(0, 8))


def test_large_vocabulary_truncation_error_shrinks_to_zero_at_full_vocab():
    # 50k tokens, Zipf-like (peaked) distributions for both models, a handful of positions.
    V, N = 50_000, 4
    g = torch.Generator().manual_seed(0)
    base = -1.1 * torch.log(torch.arange(1, V + 1, dtype=torch.float32))
    s = torch.stack([base[torch.randperm(V, generator=g)] for _ in range(N)])
    t = s + 0.7 * torch.randn(N, V, generator=g)  # the teacher: a noisy copy
    ids = torch.multinomial(torch.softmax(s, -1), 1, generator=g).squeeze(-1)
    ks = (1, 8, 64, 4096, V)
    got = token_estimators(s, t, ids, ks=ks)
    tail_err = torch.stack([got[f"top{k}_tail_error"].abs() for k in ks])
    tail_mass = torch.stack([got[f"top{k}_tail_mass_student"] for k in ks])
    assert (tail_err[1:] <= tail_err[:-1] + 1e-5).all()  # the tail variant only gets better with k
    assert (tail_mass[1:] <= tail_mass[:-1] + 1e-7).all()
    assert (tail_mass[0] > 0.01).all()  # at k=1 the truncation really drops mass here
    assert (tail_err[0] > 0.01).all()  # and the error is visible
    for v in ("raw", "renorm", "tail"):
        assert got[f"top{V}_{v}_error"].abs().max() < 1e-4, v
    assert (got[f"top{V}_tail_mass_student"] == 0).all() and (got[f"top{V}_tail_mass_teacher"] == 0).all()


# --------------------------------------------------------------------------------------------------------------
# models in


@pytest.fixture(scope="module")
def pair():
    tok = build_char_tokenizer()
    student = build_tiny_model(TINY_STUDENT, tok, seed=1)
    teacher = build_tiny_model(TINY_TEACHER, tok, seed=2)
    return tok, student, teacher


def test_chunked_equals_full_logits(pair):
    tok, student, teacher = pair
    g = torch.Generator().manual_seed(0)
    ids_BL = torch.randint(4, len(tok), (2, 12), generator=g)
    comp_BL = torch.zeros(2, 12, dtype=torch.long)
    comp_BL[:, 5:] = 1
    small, mask = estimate_sequences(student, teacher, ids_BL, comp_BL, chunk_size=3)
    big, _ = estimate_sequences(student, teacher, ids_BL, comp_BL, chunk_size=1000)
    with torch.no_grad():
        s_BLV, t_BLV = student(ids_BL).logits, teacher(ids_BL).logits
    direct = token_estimators(s_BLV[:, :-1][mask], t_BLV[:, :-1][mask], ids_BL[:, 1:][mask])
    for name in direct:
        torch.testing.assert_close(small[name], big[name], equal_nan=True, msg=name)
        torch.testing.assert_close(small[name][mask], direct[name], atol=2e-5, rtol=1e-4, equal_nan=True, msg=name)
        assert (small[name][~mask] == 0).all()


def test_estimate_rollouts_agree_with_score_rollouts(pair):
    from s2dlab.core.generation import sample

    tok, student, teacher = pair
    records = [{"id": "p0", "prompt": "1+2=?"}, {"id": "p1", "prompt": "3-4+5=?"}]
    rollouts = sample(student, tok, records, n=2, max_new_tokens=10, seed=0, progress=False)
    rows = estimate_rollouts(student, teacher, tok, rollouts, batch_size=3)
    scored = score_rollouts(student, teacher, tok, rollouts)
    for row, ref, r in zip(rows, scored, rollouts):
        assert row["prompt_id"] == r.prompt_id and row["length"] == len(r.completion_ids)
        for name in ("implicit_reward", "reverse_kl", "forward_kl"):
            np.testing.assert_allclose(row[name], ref[name], atol=1e-5)
        assert all(len(row[name]) == row["length"] for name in field_names())
    json.dumps(rows, allow_nan=False)  # plain floats / None, ready for JSON


def test_summarize_against_numpy():
    def row(policy, exact, k1):
        return {"policy": policy, "reverse_kl": exact, "forward_kl": exact, "k1": k1,
                "k1_error": [a - b for a, b in zip(k1, exact)], "grad_cosine": [0.5, None, -0.1][:len(exact)],
                "grad_exact_at_token": [1.0] * len(exact), "grad_sampled_at_token": [-1.0] + [2.0] * (len(exact) - 1)}

    rows = [row("student", [0.1, 0.3, 0.2], [0.5, -0.2, 0.0]), row("student", [0.4], [0.1]),
            row("teacher", [9.0], [9.0])]
    got = summarize_estimators(rows, ks=())
    err = np.array([0.4, -0.5, -0.2, -0.3])
    k1 = got["estimators"]["k1"]
    assert got["n_tokens"] == 4 and k1["n"] == 4
    assert k1["bias"] == pytest.approx(err.mean()) and k1["sd"] == pytest.approx(err.std(ddof=1))
    assert k1["rmse"] == pytest.approx(math.sqrt((err ** 2).mean()))
    assert k1["relative_bias"] == pytest.approx(err.mean() / 0.25)
    assert k1["frac_negative"] == pytest.approx(0.25)
    assert got["gradient"]["mean_cosine"] == pytest.approx((0.5 - 0.1 + 0.5) / 3)
    assert got["gradient"]["frac_positive_cosine"] == pytest.approx(2 / 3)
    assert got["gradient"]["frac_same_sign_at_token"] == pytest.approx(2 / 4)
    assert summarize_estimators(rows, policy=None, ks=())["n_tokens"] == 5
    assert set(estimator_names(())) == {"k1", "k2", "k3"}
