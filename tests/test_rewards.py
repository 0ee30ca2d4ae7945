"""Grading: boxed-only extraction, math-verify verdicts on real answer formats, the TRL reward signature, and
bounded work on adversarial boxes, in the main thread and in worker threads."""

import json
import threading
from pathlib import Path

import pytest

from s2dlab.core.rewards import (
    arithmetic_reward,
    extract_boxed,
    grade,
    math_reward,
    unsafe_reason,
)

FIXTURES = Path(__file__).parent / "data" / "benchmarks"
THREAD_BOUND_S = 5.0  # each case takes milliseconds; the bound only has to catch a hang on a busy machine


# --- extraction -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("so $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{2}", "2"),
    ("\\boxed {7}", "7"),
    ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("\\boxed{ 5 }", "5"),
    ("no box at all: 5", None),
    ("\\boxed{5} and then \\boxed{6", None),  # the last box never closes: no answer
    ("\\boxed{}", None),
    ("\\boxed{" + "1" * 300 + "}", None),
    (None, None),
    (42, None),
])
def test_extract_boxed(text, expected):
    assert extract_boxed(text) == expected


def test_extract_boxed_reads_only_the_tail():
    assert extract_boxed("\\boxed{1}" + " " * 5000) is None
    assert extract_boxed("\\boxed{1}" + " " * 5000, max_chars=None) == "1"


# --- verdicts ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("completion,answer,expected", [
    ("\\boxed{0.5}", "\\frac{1}{2}", True),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac12}", "0.5", True),
    ("\\boxed{\\frac{17}{50}}", "\\dfrac{17}{50}", True),
    ("\\boxed{(3,4]}", "(3,4]", True),
    ("\\boxed{(3,4)}", "(3,4]", False),
    ("\\boxed{[3,4]}", "(3,4]", False),
    ("\\boxed{5\\text{ cm}}", "5", True),
    ("\\boxed{5}", "5\\text{ cm}", True),
    ("\\boxed{\\{1,2,3\\}}", "\\{3,2,1\\}", True),
    ("\\boxed{\\{1,2\\}}", "\\{3,2,1\\}", False),
    ("\\boxed{-12}", "-12", True),
    ("\\boxed{12}", "-12", False),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("\\boxed{(3, \\pi)}", "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    ("\\boxed{10080}", "10,\\!080", True),
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", True),
    ("\\boxed{x=5}", "5", True),
    ("\\boxed{2^{4950}}", "2^{4950}", True),
    ("\\boxed{(x+1)^2}", "x^2+2x+1", True),
    ("The answer is 5.", "5", False),  # no box: boxed-only extraction
    ("\\boxed{5} no, wait: \\boxed{6}", "6", True),  # the last box wins
    ("\\boxed{5} no, wait: \\boxed{6}", "5", False),
])
def test_grade_verdicts(completion, answer, expected):
    assert grade(completion, answer) is expected


def test_reference_solutions_grade_correct_against_their_answers():
    for line in (FIXTURES / "math500.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert grade(row["solution"], row["answer"]), row["unique_id"]
        assert unsafe_reason(row["answer"]) is None


def test_arithmetic_mode_needs_a_plain_integer():
    assert grade("\\boxed{3+4}", "7")  # equal as math...
    assert not grade("\\boxed{3+4}", "7", integer_only=True)  # ...but not an answer to an arithmetic problem
    assert grade("\\boxed{7}", "7", integer_only=True)
    assert grade("73-67=6\n6+70=76\n\\boxed{76}", "76", integer_only=True)
    assert grade("\\boxed{-12}", "-12", integer_only=True)
    assert not grade("\\boxed{12}", "-12", integer_only=True)
    assert not grade("\\boxed{7.0}", "7", integer_only=True)
    assert not grade("\\boxed{+7}", "7", integer_only=True)


@pytest.mark.parametrize("completion,answer", [
    (None, "1"), (5, "5"), ("\\boxed{5}", None), ("\\boxed{5}", object()), ("\\boxed{\\frac{", "1"),
    ("\\boxed{\\frac{1}{0}}", "1"), ("\\boxed{)(}", "1"), ("\\boxed{5}", "\\frac{"), (["not", "text"], "1"),
])
def test_garbage_scores_zero_without_raising(completion, answer):
    assert grade(completion, answer) is False


# --- TRL reward functions ---------------------------------------------------------------------------------------------

def test_math_reward_takes_message_lists_and_trl_extras():
    completions = [
        [{"role": "assistant", "content": "so \\boxed{\\frac{1}{2}}"}],
        [{"role": "assistant", "content": "\\boxed{2}"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "\\boxed{0.5}"}]}],
        "\\boxed{0.5}",
    ]
    rewards = math_reward(prompts=[[{"role": "user", "content": "x"}]] * 4, completions=completions,
                          completion_ids=[[1]] * 4, answer=["0.5"] * 4, id=["a"] * 4, trainer_state=None,
                          log_extra=lambda *a: None, log_metric=lambda *a: None)
    assert rewards == [1.0, 0.0, 1.0, 1.0]


