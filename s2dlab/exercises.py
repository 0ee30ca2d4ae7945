"""The checks of the tutorials' "Your turn" exercises, and the scoring of their "Predict first" guesses.

Every exercise of `notebooks/NN_name.py` is a cell the learner fills in (variables `my_...`, or a function) followed
by a check cell that calls one function of this module, named after the exercise: `check_02b_1(...)` checks
exercise 02b.1. Its parameters are the notebook's own variable names (the learner's answers, then the data the
exercise is about), so the check cell reads `exercises.check_02b_1(my_rewards, my_expected_minus_r, my_reverse_kl)`.

What every check does:
- prints `⏭ NN.x skipped` while an answer is still the placeholder `...` (and returns "skipped");
- computes the expected value **itself, from the exercise's data**, by the textbook formula written out here (pair
  counting for an AUROC, `math.comb` for pass@k, sums over numpy arrays for a KL), never by calling the s2dlab
  function the notebook has in scope: copying that call into the answer cell is not a way to pass;
- accepts equivalent forms: a list, a tuple, a numpy array or a torch tensor for a vector; a Python, numpy or
  torch number, or a `fractions.Fraction`, for a number;
- tolerates the rounding the answer key prints: a number passes when it is within `REL` (1e-3) of the expected
  value, or within half a unit of the last decimal the answer key prints (`decimals`, 3 unless a check says
  otherwise) for values near 0;
- on a wrong answer raises `WrongAnswer` (an `AssertionError`), whose message names the exercise and the part that
  is wrong, and, when the answer matches a typical mistake (the other KL direction, a flipped sign, the wrong
  normalisation), says which;
- prints `✓ NN.x correct: ...` on a right answer (and returns "correct").

The examples with fixed inputs are asymmetric on purpose (02b.1's student and teacher are not a swap of each
other, so the forward KL is not the reverse KL), so that the mistake an exercise is about cannot pass.
tests/test_exercises.py runs every check with the answer key's values, a rounded value and a typical wrong answer.

`reveal` scores a "Predict first" guess against what the next cell observed; a guess is never an error.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np

from s2dlab.core.errors import S2DLabError

__all__ = ["WrongAnswer", "REL", "reveal", "CHECKS", "EXAMPLES"] + [
    "check_00_1", "check_00_2", "check_01_1", "check_01_2", "check_01_3", "check_02a_1", "check_02a_2",
    "check_02b_1", "check_02b_2", "check_02b_3", "check_02b_4", "check_03_1", "check_03_2", "check_04_1",
    "check_04_2", "check_05_1", "check_05_2"]

REL = 1e-3  # relative tolerance of every numeric check
Z95 = 1.959963984540054  # the 95% normal quantile; 1.96 passes too (relative difference 2e-5)

# The fixed inputs of the exercises that have them (the notebook cells show the same values; the test checks it).
EXAMPLES = {
    "00.1": [(7, "+", 8), (13, "-", 5), (3, "-", 5), (6, "+", 2), (15, "-", 4)],
    "00.2": {"n": 4, "c": 1},
    "01.2": [1, 0, 0, 0, 0, 0, 0, 0],
    "01.3": {"scores": [2.1, -0.3, 0.8, -1.5, 0.8, -0.2], "correct": [True, False, True, False, False, True]},
    "02a.1": {"p_teacher": [0.5, 0.45, 0.05], "p_student": [0.98, 0.01, 0.01]},
    # not a swap of each other: KL(pS||pT) = 0.757 while KL(pT||pS) = 0.566
    "02b.1": {"p_s": [0.6, 0.3, 0.1], "p_t": [0.1, 0.6, 0.3]},
    "02b.2": {"p_s": [0.6, 0.3, 0.1], "p_t": [0.1, 0.6, 0.3], "token": 1},
}


class WrongAnswer(S2DLabError, AssertionError):
    """An exercise's answer is wrong; the message names the exercise and the part that is wrong."""


# --- reading answers -------------------------------------------------------------------------------------------------

def _unfilled(*answers) -> bool:
    """True while any answer is (or holds) the placeholder `...`."""
    for a in answers:
        if a is ...:
            return True
        if isinstance(a, Mapping) and any(v is ... for v in a.values()):
            return True
        if isinstance(a, (list, tuple)) and any(v is ... for v in a):
            return True
    return False


def _skip(ex: str, what: str = "the ... above") -> str:
    print(f"⏭ {ex} skipped: replace {what}, then run both cells again.")
    return "skipped"


def _correct(ex: str, message: str) -> str:
    print(f"✓ {ex} correct: {message}")
    return "correct"


def _number(ex: str, value, what: str) -> float:
    """`value` as a float: a Python, numpy or torch number, or a Fraction; WrongAnswer for anything else."""
    if isinstance(value, bool):
        raise WrongAnswer(f"{ex}: {what} is {value!r}, a True/False; give a number")
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise WrongAnswer(f"{ex}: {what} holds {value.size} values; give one number")
        value = value.reshape(()).item()
    if isinstance(value, (numbers.Real, Fraction)):
        out = float(value)
        if not math.isfinite(out):
            raise WrongAnswer(f"{ex}: {what} is {out}; give a finite number")
        return out
    raise WrongAnswer(f"{ex}: {what} is {type(value).__name__} {value!r}; give a number")


