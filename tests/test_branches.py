"""s2dlab.instruments.branches on the shipped tiny student and teacher: bounds, determinism, grading counted independently,
Wilson intervals against a root-found reference, and the probe summary against diagnostics.auroc."""

import math
from pathlib import Path

import pytest

import s2dlab
from s2dlab.core.diagnostics import auroc
from s2dlab.core.errors import InputError
from s2dlab.core.generation import sample
from s2dlab.core.models import build_char_tokenizer, load_model
from s2dlab.core.rewards import grade
from s2dlab.core.scoring import score_rollouts
from s2dlab.core.tasks.arithmetic import make_problems
from s2dlab.instruments.branches import (
    MAX_BRANCH_SAMPLES,
    MAX_BRANCH_TOKENS,
    binomial_summary,
    branch_values,
    probe_branch_values,
)

SHIPPED = Path(s2dlab.__file__).parent / "assets" / "tiny_base"


def arith_grade(completion, answer):
    return grade(completion, answer, integer_only=True)


class Recorder:
    """A grader that says True when the text holds a '9' and remembers every text it saw."""

    def __init__(self):
        self.texts = []

    def __call__(self, text, answer):
        self.texts.append(text)
        return "9" in text


@pytest.fixture(scope="module")
def setup():
    tok = build_char_tokenizer()
    student = load_model(SHIPPED / "student")
    teacher = load_model(SHIPPED / "teacher")
    records = make_problems(3, seed=0, n_terms=4, digits=1)
    rollouts = sample(student, tok, records, n=1, max_new_tokens=40, seed=0, progress=False)
    rows = score_rollouts(student, teacher, tok, rollouts, grade_fn=arith_grade,
                          answers={r["id"]: r["answer"] for r in records})
    for row, r in zip(rows, rollouts):
        row["prompt_ids"] = r.prompt_ids
    return tok, student, teacher, rows


def test_wilson_interval_against_root_finding():
    def bound(k, n, lower, z=1.96):
        # the Wilson bounds solve |p_hat - p| = z sqrt(p (1 - p) / n); bisection on each side of p_hat
        p_hat = k / n
        lo, hi = (0.0, p_hat) if lower else (p_hat, 1.0)
        f = lambda p: abs(p_hat - p) - z * math.sqrt(p * (1 - p) / n)  # noqa: E731
        for _ in range(200):
            mid = (lo + hi) / 2
            if (f(mid) > 0) == lower:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    for k, n in ((8, 10), (0, 16), (16, 16), (3, 7)):
        s = binomial_summary(k, n)
        assert s["success_rate"] == k / n and s["se"] == pytest.approx(math.sqrt(k / n * (1 - k / n) / n))
        assert s["wilson_low"] == pytest.approx(bound(k, n, True), abs=1e-9)
        assert s["wilson_high"] == pytest.approx(bound(k, n, False), abs=1e-9)


def test_default_branches_graded_and_counted(setup):
    tok, student, teacher, rows = setup
    row, t = rows[0], 5
    rec = Recorder()
    res = branch_values(student, tok, row, t, rec, n_samples=8, max_new_tokens=40, seed=3)
    y_t = row["token_ids"][t]
    cands = [b["token_id"] for b in res["branches"]]
    others = [v for v in row["teacher_topk_ids"][t] if v != y_t][:2]
    assert cands == [y_t] + others  # the student's token, then the teacher's top-2 other tokens
    assert res["branches"][0]["is_student_token"] and not res["branches"][1]["is_student_token"]
    assert res["branches"][0]["implicit_reward"] == pytest.approx(row["implicit_reward"][t])
    assert res["branches"][1]["implicit_reward"] is None  # no teacher given: only the stored teacher log-prob
    assert res["branches"][1]["teacher_logprob"] == pytest.approx(
        row["teacher_topk_logprobs"][t][row["teacher_topk_ids"][t].index(others[0])])
    assert len(rec.texts) == 3 * 8
    for k, b in enumerate(res["branches"]):
        texts = rec.texts[k * 8:(k + 1) * 8]
        head = tok.decode(row["token_ids"][:t] + [b["token_id"]], skip_special_tokens=True)
        assert all(x.startswith(head) for x in texts)
        assert b["n"] == 8 and b["successes"] == sum("9" in x for x in texts)
        assert b["wilson_low"] <= b["success_rate"] <= b["wilson_high"]