def test_arithmetic_reward_and_missing_answers():
    assert arithmetic_reward(["\\boxed{3+4}", "\\boxed{7}", "\\boxed{7}"], answer=["7", "7", None]) == [0.0, 1.0, None]
    assert math_reward([None, 5, [{"role": "assistant"}]], answer=["1", "1", "1"]) == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        math_reward(["a", "b"], answer=["1"])


# --- bounded work -----------------------------------------------------------------------------------------------------

ADVERSARIAL = {
    "tower": "\\boxed{10^{10^{10^{10}}}}",
    "tower without braces": "\\boxed{2^2^2^2^2}",
    "e tower": "\\boxed{e^{e^{e^{10}}}}",
    "power of a power": "\\boxed{((10^{1000})^{1000})^{1000}}",
    "deep braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "deep braces, unclosed": "\\boxed{" * 10_000,
    "megabyte": "x" * 1_000_000 + "\\boxed{6}",
    "megabyte of braces": "{" * 1_000_000,
    "huge power": "\\boxed{99999999^{99999999}}",
    "huge factorial": "\\boxed{100000000!}",
    "factorial of a power": "\\boxed{(10^{8})!}",
    "binomial": "\\boxed{\\binom{100000000}{50000000}}",
    "product": "\\boxed{\\prod_{k=1}^{100000000} k}",
    "power of a sum": "\\boxed{(x+y+z+1)^{30}}",
    "product of sums": "\\boxed{(a+b)(c+d)(e+f)(g+h)(i+j)(k+l)(m+n)(o+p)(q+r)(s+t)(u+v)(w+y)}",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_boxes_score_zero_in_a_worker_thread(name):
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        grade=grade(ADVERSARIAL[name], "5"), reward=math_reward([ADVERSARIAL[name]], answer=["5"])), daemon=True)
    worker.start()
    worker.join(timeout=THREAD_BOUND_S)
    assert not worker.is_alive(), f"{name}: grading did not finish within {THREAD_BOUND_S}s"
    assert result == {"grade": False, "reward": [0.0]}


def test_adversarial_boxes_score_zero_in_the_main_thread():
    assert math_reward(list(ADVERSARIAL.values()), answer=["5"] * len(ADVERSARIAL)) == [0.0] * len(ADVERSARIAL)


def test_grading_works_in_a_worker_thread():
    result = {}
    worker = threading.Thread(target=lambda: result.update(
        right=grade("\\boxed{\\dfrac{1}{2}}", "0.5"), wrong=grade("\\boxed{3}", "0.5")), daemon=True)
    worker.start()
    worker.join(timeout=THREAD_BOUND_S)
    assert result == {"right": True, "wrong": False}


@pytest.mark.parametrize("latex", ["x^{11}+10x^9+7x^8+6x^7+3x^3+5x+8", "2^{4950}", "\\frac{1}{2^{98}}",
                                   "(x-1)^3(x+1)^3", "11z^{17}(5+11z^{17})", "90^\\circ", "864 \\mbox{ inches}^2",
                                   "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "10!", "(1+2)^{1000}"])
def test_real_answer_shapes_are_not_rejected(latex):
    assert unsafe_reason(latex) is None


@pytest.mark.parametrize("latex,reason", [("10^{10^{10}}", "tower"), ("x^2^3", "tower"), ("(10^{8})!", "factorial"),
                                          ("\\sum_{k=1}^{9} k", "sum"), ("10^{10000000}", "digits"),
                                          ("(x+1)^{1000}", "terms"), ("1" * 201, "characters"),
                                          ("(" * 11 + ")" * 11, "nested")])
def test_unsafe_reason_names_the_problem(latex, reason):
    assert reason in unsafe_reason(latex)