def _vector(ex: str, value, n: int, what: str) -> np.ndarray:
    """`value` as a float vector of length `n`: a list, tuple, numpy array or torch tensor."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise WrongAnswer(f"{ex}: {what} is {type(value).__name__}; give {n} numbers in a list")
    try:
        out = np.asarray([_number(ex, v, f"{what}[{i}]") for i, v in enumerate(np.asarray(value, dtype=object).ravel())],
                         dtype=float)
    except WrongAnswer:
        raise
    if out.size != n:
        raise WrongAnswer(f"{ex}: {what} holds {out.size} numbers; give {n}")
    return out


def _tol(want: float, decimals: int) -> float:
    return max(REL * abs(want), 0.5 * 10.0 ** -decimals + 1e-12)


def _close(mine, want, decimals: int = 3) -> bool:
    mine, want = np.atleast_1d(np.asarray(mine, float)), np.atleast_1d(np.asarray(want, float))
    return mine.shape == want.shape and all(abs(m - w) <= _tol(w, decimals) for m, w in zip(mine, want))


def _fmt(x, digits: int = 4) -> str:
    if np.ndim(x):
        return "[" + ", ".join(f"{v:.{digits}g}" for v in np.asarray(x, float).ravel()) + "]"
    return f"{x:.{digits}g}"


# --- 00 · Quickstart -------------------------------------------------------------------------------------------------

def _slip_rule(v: int, op: str, b: int):
    """The slip rule of the task, written out (notebook 00's table): `(kind, wrong result)` or None."""
    if op == "+":
        return ("carry", v + b - 10) if v >= 0 and v % 10 + b >= 10 else None
    if op == "-":
        if v >= 10 and v % 10 < b:
            return "borrow", v - b + 10  # the borrowed ten is not taken: the tens digit stays
        if 0 <= v < b:
            return "sign", b - v  # the minus sign is dropped
    return None


def _as_slip(ex: str, step: str, value):
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise WrongAnswer(f"{ex}: for {step} you wrote {value!r}; write None or a pair (kind, wrong result)")
    kind, result = value
    if not isinstance(kind, str):
        raise WrongAnswer(f"{ex}: for {step} the kind {kind!r} is not one of 'carry', 'borrow', 'sign'")
    return kind.strip().lower(), _number(ex, result, f"the wrong result for {step}")


def check_00_1(my_slips) -> str:
    """00.1: for each step `(v, op, b)`, None or `(kind, wrong result)` (a list works as well as a tuple)."""
    ex = "00.1"
    if _unfilled(my_slips):
        return _skip(ex, "every ... in the dictionary above")
    if not isinstance(my_slips, Mapping):
        raise WrongAnswer(f"{ex}: my_slips is {type(my_slips).__name__}; keep the dictionary and fill in its values")
    missing = [s for s in EXAMPLES[ex] if s not in my_slips]
    if missing:
        raise WrongAnswer(f"{ex}: the step(s) {', '.join(f'{v}{op}{b}' for v, op, b in missing)} are missing from "
                          "my_slips; keep every key of the dictionary")
    for v, op, b in EXAMPLES[ex]:
        step = f"{v}{op}{b}"
        mine, want = _as_slip(ex, step, my_slips[(v, op, b)]), _slip_rule(v, op, b)
        if want is None and mine is not None:
            raise WrongAnswer(f"{ex}: {step}: you wrote a {mine[0]} slip, but no slip is possible at this step "
                              "(check the 'when' column: does it cross a ten? borrow? go below zero?)")
        if want is not None and mine is None:
            raise WrongAnswer(f"{ex}: {step}: you wrote None, but a slip is possible at this step (which row of the "
                              "table applies?)")
        if want is None:
            continue
        if mine[0] != want[0]:
            raise WrongAnswer(f"{ex}: {step}: the kind {mine[0]!r} is wrong (the kinds are 'carry', 'borrow', "
                              "'sign'; which condition of the table does this step meet?)")
        if mine[1] != want[1]:
            right = v + b if op == "+" else v - b
            hint = " (that is the right result, not the slip)" if mine[1] == right else ""
            raise WrongAnswer(f"{ex}: {step}: the kind is right but the wrong result {mine[1]:g} is not what the "
                              f"{want[0]} slip writes{hint}; see the table's example column")
    return _correct(ex, "every step, kind and wrong result")


def check_00_2(my_pass_at_1, my_pass_at_2) -> str:
    """00.2: pass@1 and pass@2 of a problem with c = 1 correct of n = 4 samples."""
    ex = "00.2"
    if _unfilled(my_pass_at_1, my_pass_at_2):
        return _skip(ex)
    n, c = EXAMPLES[ex]["n"], EXAMPLES[ex]["c"]
    p1, p2 = _number(ex, my_pass_at_1, "pass@1"), _number(ex, my_pass_at_2, "pass@2")
    want1 = 1 - math.comb(n - c, 1) / math.comb(n, 1)
    want2 = 1 - math.comb(n - c, 2) / math.comb(n, 2)
    if not _close(p1, want1):
        raise WrongAnswer(f"{ex}: pass@1 = {p1:.4g} is not right; with k = 1, pass@k is the share of correct samples")
    if not _close(p2, want2):
        hint = ""
        if _close(p2, 1 - (1 - c / n) ** 2):
            hint = " (that is 1 - (3/4)^2: drawing with replacement; pass@k draws k different samples)"
        raise WrongAnswer(f"{ex}: pass@2 = {p2:.4g} is not right{hint}; count the pairs of the 4 samples (C(4,2)) "
                          "and the pairs with no correct sample (C(3,2))")
    return _correct(ex, f"pass@1 = {want1:g}, pass@2 = {want2:g}")


# --- 01 · Teacher GRPO -----------------------------------------------------------------------------------------------

# (completion, answer, reward): the cases a reward function of the task must get right, and what each tests
REWARD_CASES = [
    ("7+8=5\n5-3=2\n\\boxed{2}", "2", 1.0, "a worked solution whose box holds the answer"),
    ("\\boxed{12}", "12", 1.0, "the answer alone in a box"),
    ("\\boxed{13}", "12", 0.0, "a box with the wrong number"),
    ("3-5=-2\n\\boxed{-2}", "-2", 1.0, "a negative answer"),
    ("The answer is 12", "12", 0.0, "the right number with no box"),
    ("\\boxed{5+7}", "12", 0.0, "the question copied into the box (equal in value, not a plain integer)"),
    ("\\boxed{11}\n\\boxed{12}", "12", 1.0, "two boxes: only the last one counts"),
    ("\\boxed{12}\n\\boxed{11}", "12", 0.0, "two boxes, the last one wrong"),
    ("\\boxed{12", "12", 0.0, "a box that never closes (the completion was cut off)"),
]


def check_01_1(my_reward: Callable) -> str:
    """01.1: `my_reward(completion, answer) -> 1.0 or 0.0` on the cases of REWARD_CASES (True/False pass too)."""
    ex = "01.1"
    if not callable(my_reward):
        raise WrongAnswer(f"{ex}: my_reward is {type(my_reward).__name__}; keep the `def my_reward(...)` cell")
    results = []
    for completion, answer, want, what in REWARD_CASES:
        try:
            got = my_reward(completion, answer)
        except Exception as err:  # noqa: BLE001 - a learner's function may fail on any input; say which
            raise WrongAnswer(f"{ex}: my_reward raised {type(err).__name__}: {err} on {what}: {completion!r}; a "
                              "reward function must return 0.0 for any text it cannot read") from None
        if got is None and not results:
            return _skip(ex, "the ... in the body of my_reward")
        results.append((got, want, what, completion, answer))
    for got, want, what, completion, answer in results:
        got = float(got) if isinstance(got, (bool, np.bool_)) else got  # True/False is a reward of 1/0
        value = _number(ex, got, f"my_reward({completion!r}, {answer!r})")
        if value != want:
            raise WrongAnswer(f"{ex}: my_reward gives {value:g} for {what}, {completion!r} with answer {answer!r}; "
                              f"it should be {want:g}")
    return _correct(ex, f"all {len(REWARD_CASES)} cases, from a worked solution to a box that never closes")


def _grpo_advantages(rewards, eps: float = 1e-4) -> np.ndarray:
    r = np.asarray(rewards, float)
    return (r - r.mean()) / (r.std(ddof=1) + eps)


def check_01_2(my_advantages) -> str:
    """01.2: the 8 GRPO advantages of the group with rewards [1, 0, 0, 0, 0, 0, 0, 0]."""
    ex = "01.2"
    if _unfilled(my_advantages):
        return _skip(ex, "the ... above with your 8 advantages")
    rewards = EXAMPLES[ex]
    mine = _vector(ex, my_advantages, len(rewards), "my_advantages")
    want = _grpo_advantages(rewards)
    if _close(mine, want):
        return _correct(ex, f"the right completion gets {want[0]:+.3f}, each wrong one {want[1]:+.3f}: a rare success "
                            "is pushed up seven times harder than each failure is pushed down")
    r = np.asarray(rewards, float)
    if _close(mine, (r - r.mean()) / (r.std() + 1e-4)):
        raise WrongAnswer(f"{ex}: you divided by the std without Bessel's correction (by G = 8); TRL divides by "
                          "G - 1 = 7")
    if _close(mine, r - r.mean()):
        raise WrongAnswer(f"{ex}: you subtracted the group mean but did not divide by the group's std (+ 1e-4)")
    if _close(mine, -want):
        raise WrongAnswer(f"{ex}: the signs are flipped: reward minus the group mean, not the mean minus the reward")
    wrong = [i for i in range(len(want)) if not _close(mine[i], want[i])]
    raise WrongAnswer(f"{ex}: advantages {wrong} are off; subtract the group mean, then divide by the std with "
                      "Bessel's correction (divide by G - 1 = 7) plus 1e-4")


def _auroc_by_pairs(scores, correct) -> float:
    pos = [s for s, c in zip(scores, correct) if c]
    neg = [s for s, c in zip(scores, correct) if not c]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def check_01_3(my_auroc) -> str:
    """01.3: the AUROC of six scored rollouts, counted by pairs (a tie counts one half)."""
    ex = "01.3"
    if _unfilled(my_auroc):
        return _skip(ex, "the ... above with your AUROC")
    mine = _number(ex, my_auroc, "my_auroc")
    scores, correct = EXAMPLES[ex]["scores"], EXAMPLES[ex]["correct"]
    want = _auroc_by_pairs(scores, correct)
    if _close(mine, want):
        return _correct(ex, f"{want:.4f} = 7.5 of 9 (correct, incorrect) pairs won, the tie counted one half")
    n = sum(correct) * (len(correct) - sum(correct))
    if not 0 <= mine <= 1:
        raise WrongAnswer(f"{ex}: {mine:.4g} is not a probability; divide the pairs won by the {n} pairs")
    if _close(mine, want - 0.5 / n) or _close(mine, want + 0.5 / n):
        raise WrongAnswer(f"{ex}: {mine:.4g}: the tie (0.8 against 0.8) counts one half, not "
                          f"{'0' if mine < want else '1'}")
    if _close(mine, 1 - want):
        raise WrongAnswer(f"{ex}: {mine:.4g} counts the pairs where the incorrect rollout scores higher")
    raise WrongAnswer(f"{ex}: {mine:.4g} is not the AUROC; there are 3 x 3 = {n} (correct, incorrect) pairs: count "
                      "those where the correct one scores higher, add one half for each tie, divide by 9")


# --- 02a · Forward-KL warmup -----------------------------------------------------------------------------------------

def _kl(p, q) -> float:
    p, q = np.asarray(p, float), np.asarray(q, float)
    return float(np.sum(p * (np.log(p) - np.log(q))))


def check_02a_1(my_forward_kl, my_reverse_kl, my_cross_entropy) -> str:
    """02a.1: KL(pT||pS), KL(pS||pT) and H(pT, pS) in nats for pT = [0.5, 0.45, 0.05], pS = [0.98, 0.01, 0.01]."""
    ex = "02a.1"
    if _unfilled(my_forward_kl, my_reverse_kl, my_cross_entropy):
        return _skip(ex, "the three ... above")
    pT, pS = np.array(EXAMPLES[ex]["p_teacher"]), np.array(EXAMPLES[ex]["p_student"])
    fwd, rev = _kl(pT, pS), _kl(pS, pT)
    h_t = float(-np.sum(pT * np.log(pT)))
    ce = float(-np.sum(pT * np.log(pS)))
    mine = [_number(ex, x, name) for x, name in ((my_forward_kl, "the forward KL"), (my_reverse_kl, "the reverse KL"),
                                                 (my_cross_entropy, "the cross-entropy"))]
    if _close(mine[:2], [rev, fwd]) and not _close(fwd, rev):
        raise WrongAnswer(f"{ex}: you swapped the two directions: the forward KL(pT||pS) weights log(pT/pS) by the "
                          "teacher's probabilities")
    if any(_close(m, w / math.log(2)) for m, w in zip(mine, (fwd, rev, ce))):
        raise WrongAnswer(f"{ex}: that is in bits (log base 2); use the natural log (np.log) for nats")
    for m, w, name, hint in ((mine[0], fwd, "forward KL(pT||pS)", "weights log(pT/pS) by the teacher's probabilities"),
                             (mine[1], rev, "reverse KL(pS||pT)", "weights log(pS/pT) by the student's probabilities"),
                             (mine[2], ce, "cross-entropy H(pT, pS)", "is -sum pT log pS (= H(pT) + KL(pT||pS))")):
        if not _close(m, w):
            raise WrongAnswer(f"{ex}: the {name} {m:.4g} is off; it {hint}")
    return _correct(ex, f"forward {fwd:.3f}, reverse {rev:.3f} nats; cross-entropy {ce:.3f} = H(pT) {h_t:.3f} + "
                        f"forward KL {fwd:.3f}. The forward KL punishes the missing mode: log(0.45/0.01) at weight 0.45")


def _token_mean(rows) -> float:
    values = [float(x) for r in rows for x in r["reverse_kl"]]
    if not values:
        raise ValueError("no tokens")
    return math.fsum(values) / len(values)


def check_02a_2(my_c2_before, my_c2_after, my_c2_change, before_rows, after_rows) -> str:
    """02a.2: the token-weighted mean reverse KL of `before_rows` and `after_rows`, and after minus before."""
    ex = "02a.2"
    if _unfilled(my_c2_before, my_c2_after, my_c2_change):
        return _skip(ex, "the three ... above")
    mine = [_number(ex, x, n) for x, n in ((my_c2_before, "my_c2_before"), (my_c2_after, "my_c2_after"),
                                          (my_c2_change, "my_c2_change"))]
    want = [_token_mean(before_rows), _token_mean(after_rows)]
    want.append(want[1] - want[0])
    per_rollout = [float(np.mean([np.mean(r["reverse_kl"]) for r in rows if len(r["reverse_kl"])]))
                   for rows in (before_rows, after_rows)]
    for i, (name, rows) in enumerate((("before", before_rows), ("after", after_rows))):
        if not _close(mine[i], want[i]):
            hint = ("that is the mean of per-rollout means, which weighs a short rollout as much as a long one"
                    if _close(mine[i], per_rollout[i]) else "sum reverse_kl over every token of every rollout, then "
                    "divide by the number of tokens")
            raise WrongAnswer(f"{ex}: {name} = {mine[i]:.4g} is off: {hint}")
    if not _close(mine[2], want[2]):
        hint = "; you gave before minus after" if _close(mine[2], -want[2]) else ""
        raise WrongAnswer(f"{ex}: the change {mine[2]:.4g} is off: it is after minus before{hint}")
    return _correct(ex, f"{want[0]:.3f} -> {want[1]:.3f} nats/token ({want[2]:+.3f}); the mean of per-rollout means "
                        f"would say {per_rollout[0]:.3f} -> {per_rollout[1]:.3f}")


# --- 02b · On-policy distillation ------------------------------------------------------------------------------------

def check_02b_1(my_rewards, my_expected_minus_r, my_reverse_kl) -> str:
    """02b.1: the implicit rewards of the three tokens, E_{y~pS}[-r] and KL(pS||pT), for EXAMPLES["02b.1"]."""
    ex = "02b.1"
    if _unfilled(my_rewards, my_expected_minus_r, my_reverse_kl):
        return _skip(ex, "the three ... above")
    pS, pT = np.array(EXAMPLES[ex]["p_s"]), np.array(EXAMPLES[ex]["p_t"])
    r = np.log(pT) - np.log(pS)
    e_minus_r = float(np.sum(pS * -r))
    rev, fwd = _kl(pS, pT), _kl(pT, pS)
    rewards = _vector(ex, my_rewards, 3, "my_rewards")
    if not _close(rewards, r):
        if _close(rewards, -r):
            raise WrongAnswer(f"{ex}: the rewards have the wrong sign: r = log pT(y) - log pS(y), teacher first")
        if _close(rewards, pT / pS) or _close(rewards, np.log(pT / pS) / math.log(2)):
            raise WrongAnswer(f"{ex}: the rewards are log-ratios in nats: np.log(pT) - np.log(pS)")
        raise WrongAnswer(f"{ex}: the implicit rewards {_fmt(rewards, 3)} are off; r = log pT(y) - log pS(y) for "
                          "each token y")
    e = _number(ex, my_expected_minus_r, "my_expected_minus_r")
    if not _close(e, e_minus_r):
        if _close(e, -fwd):
            raise WrongAnswer(f"{ex}: E[-r] is weighted by the teacher's probabilities there; the student samples y, "
                              "so weight each -r by pS(y)")
        if _close(e, -e_minus_r):
            raise WrongAnswer(f"{ex}: that is E[r]; the exercise asks for E[-r]")
        raise WrongAnswer(f"{ex}: E[-r] = {e:.4g} is off; weight each token's -r by the student's probability of "
                          "sampling it")
    kl = _number(ex, my_reverse_kl, "my_reverse_kl")
    if not _close(kl, rev):
        if _close(kl, fwd):
            raise WrongAnswer(f"{ex}: {kl:.4g} is the forward KL(pT||pS); the reverse KL(pS||pT) weights log(pS/pT) by "
                              "the student's probabilities")
        raise WrongAnswer(f"{ex}: KL(pS||pT) = {kl:.4g} is off; it is sum_y pS(y) log(pS(y) / pT(y))")
    return _correct(ex, f"rewards {_fmt(r, 3)}; E[-r] = KL(pS||pT) = {rev:.4f} nats (the forward KL would be "
                        f"{fwd:.4f})")


def check_02b_2(my_gradient) -> str:
    """02b.2: the gradient of `-A log pS(y)` (A held fixed) with respect to the three logits, y = 1."""
    ex = "02b.2"
    if _unfilled(my_gradient):
        return _skip(ex)
    pS, pT, y = np.array(EXAMPLES[ex]["p_s"]), np.array(EXAMPLES[ex]["p_t"]), EXAMPLES[ex]["token"]
    A = math.log(pT[y]) - math.log(pS[y])
    onehot = np.eye(len(pS))[y]
    want = -A * (onehot - pS)
    mine = _vector(ex, my_gradient, len(pS), "my_gradient")
    if _close(mine, want):
        return _correct(ex, f"{_fmt(want, 3)}: gradient descent moves the logits against it, so the sampled token's "
                            "logit goes up, because its A = log 2 is positive")
    if _close(mine, -want):
        raise WrongAnswer(f"{ex}: the sign is flipped: the loss is -A log pS(y), so its gradient is -A (onehot(y) - pS)"
                          " with A = log pT(y) - log pS(y) > 0 here")
    if _close(mine, -A * onehot):
        raise WrongAnswer(f"{ex}: d log pS(y) / dz is onehot(y) - pS, not onehot(y): the softmax couples every logit")
    raise WrongAnswer(f"{ex}: {_fmt(mine, 3)} is not the gradient; it is -A (onehot(y) - pS) with "
                      "A = log pT(1) - log pS(1)")


def _loss_cases():
    """Fixed [B, C, V] log-probabilities and a mask with padding, for checking an OPD loss function."""
    import torch

    g = torch.Generator().manual_seed(21)
    B, C, V = 3, 4, 6
    logp_S = torch.randn(B, C, V, generator=g, dtype=torch.float64).mul(1.5).log_softmax(-1)
    logp_T = torch.randn(B, C, V, generator=g, dtype=torch.float64).mul(1.5).log_softmax(-1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float64)
    return logp_S.float(), logp_T.float(), mask.float()


def check_02b_3(my_opd_loss: Callable) -> str:
    """02b.3: `my_opd_loss(logp_S, logp_T, mask)`: the mean over real tokens of KL(pS||pT), differentiable."""
    ex = "02b.3"
    import torch

    if not callable(my_opd_loss):
        raise WrongAnswer(f"{ex}: my_opd_loss is {type(my_opd_loss).__name__}; keep the `def my_opd_loss(...)` cell")
    lS, lT, mask = _loss_cases()
    z = lS.clone().requires_grad_(True)
    try:
        got = my_opd_loss(z.log_softmax(-1), lT, mask)
    except Exception as err:  # noqa: BLE001 - the learner's function; say what failed
        raise WrongAnswer(f"{ex}: my_opd_loss raised {type(err).__name__}: {err} on log-probs of shape "
                          f"{tuple(lS.shape)} and a mask of shape {tuple(mask.shape)}") from None
    if got is None:
        return _skip(ex, "the ... in the body of my_opd_loss")
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise WrongAnswer(f"{ex}: my_opd_loss returned {type(got).__name__}; return one number as a torch tensor "
                          "(a mean), so that .backward() can train on it")
    if got.grad_fn is None:
        raise WrongAnswer(f"{ex}: the loss carries no gradient: compute it from logp_S with torch operations "
                          "(no .item(), no numpy, no torch.no_grad())")
    # the expected value in numpy, float64: KL(pS||pT) per position, mean over the positions the mask keeps
    pS, S, T, m = np.exp(lS.double().numpy()), lS.double().numpy(), lT.double().numpy(), mask.double().numpy()
    per_pos = (pS * (S - T)).sum(-1)
    want = float((per_pos * m).sum() / m.sum())
    value = float(got.detach())
    if not _close(value, want, decimals=6):
        pT = np.exp(T)
        forward = float(((pT * (T - S)).sum(-1) * m).sum() / m.sum())
        if _close(value, forward, decimals=6):
            raise WrongAnswer(f"{ex}: that is the forward KL(pT||pS), weighted by the teacher; OPD minimises the reverse "
                              "KL(pS||pT) = sum_v pS(v) (log pS(v) - log pT(v)) on the student's own samples")
        if _close(value, float(per_pos.mean()), decimals=6):
            raise WrongAnswer(f"{ex}: the mean runs over padded positions too; keep only the real tokens (mask == 1)")
        if _close(value, float((per_pos * m).sum()), decimals=6):
            raise WrongAnswer(f"{ex}: that is the sum over tokens; divide by the number of real tokens (mask.sum())")
        if _close(value, float(((per_pos * m).sum(1) / m.sum(1)).mean()), decimals=6):
            raise WrongAnswer(f"{ex}: that is the mean of per-sequence means; take the mean over every real token of "
                              "the batch (the library's loss does)")
        raise WrongAnswer(f"{ex}: my_opd_loss gives {value:.5f} where the mean reverse KL over real tokens is "
                          f"{want:.5f}: sum_v pS(v) (log pS(v) - log pT(v)) per position, then the masked mean")
    (grad,) = torch.autograd.grad(got, z)
    # d KL / d z at one position: pS * (log pS - log pT - KL), scaled by the position's weight in the mean
    want_grad = pS * (S - T - per_pos[..., None]) * (m / m.sum())[..., None]
    if not np.allclose(grad.double().numpy(), want_grad, atol=1e-5):
        raise WrongAnswer(f"{ex}: the value is right but the gradient is not that of the reverse KL; do not detach "
                          "logp_S inside the loss")
    return _correct(ex, f"{want:.5f} nats/token on the check's batch, and its gradient is that of the reverse KL")


def _reverse_kl_on(model, teacher, rollouts) -> np.ndarray:
    """KL(p_model || p_teacher) at every completion token of `rollouts`, one value per token (float64)."""
    import torch

    out = []
    for r in rollouts:  # one at a time: no padding to get wrong, and these are small models
        ids = torch.tensor([list(r.prompt_ids) + list(r.completion_ids)])
        P, C = len(r.prompt_ids), len(r.completion_ids)
        if not C:
            continue
        with torch.no_grad():
            a, b = model(input_ids=ids).logits[0, P - 1:P - 1 + C], teacher(input_ids=ids).logits[0, P - 1:P - 1 + C]
        V = min(a.shape[-1], b.shape[-1])
        ls, lt = a[:, :V].double().log_softmax(-1), b[:, :V].double().log_softmax(-1)
        out.append((ls.exp() * (ls - lt)).sum(-1).numpy())
    return np.concatenate(out)


def check_02b_4(my_losses, my_student, library_losses, OPD_STEPS: int, start_student, teacher,  # noqa: N803
                probe_rollouts) -> str:
    """02b.4: the learner's OPD loop: its per-step losses, and where it took the student.

    Two questions, each answered independently of the loop's own code:
    - **the loss**: `OPD_STEPS` finite, non-negative values whose median over the first quarter is within a factor
      of 1.5 of the library stage's over its first steps (the same warmed-up student, teacher, batch size and
      learning rate): a loop that trains the forward KL or normalises differently lands elsewhere;
    - **the direction**: on `probe_rollouts` (fixed rollouts of the starting student, sampled before the loop), the
      reverse KL to the teacher of `my_student` against `start_student`, token by token (a paired difference, so
      the noise of sampling cancels): OPD must have lowered it, with the upper end of the 95% interval below 0. A
      loop that steps uphill, or never steps, fails here.
    The step-to-step losses are too noisy for a trend in a few dozen steps (one batch of 32 rollouts can double its
    step's loss), which is why the direction is judged on the probe.
    """
    ex = "02b.4"
    if _unfilled(my_losses) or (isinstance(my_losses, (list, tuple)) and not my_losses):
        return _skip(ex, "the ... in the loop's body (my_losses is still empty)")
    steps = int(OPD_STEPS)
    n = len(my_losses) if isinstance(my_losses, (Sequence, np.ndarray)) else -1
    losses = _vector(ex, my_losses, n, "my_losses")
    if len(losses) != steps:
        raise WrongAnswer(f"{ex}: my_losses holds {len(losses)} values; the loop should append one loss per step, "
                          f"{steps} steps")
    if (losses < -1e-6).any():
        raise WrongAnswer(f"{ex}: a loss is negative ({losses.min():.4g}); a KL is never below 0: check the "
                          "direction of log pS - log pT")
    lib = np.asarray(library_losses, float)[:steps]
    q = max(1, steps // 4)
    mine_first, lib_first = float(np.median(losses[:q])), float(np.median(lib[:q]))
    if not lib_first / 1.5 <= mine_first <= lib_first * 1.5:
        raise WrongAnswer(f"{ex}: the median loss of your first {q} steps is {mine_first:.4f} nats/token where the "
                          f"library's stage has {lib_first:.4f} from the same student; is it the reverse KL, a mean "
                          "over real completion tokens, at the warmed-up student?")
    before = _reverse_kl_on(start_student, teacher, probe_rollouts)
    after = _reverse_kl_on(my_student, teacher, probe_rollouts)
    d = after - before
    half = Z95 * d.std(ddof=1) / math.sqrt(len(d))
    if not d.mean() + half < 0:
        what = "went up" if d.mean() - half > 0 else "did not measurably change"
        raise WrongAnswer(f"{ex}: on {len(d)} tokens of fixed rollouts, your student's reverse KL to the teacher "
                          f"{what} ({before.mean():.4f} -> {after.mean():.4f} nats/token, change {d.mean():+.4f} "
                          f"± {half:.4f}): check that the optimizer steps on the loss (not -loss), every step, with "
                          "zero_grad before backward")
    return _correct(ex, f"your loss starts where the library's does (median {mine_first:.4f} against {lib_first:.4f}); "
                        f"on fixed rollouts your student's reverse KL to the teacher went {before.mean():.4f} -> "
                        f"{after.mean():.4f} nats/token ({d.mean():+.4f} ± {half:.4f})")


# --- 03 · Student GRPO -----------------------------------------------------------------------------------------------

def check_03_1(my_all_right, my_all_wrong, my_dead_share, p_bar: float, G: int) -> str:
    """03.1: the expected shares of groups all right `p^G`, all wrong `(1-p)^G`, and dead (their sum), p = p_bar.

    p rounded to the 3 decimals the notebook prints passes too. The parts are asked apart because at the
    accuracies of stage 3 the all-wrong share is tiny: a dead share that forgets it is within rounding of the
    right one, but not of the sum of the learner's own two parts.
    """
    ex = "03.1"
    if _unfilled(my_all_right, my_all_wrong, my_dead_share):
        return _skip(ex, "the three ... above")
    right_, wrong_, dead_ = (_number(ex, x, n) for x, n in ((my_all_right, "my_all_right"),
                                                           (my_all_wrong, "my_all_wrong"),
                                                           (my_dead_share, "my_dead_share")))
    p, G = float(p_bar), int(G)
    printed = round(p, 3)  # what the notebook prints; the exact p_bar and any p that rounds to it pass
    lo, hi = min(p, printed - 5e-4) - 1e-9, max(p, printed + 5e-4) + 1e-9

    def p_from(value, which):  # the p that gives `value` as p^G (which="right") or (1-p)^G (which="wrong")
        if value <= 0 or value > 1:
            return None
        root = value ** (1 / G)
        return root if which == "right" else 1 - root

    for value, which, name, formula in ((right_, "right", "all right", "p^G"), (wrong_, "wrong", "all wrong", "(1-p)^G")):
        q = p_from(value, which)
        # REL on the share is REL / G on p; the band is the rounding of p
        if q is None or not lo - REL * q / G <= q <= hi + REL * q / G:
            swapped = p_from(value, "wrong" if which == "right" else "right")
            hint = (f"; that is the other part, {'(1-p)^G' if which == 'right' else 'p^G'}"
                    if swapped is not None and lo <= swapped <= hi else "")
            raise WrongAnswer(f"{ex}: the share {name}, {value:.4g}, is not {formula} at p = p_bar ({p:.4f}, printed "
                              f"{printed:.3f}) and G = {G}{hint}")
    if not _close(dead_, right_ + wrong_, decimals=9):
        if _close(dead_, right_, decimals=9) or _close(dead_, wrong_, decimals=9):
            raise WrongAnswer(f"{ex}: the dead share {dead_:.4g} counts only the all-{'right' if _close(dead_, right_, decimals=9) else 'wrong'} "
                              "groups; all-right and all-wrong groups are both dead")
        if _close(dead_, 1 - right_ - wrong_, decimals=9):
            raise WrongAnswer(f"{ex}: {dead_:.4g} is the share of live groups, 1 - (p^G + (1-p)^G)")
        raise WrongAnswer(f"{ex}: the dead share {dead_:.4g} is not your all-right share plus your all-wrong share")
    want = p ** G + (1 - p) ** G
    return _correct(ex, f"{want:.4f} at p = {p:.4f}, G = {G}: {p ** G:.4f} of groups expected all right, "
                        f"{(1 - p) ** G:.2g} all wrong")


def _interval(scores) -> tuple[float, float, float]:
    s = np.asarray(scores, float)
    half = Z95 * s.std(ddof=1) / math.sqrt(len(s))
    return float(s.mean()), float(s.mean() - half), float(s.mean() + half)


def check_03_2(my_interval, per_problem: Mapping, k: int) -> str:
    """03.2: the 95% interval `mean ± 1.96 sd / sqrt(P)` of the per-problem scores `correct / k`."""
    ex = "03.2"
    if _unfilled(my_interval):
        return _skip(ex, "the ... above with [low, high]")
    mine = _vector(ex, my_interval, 2, "my_interval")
    counts = np.array([float(v) for v in per_problem.values()])
    scores = counts / k
    mean, lo, hi = _interval(scores)
    if _close(mine, [lo, hi], decimals=4):
        return _correct(ex, f"[{lo:.4f}, {hi:.4f}] around the mean {mean:.4f} of {len(scores)} problems")
    if mine[0] > mine[1]:
        raise WrongAnswer(f"{ex}: low {mine[0]:.4g} is above high {mine[1]:.4g}; give [low, high]")
    if mine[1] > 1.5 and _close(mine / 100, [lo, hi], decimals=4):
        raise WrongAnswer(f"{ex}: those are percentages; give fractions in [0, 1]")
    if mine[1] > 1.5:
        raise WrongAnswer(f"{ex}: {_fmt(mine)} is beyond 1: divide each problem's count by k = {k} first")
    sd, P = scores.std(ddof=1), len(scores)
    if _close(mine, [mean - sd / math.sqrt(P), mean + sd / math.sqrt(P)], decimals=4):
        raise WrongAnswer(f"{ex}: that is ± one standard error; a 95% interval is ± 1.96 standard errors")
    if _close(mine, [mean - Z95 * sd, mean + Z95 * sd], decimals=4):
        raise WrongAnswer(f"{ex}: ± 1.96 sd is the spread of the problems; the interval of their mean divides by "
                          f"sqrt(P) = sqrt({P})")
    if not _close((mine[0] + mine[1]) / 2, mean, decimals=4):
        raise WrongAnswer(f"{ex}: the interval is not centred on the mean score {mean:.4f}: the mean of correct / k "
                          "over the problems")
    raise WrongAnswer(f"{ex}: the width is off: 1.96 times sd(scores, ddof=1) / sqrt(P) on each side")


def check_04_1(my_difference, my_difference_interval, a_counts: Mapping, b_counts: Mapping, k: int) -> str:
    """04.1: the paired difference of two arms' per-problem scores (a minus b) and its 95% interval."""
    ex = "04.1"
    if _unfilled(my_difference, my_difference_interval):
        return _skip(ex, "the two ... above")
    if set(a_counts) != set(b_counts):
        raise ValueError("the two arms were evaluated on different problems")
    ids = sorted(a_counts)
    a = np.array([a_counts[i] for i in ids], float) / k
    b = np.array([b_counts[i] for i in ids], float) / k
    mean, lo, hi = _interval(a - b)
    diff = _number(ex, my_difference, "my_difference")
    if not _close(diff, mean, decimals=4):
        if _close(diff, -mean, decimals=4):
            raise WrongAnswer(f"{ex}: the sign is flipped: the difference is a minus b (bridge_1h_stage3 minus "
                              "cold_grpo)")
        if _close(diff, mean * k, decimals=4):
            raise WrongAnswer(f"{ex}: divide each problem's count by k = {k} first: differences in fractions")
        raise WrongAnswer(f"{ex}: the mean difference {diff:.4g} is off: the mean over problems of "
                          "(a_counts - b_counts) / k")
    iv = _vector(ex, my_difference_interval, 2, "my_difference_interval")
    if _close(iv, [lo, hi], decimals=4):
        return _correct(ex, f"{100 * mean:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    half_unpaired = Z95 * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    if _close(iv, [mean - half_unpaired, mean + half_unpaired], decimals=4):
        raise WrongAnswer(f"{ex}: that interval treats the arms as independent; pair the problems first (one "
                          "difference per problem), then 1.96 sd / sqrt(P) of those differences")
    if iv[0] > iv[1]:
        raise WrongAnswer(f"{ex}: give [low, high], low first")
    raise WrongAnswer(f"{ex}: the interval is off: mean ± 1.96 sd(d, ddof=1) / sqrt(P), d the per-problem differences")


def check_04_2(my_student_sequences, cfg) -> str:
    """04.2: the sequences the student of bridge_1h_stage3 trained on: warmup + OPD + stage 3, from `cfg`."""
    ex = "04.2"
    if _unfilled(my_student_sequences):
        return _skip(ex)
    mine = _number(ex, my_student_sequences, "my_student_sequences")
    w, o, s = cfg.fkl_warmup, cfg.opd, cfg.student_grpo
    parts = {"fkl_warmup": w.steps * w.batch_size, "opd": o.steps * o.batch_size,
             "student_grpo": s.steps * s.prompts_per_step * s.num_generations}
    want = sum(parts.values())
    if mine == want:
        return _correct(ex, " + ".join(f"{v:,} ({k})" for k, v in parts.items()) + f" = {want:,} sequences")
    if mine == want - parts["student_grpo"] + s.steps * s.prompts_per_step:
        raise WrongAnswer(f"{ex}: stage 3 trains on prompts_per_step x num_generations completions per step, not "
                          "on the prompts alone")
    for stage, v in parts.items():
        if mine == want - v:
            raise WrongAnswer(f"{ex}: {mine:,.0f} leaves out {stage}; the arm's student trains in three stages")
    raise WrongAnswer(f"{ex}: {mine:,.0f} is not the sum of steps x sequences per step over fkl_warmup, opd and "
                      "student_grpo (all in cfg)")


# --- 05 · Dense rewards, token by token ------------------------------------------------------------------------------

def _first_difference(a: str, b: str) -> int | None:
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def check_05_1(my_first_wrong_char, my_first_wrong_token, completion: str, gold: str | None,
               tokens: Sequence[str]) -> str:
    """05.1: the index of the first character where `completion` departs from `gold`, and of the token holding it
    (skipped, saying so, when `gold` is None: a task with no canonical worked solution)."""
    ex = "05.1"
    if _unfilled(my_first_wrong_char, my_first_wrong_token):
        return _skip(ex, "the two ... above")
    if gold is None:  # real data (qwen3_paper): no canonical worked solution to depart from
        print(f"⏭ {ex} skipped: it needs the arithmetic task's gold worked solution (the tiny preset); this run's "
              "task has none to compare with")
        return "skipped"
    want_char = _first_difference(completion, gold)
    if want_char is None:
        raise ValueError("the completion is the gold solution: no wrong character")
    ends = np.cumsum([len(t) for t in tokens])
    want_token = int(np.searchsorted(ends, want_char, side="right"))
    c = _number(ex, my_first_wrong_char, "my_first_wrong_char")
    if c != want_char:
        hint = ("; indices start at 0" if c == want_char + 1 else
                "; a newline is one character" if abs(c - want_char) <= 3 else "")
        raise WrongAnswer(f"{ex}: character {c:g} is not the first difference{hint}; compare the two strings "
                          "character by character from index 0")
    t = _number(ex, my_first_wrong_token, "my_first_wrong_token")
    if t != want_token:
        hint = "; token indices start at 0 too" if t == want_token + 1 else ""
        raise WrongAnswer(f"{ex}: token {t:g} does not hold character {want_char}{hint}; add up the lengths of the "
                          "tokens until you pass it")
    return _correct(ex, f"character {want_char} ({completion[want_char:want_char + 1]!r} where the gold solution has "
                        f"{gold[want_char:want_char + 1]!r}), token {want_token}")


def check_05_2(my_log_ratio, my_teacher_finds_it_more_likely, implicit_reward: Sequence[float]) -> str:
    """05.2: the summed implicit reward of one rollout, log pT(y) - log pS(y), and its sign as True/False."""
    ex = "05.2"
    if _unfilled(my_log_ratio, my_teacher_finds_it_more_likely):
        return _skip(ex, "the two ... above")
    values = [float(v) for v in implicit_reward]
    want = math.fsum(values)
    mine = _number(ex, my_log_ratio, "my_log_ratio")
    if not _close(mine, want):
        if _close(mine, want / len(values)):
            raise WrongAnswer(f"{ex}: that is the mean per token; the log of a product of probabilities is the sum")
        if _close(mine, -want):
            raise WrongAnswer(f"{ex}: the sign is flipped: log pT(y) - log pS(y) is the sum of the implicit rewards "
                              "as stored")
        raise WrongAnswer(f"{ex}: {mine:.4g} is not the sum of the per-token implicit rewards (every token, the end "
                          "token included)")
    if not isinstance(my_teacher_finds_it_more_likely, (bool, np.bool_)):
        raise WrongAnswer(f"{ex}: my_teacher_finds_it_more_likely is {my_teacher_finds_it_more_likely!r}; write True "
                          "or False")
    if bool(my_teacher_finds_it_more_likely) != (want > 0):
        raise WrongAnswer(f"{ex}: the sum is right but the True/False is not: a positive log pT(y) - log pS(y) means "
                          "the teacher gives y more probability than the student")
    return _correct(ex, f"log pT(y) - log pS(y) = {want:+.2f} nats, a probability ratio pT(y) / pS(y) of "
                        f"{math.exp(want):.2g}")


CHECKS: dict[str, Callable[..., str]] = {
    "00.1": check_00_1, "00.2": check_00_2, "01.1": check_01_1, "01.2": check_01_2, "01.3": check_01_3,
    "02a.1": check_02a_1, "02a.2": check_02a_2, "02b.1": check_02b_1, "02b.2": check_02b_2, "02b.3": check_02b_3,
    "02b.4": check_02b_4, "03.1": check_03_1, "03.2": check_03_2, "04.1": check_04_1, "04.2": check_04_2,
    "05.1": check_05_1, "05.2": check_05_2,
}


# --- predictions ------------------------------------------------------------------------------------------------------

def reveal(prediction: str, guess, observed, *, choices: Sequence[str] | None = None, rel: float | None = None,
           abs_tol: float | None = None, factor: float | None = None, unit: str = "",
           missing: str = "not measured on this run") -> bool | None:
    """Score a "Predict first" guess against what the cell observed, and print the verdict; never raises.

    With `choices`, `guess` and `observed` are among them (case and spaces ignored); otherwise both are numbers
    and the guess counts as right within `rel` (relative) or `abs_tol` (absolute) of the observed value, or, with
    `factor`, within that factor of it either way (for an order of magnitude). Returns True / False, or None when
    no guess was written (the placeholder `...`) or it could not be read. `observed=None` means the run did not
    measure it: the cell says so (`missing`, e.g. "not measured (eval.greedy=false)") and returns None.
    """
    if observed is None:
        print(f"◌ {prediction}: nothing to compare with: {missing}")
        return None
    shown = f"{observed:.4g}{unit}" if isinstance(observed, numbers.Real) and not isinstance(observed, bool) \
        else f"{observed}"
    if guess is ...:
        print(f"◌ {prediction}: no guess written in the Predict cell above; observed {shown}. Next time, write the "
              "guess first.")
        return None
    if choices is not None:
        norm = {re.sub(r"\s+", " ", str(c)).strip().lower(): c for c in choices}
        g = re.sub(r"\s+", " ", str(guess)).strip().lower()
        if g not in norm:
            print(f"◌ {prediction}: your guess {guess!r} is not one of {list(choices)}; observed {shown}")
            return None
        right = norm[g] == observed
        print(f"{'✓' if right else '✗'} {prediction}: you guessed {norm[g]!r}, observed {shown}")
        return right
    try:
        g = _number(prediction, guess, "the guess")
    except WrongAnswer:
        print(f"◌ {prediction}: your guess {guess!r} is not a number; observed {shown}")
        return None
    if factor is not None:
        right = observed / factor <= g <= observed * factor if observed > 0 else g == observed
        band = f"a factor of {factor:g}"
    else:
        tol = max(rel * abs(observed) if rel else 0.0, abs_tol or 0.0)
        right = abs(g - observed) <= tol
        band = f"± {tol:.3g}{unit}"
    print(f"{'✓' if right else '✗'} {prediction}: you guessed {g:.4g}{unit}, observed {shown} "
          f"({'within' if right else 'outside'} {band} of it)")
    return right
