"""Known-value tests for s2dlab.core.scoring against an independent float64 computation."""

import math

import pytest
import torch
import torch.nn.functional as F

from s2dlab.core.models import (
    TINY_STUDENT,
    TINY_TEACHER,
    build_char_tokenizer,
    build_tiny_model,
)
from s2dlab.core.rewards import extract_boxed
from s2dlab.core.scoring import (
    MASKED_TOPK_ID,
    PER_TOKEN_FIELDS,
    TOPK_FIELDS,
    TokenScores,
    score_rollouts,
    score_sequences,
    token_scores,
)


def reference(student_logits, teacher_logits, ids, top_k=5):
    """Straight from the definitions, in float64, one position at a time."""
    B, T, _ = student_logits.shape
    out = {name: torch.zeros(B, T, dtype=torch.float64) for name in PER_TOKEN_FIELDS}
    for b in range(B):
        for t in range(T):
            ls = student_logits[b, t].double() - torch.logsumexp(student_logits[b, t].double(), 0)
            lt = teacher_logits[b, t].double() - torch.logsumexp(teacher_logits[b, t].double(), 0)
            ps, pt = ls.exp(), lt.exp()
            y = int(ids[b, t])
            out["student_logprob"][b, t] = ls[y]
            out["teacher_logprob"][b, t] = lt[y]
            out["implicit_reward"][b, t] = lt[y] - ls[y]
            out["reverse_kl"][b, t] = sum(ps[v] * (ls[v] - lt[v]) for v in range(len(ls)))
            out["forward_kl"][b, t] = sum(pt[v] * (lt[v] - ls[v]) for v in range(len(ls)))
            out["student_entropy"][b, t] = -sum(ps[v] * ls[v] for v in range(len(ls)))
            out["teacher_entropy"][b, t] = -sum(pt[v] * lt[v] for v in range(len(ls)))
    return out


def random_logits(B=2, T=4, V=7, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, T, V, generator=g) * scale
    t = torch.randn(B, T, V, generator=g) * scale
    ids = torch.randint(0, V, (B, T), generator=g)
    return s, t, ids