def test_teacher_given_implicit_rewards_match_scoring(setup):
    tok, student, teacher, rows = setup
    row, t = rows[1], 7
    res = branch_values(student, tok, row, t, arith_grade, n_samples=4, teacher=teacher, seed=0)
    mine = res["branches"][0]
    assert mine["implicit_reward"] == pytest.approx(row["implicit_reward"][t], abs=1e-5)
    assert mine["teacher_logprob"] == pytest.approx(row["teacher_logprob"][t], abs=1e-5)
    for b in res["branches"][1:]:
        assert b["implicit_reward"] == pytest.approx(b["teacher_logprob"] - b["student_logprob"], abs=1e-6)
        assert b["teacher_rank"] in (0, 1, 2)


def test_deterministic_for_a_seed(setup):
    tok, student, _, rows = setup
    a, b, c = Recorder(), Recorder(), Recorder()
    ra = branch_values(student, tok, rows[0], 3, a, n_samples=6, seed=11, include_prefix=True)
    rb = branch_values(student, tok, rows[0], 3, b, n_samples=6, seed=11, include_prefix=True)
    branch_values(student, tok, rows[0], 3, c, n_samples=6, seed=12, include_prefix=True)
    assert ra == rb and a.texts == b.texts
    assert a.texts != c.texts
    assert ra["prefix"]["n"] == 6 and ra["prefix"]["token_id"] is None


def test_eos_candidate_is_terminal(setup):
    tok, student, _, rows = setup
    rec = Recorder()
    res = branch_values(student, tok, rows[0], 2, rec, candidates=[tok.eos_token_id], n_samples=4)
    (b,) = res["branches"]
    assert b["terminal"] and b["n"] == 1 and len(rec.texts) == 1
    assert rec.texts[0] == tok.decode(rows[0]["token_ids"][:2])


def test_bad_input_raises_input_error(setup):
    tok, student, _, rows = setup
    row = rows[0]
    n = len(row["token_ids"])
    with pytest.raises(InputError, match=f"position={n} is outside"):
        branch_values(student, tok, row, n, arith_grade)
    with pytest.raises(InputError, match="position=-1"):
        branch_values(student, tok, row, -1, arith_grade)
    with pytest.raises(InputError, match=f"n_samples={MAX_BRANCH_SAMPLES + 1}"):
        branch_values(student, tok, row, 0, arith_grade, n_samples=MAX_BRANCH_SAMPLES + 1)
    with pytest.raises(InputError, match="max_new_tokens"):
        branch_values(student, tok, row, 0, arith_grade, max_new_tokens=MAX_BRANCH_TOKENS + 1)
    with pytest.raises(InputError, match=f"candidate token id {len(tok)} is outside"):
        branch_values(student, tok, row, 0, arith_grade, candidates=[5, len(tok)])
    with pytest.raises(InputError, match="CPU budget of 1e"):
        branch_values(student, tok, row, 0, arith_grade, cpu_budget=1e6)
    with pytest.raises(InputError, match="no prompt_ids"):
        branch_values(student, tok, {k: v for k, v in row.items() if k != "prompt_ids"}, 0, arith_grade)


def test_probe_summary(setup):
    tok, student, _, rows = setup
    out = probe_branch_values(student, tok, rows, arith_grade, positions_per_rollout=2, n_samples=3,
                              max_new_tokens=40, seed=0, progress=False)
    pos = out["positions"]
    assert len(pos) == 6 and out["summary"]["n_positions"] == 6
    for p in pos:
        row = rows[p["rollout"]]
        assert p["token_id"] == row["token_ids"][p["position"]]
        assert p["implicit_reward"] == pytest.approx(row["implicit_reward"][p["position"]])
        assert p["delta"] == pytest.approx(p["value_token"] - p["value_prefix"])
    s = out["summary"]
    assert s["n_drop"] + s["n_rise"] + s["n_flat"] == 6
    assert s["n_drop"] == sum(p["delta"] < 0 for p in pos)
    assert s["auroc_drop"] == auroc([-p["implicit_reward"] for p in pos], [p["delta"] < 0 for p in pos])
    again = probe_branch_values(student, tok, rows, arith_grade, positions_per_rollout=2, n_samples=3,
                                max_new_tokens=40, seed=0, progress=False)
    assert again == out