def assert_scores_close(a: TokenScores, b: TokenScores, atol=1e-5):
    for name in PER_TOKEN_FIELDS + ("teacher_topk_logprobs", "student_topk_logprobs"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=atol, rtol=1e-4, msg=name)
    for name in ("teacher_topk_ids", "student_topk_ids", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------------------------------------------------------
# token_scores


def test_matches_float64_reference():
    s, t, ids = random_logits()
    got = token_scores(s, t, ids)
    ref = reference(s, t, ids)
    for name, value in ref.items():
        assert getattr(got, name).dtype == torch.float32
        torch.testing.assert_close(getattr(got, name).double(), value, atol=1e-5, rtol=1e-5, msg=name)


def test_identical_models_score_zero():
    s, _, ids = random_logits(V=50)
    got = token_scores(s, s.clone(), ids)
    for name in ("implicit_reward", "reverse_kl", "forward_kl"):
        assert getattr(got, name).abs().max() < 1e-6, name
    torch.testing.assert_close(got.student_entropy, got.teacher_entropy)


def test_expected_negative_implicit_reward_is_reverse_kl():
    # Exhaustive over a tiny vocabulary: E_{y~pS}[-(log pT(y) - log pS(y))] = KL(pS || pT).
    V = 7
    s, t, _ = random_logits(B=2, T=3, V=V, seed=1)
    ps = torch.softmax(s.double(), -1)
    expectation = torch.zeros(2, 3, dtype=torch.float64)
    for v in range(V):
        ids = torch.full((2, 3), v)
        expectation += ps[..., v] * -token_scores(s, t, ids).implicit_reward.double()
    reverse_kl = token_scores(s, t, torch.zeros(2, 3, dtype=torch.long)).reverse_kl.double()
    torch.testing.assert_close(expectation, reverse_kl, atol=1e-5, rtol=1e-5)
    assert (reverse_kl > 0).all()


def test_kls_match_torch_kl_div():
    s, t, ids = random_logits(V=11, seed=2)
    got = token_scores(s, t, ids)
    ls, lt = F.log_softmax(s.double(), -1), F.log_softmax(t.double(), -1)
    # kl_div(input, target) = sum target * (log target - input): KL(target || input-distribution).
    forward = F.kl_div(ls, lt, reduction="none", log_target=True).sum(-1)
    reverse = F.kl_div(lt, ls, reduction="none", log_target=True).sum(-1)
    torch.testing.assert_close(got.forward_kl.double(), forward, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.reverse_kl.double(), reverse, atol=1e-5, rtol=1e-5)


def test_entropy_of_uniform_and_one_hot():
    V = 8
    uniform = torch.zeros(1, 1, V)
    peaked = torch.full((1, 1, V), -1e4)
    peaked[..., 3] = 0.0
    got = token_scores(uniform, peaked, torch.tensor([[3]]))
    assert got.student_entropy.item() == pytest.approx(math.log(V), abs=1e-6)
    assert got.teacher_entropy.item() == pytest.approx(0.0, abs=1e-6)
    assert got.implicit_reward.item() == pytest.approx(math.log(V), abs=1e-5)  # log 1 - log(1/V)
    assert got.forward_kl.item() == pytest.approx(math.log(V), abs=1e-5)  # KL(one-hot || uniform)


def test_mask_zeroes_masked_positions():
    s, t, ids = random_logits()
    mask = torch.tensor([[True, False, True, False], [False, False, True, True]])
    ids = ids.masked_fill(~mask, -100)  # masked ids may be anything, -100 included
    got = token_scores(s, t, ids, mask)
    full = token_scores(s, t, ids.clamp_min(0))
    assert torch.equal(got.mask, mask)
    for name in PER_TOKEN_FIELDS + ("teacher_topk_logprobs", "student_topk_logprobs"):
        value = getattr(got, name)
        assert (value[~mask] == 0).all(), name
        torch.testing.assert_close(value[mask], getattr(full, name)[mask], msg=name)
    assert (got.teacher_topk_ids[~mask] == MASKED_TOPK_ID).all()
    assert (got.student_topk_ids[~mask] == MASKED_TOPK_ID).all()


def test_topk_matches_torch_topk():
    s, t, ids = random_logits(V=20, seed=3)
    got = token_scores(s, t, ids, top_k=4)
    for who, logits in (("teacher", t), ("student", s)):
        values, indices = torch.topk(torch.log_softmax(logits, -1), 4, dim=-1)
        assert torch.equal(getattr(got, f"{who}_topk_ids"), indices)
        torch.testing.assert_close(getattr(got, f"{who}_topk_logprobs"), values)
    assert token_scores(s, t, ids, top_k=50).teacher_topk_ids.shape == (2, 4, 20)  # k capped at V


def test_bf16_in_float32_out():
    s, t, ids = random_logits(V=64, seed=4)
    s16, t16 = s.bfloat16(), t.bfloat16()
    got = token_scores(s16, t16, ids)
    ref = reference(s16, t16, ids)  # the bf16 values, exactly, in float64
    for name, value in ref.items():
        assert getattr(got, name).dtype == torch.float32, name
        torch.testing.assert_close(getattr(got, name).double(), value, atol=2e-5, rtol=1e-5, msg=name)


def test_different_padded_vocab_sizes_slice_to_shared():
    s, t, ids = random_logits(V=9, seed=5)
    got = token_scores(s, t[..., :7], ids.clamp_max(6))
    assert_scores_close(got, token_scores(s[..., :7], t[..., :7], ids.clamp_max(6)))
    # vocab_size drops padding rows of both heads (tokenizer smaller than the heads).
    assert_scores_close(token_scores(s, t, ids.clamp_max(5), vocab_size=6),
                        token_scores(s[..., :6], t[..., :6], ids.clamp_max(5)))
    with pytest.raises(ValueError, match="outside the shared vocabulary"):
        token_scores(s, t[..., :7], torch.full_like(ids, 8))


def test_temperature_scales_both_distributions():
    s, t, ids = random_logits(seed=6)
    assert_scores_close(token_scores(s, t, ids, temperature=0.7), token_scores(s / 0.7, t / 0.7, ids))


def test_inputs_untouched_and_no_graph():
    s, t, ids = random_logits(seed=7)
    s.requires_grad_(True)
    s_before, t_before = s.detach().clone(), t.clone()
    got = token_scores(s, t, ids)
    assert torch.equal(s.detach(), s_before) and torch.equal(t, t_before)
    assert not got.reverse_kl.requires_grad


# ---------------------------------------------------------------------------------------------------------------
# score_sequences on tiny models


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_char_tokenizer()
    teacher = build_tiny_model(TINY_TEACHER, tokenizer, seed=1)
    student = build_tiny_model(TINY_STUDENT, tokenizer, seed=2)
    return tokenizer, student, teacher


def left_padded_batch(pad_id, V, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths, prompt_lengths, L = [23, 17, 9], [5, 8, 3], 23
    input_ids = torch.full((3, L), pad_id)
    attention_mask = torch.zeros(3, L, dtype=torch.long)
    completion_mask = torch.zeros(3, L, dtype=torch.long)
    for b, (n, p) in enumerate(zip(lengths, prompt_lengths)):
        input_ids[b, L - n:] = torch.randint(4, V, (n,), generator=g)
        attention_mask[b, L - n:] = 1
        completion_mask[b, L - n + p:] = 1
    return input_ids, attention_mask, completion_mask


def full_logits(model, input_ids, attention_mask):
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits.detach()


@pytest.mark.parametrize("chunk_size", [1, 7, 256])
def test_score_sequences_equals_full_logits(tiny, chunk_size):
    tokenizer, student, teacher = tiny
    input_ids, attention_mask, completion_mask = left_padded_batch(tokenizer.pad_token_id, len(tokenizer))
    got = score_sequences(student, teacher, input_ids, completion_mask, attention_mask, chunk_size=chunk_size,
                          top_k=3)
    # Column j scores token j+1 from the logits at j.
    mask = (completion_mask[:, 1:] & attention_mask[:, 1:]).bool()
    want = token_scores(full_logits(student, input_ids, attention_mask)[:, :-1],
                        full_logits(teacher, input_ids, attention_mask)[:, :-1], input_ids[:, 1:], mask, top_k=3)
    assert got.implicit_reward.shape == (3, 22)
    assert_scores_close(got, want)


def test_score_sequences_bf16_models_give_float32(tiny):
    import copy

    tokenizer, student, teacher = tiny
    student16, teacher16 = copy.deepcopy(student).bfloat16(), copy.deepcopy(teacher).bfloat16()
    input_ids, attention_mask, completion_mask = left_padded_batch(tokenizer.pad_token_id, len(tokenizer), seed=2)
    got = score_sequences(student16, teacher16, input_ids, completion_mask, attention_mask, chunk_size=6)
    assert got.reverse_kl.dtype == torch.float32 and got.student_topk_logprobs.dtype == torch.float32
    mask = (completion_mask[:, 1:] & attention_mask[:, 1:]).bool()
    want = token_scores(full_logits(student16, input_ids, attention_mask)[:, :-1],
                        full_logits(teacher16, input_ids, attention_mask)[:, :-1], input_ids[:, 1:], mask)
    for name in PER_TOKEN_FIELDS:
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=1e-5, rtol=1e-4, msg=name)


def test_score_sequences_left_padding_matches_unpadded_rows(tiny):
    tokenizer, student, teacher = tiny
    input_ids, attention_mask, completion_mask = left_padded_batch(tokenizer.pad_token_id, len(tokenizer), seed=1)
    batch = score_sequences(student, teacher, input_ids, completion_mask, attention_mask, chunk_size=5)
    L = input_ids.shape[1]
    for b in range(3):
        n = int(attention_mask[b].sum())
        alone = score_sequences(student, teacher, input_ids[b:b + 1, L - n:], completion_mask[b:b + 1, L - n:])
        torch.testing.assert_close(batch.implicit_reward[b, L - n:], alone.implicit_reward[0], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(batch.reverse_kl[b, L - n:], alone.reverse_kl[0], atol=1e-5, rtol=1e-4)
        assert not batch.mask[b, :L - n].any()


def test_score_sequences_identical_models_and_training_flag(tiny):
    tokenizer, student, _ = tiny
    input_ids, attention_mask, completion_mask = left_padded_batch(tokenizer.pad_token_id, len(tokenizer))
    student.train()
    got = score_sequences(student, student, input_ids, completion_mask, attention_mask, chunk_size=4)
    assert student.training  # restored
    student.eval()
    assert got.reverse_kl.abs().max() < 1e-6 and got.implicit_reward.abs().max() < 1e-6
    assert got.student_entropy[got.mask].min() > 0


# ---------------------------------------------------------------------------------------------------------------
# score_rollouts


def make_rollouts(tokenizer):
    from s2dlab.core.generation import Rollout, format_prompt

    specs = [("p0", 0, "12+3=?", "12+3=15\n\\boxed{15}", True),
             ("p0", 1, "12+3=?", "12+3=14\n\\boxed{14}", True),
             ("p1", 0, "7-9+40=?", "7-9=-2\n-2+40=38\n\\boxed{38}", True),
             ("p1", 1, "7-9+40=?", "7-9=", False)]  # cut at max_new_tokens: no eos
    rollouts = []
    for pid, k, problem, completion, finished in specs:
        prompt_text = format_prompt(tokenizer, problem)
        ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if finished:
            ids = ids + [tokenizer.eos_token_id]
        rollouts.append(Rollout(prompt_id=pid, sample_idx=k, prompt=problem, prompt_text=prompt_text,
                                prompt_ids=tokenizer(prompt_text, add_special_tokens=False)["input_ids"],
                                completion_ids=ids, completion=completion, sampler_logprobs=[0.0] * len(ids),
                                finished=finished))
    return rollouts


ROW_COLUMNS = {"stage", "step", "policy", "prompt_id", "sample_idx", "prompt", "completion", "answer", "extracted",
               "correct", "reward", "finished", "length", "prompt_ids", "token_ids", "tokens", *PER_TOKEN_FIELDS,
               *TOPK_FIELDS,
               "sum_implicit_reward", "mean_reverse_kl",
               "token_bytes", "token_special", "span_starts", "span_texts"}  # see tests/test_token_text.py


def test_score_rollouts_rows(tiny):
    tokenizer, student, teacher = tiny
    rollouts = make_rollouts(tokenizer)
    rows = score_rollouts(student, teacher, tokenizer, rollouts, grade_fn=lambda c, a: extract_boxed(c) == a,
                          answers={"p0": "15", "p1": "38"}, stage="opd", step=3, top_k=4, batch_size=3)
    assert [(r["prompt_id"], r["sample_idx"]) for r in rows] == [(r.prompt_id, r.sample_idx) for r in rollouts]
    assert [r["correct"] for r in rows] == [True, False, True, False]
    assert [r["reward"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [r["extracted"] for r in rows] == ["15", "14", "38", None]
    for row, rollout in zip(rows, rollouts):
        assert set(row) == ROW_COLUMNS
        assert row["stage"] == "opd" and row["step"] == 3 and row["policy"] == "student"
        assert row["prompt_ids"] == list(rollout.prompt_ids)
        n = len(rollout.completion_ids)
        assert row["length"] == n and row["token_ids"] == rollout.completion_ids
        for name in ("tokens", *PER_TOKEN_FIELDS, *TOPK_FIELDS):
            assert len(row[name]) == n, name
        assert all(len(k) == 4 for k in row["teacher_topk_ids"] + row["student_topk_logprobs"])
        assert all(isinstance(x, float) for x in row["implicit_reward"])
        assert "".join(t for t in row["tokens"] if t != tokenizer.eos_token) == rollout.completion
        assert row["sum_implicit_reward"] == pytest.approx(sum(row["implicit_reward"]))
        assert row["mean_reverse_kl"] == pytest.approx(sum(row["reverse_kl"]) / n)

    # The same numbers as scoring the single sequence directly (batching, sorting and padding change nothing).
    r = rollouts[2]
    ids = torch.tensor([r.prompt_ids + r.completion_ids])
    cmask = torch.zeros_like(ids)
    cmask[0, len(r.prompt_ids):] = 1
    direct = score_sequences(student, teacher, ids, cmask, top_k=4)
    want = direct.implicit_reward[0, len(r.prompt_ids) - 1:]  # column j scores token j+1
    torch.testing.assert_close(torch.tensor(rows[2]["implicit_reward"]), want, atol=1e-5, rtol=1e-4)


def test_score_rollouts_parquet_round_trip(tiny, tmp_path):
    pd = pytest.importorskip("pandas")
    tokenizer, student, teacher = tiny
    rows = score_rollouts(student, teacher, tokenizer, make_rollouts(tokenizer), answers=["15", "15", "38", "38"])
    assert all(r["correct"] is None and r["answer"] is not None for r in rows)
    pd.DataFrame(rows).to_parquet(tmp_path / "r.parquet")
    back = pd.read_parquet(tmp_path / "r.parquet")
    assert list(back["length"]) == [r["length"] for r in rows]
    assert len(back["teacher_topk_ids"][0][0]) == 5
