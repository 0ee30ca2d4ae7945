"""The tutorials' exercise checks (s2dlab.exercises): a table of exercise x {right, rounded, wrong}.

For every exercise:
- **right**: the solution cell of `notebooks/solutions/NN_name.py`, executed on the exercise's inputs (the fixed
  example, or made-up data of the same shape where the notebook reads a run), must pass;
- **rounded**: the answer key's printed values (`notebooks/ANSWERS.md`), or the right answer rounded to the
  decimals the notebook prints, or an equivalent form (a list for a tuple, numpy for float, bools for floats),
  must pass;
- **wrong**: a typical mistake (the other KL direction, a flipped sign, the wrong normalisation, a 1-based index)
  must fail, with a message that names the exercise and the part that is wrong.

The check computes its expected value itself; these tests also hold its independent formulas against the library
functions the notebooks show (the slip rule against `slip_of`, the reward cases against the task's grader, the
AUROC against `diagnostics.auroc`), so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import math
import re
from fractions import Fraction
from pathlib import Path

import jupytext
import numpy as np
import pytest
import torch

from s2dlab import exercises
from s2dlab.exercises import WrongAnswer

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NOTEBOOK_OF = {"00": "00_quickstart", "01": "01_teacher_grpo", "02a": "02a_forward_kl_warmup",
               "02b": "02b_on_policy_distillation", "03": "03_student_grpo", "04": "04_bridge_vs_cold_grpo",
               "05": "05_dense_rewards_token_by_token"}


def _solve():
    spec = importlib.util.spec_from_file_location("solve", NOTEBOOKS / "solutions" / "solve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOLVE = _solve()


def solution(ex: str, **context) -> dict:
    """Execute the solution cell of exercise `ex` on `context`; returns the namespace it leaves."""
    stem = NOTEBOOK_OF[ex.split(".")[0]]
    source = SOLVE.solution_cells(stem)[ex]
    ns = {"np": np, "torch": torch, "math": math, "re": re, **context}
    exec(compile(source, f"solutions/{stem}.py [{ex}]", "exec"), ns)  # noqa: S102 - the repository's own solutions
    return ns


def answers_of(fn, ns: dict) -> dict:
    return {name: ns[name] for name in inspect.signature(fn).parameters}


# --- made-up inputs for the exercises that read a run ------------------------------------------------------------------

def c2_rows():
    rng = np.random.default_rng(0)
    before = [{"reverse_kl": list(rng.uniform(0, 0.4, n))} for n in (3, 25, 7, 40, 12)]
    after = [{"reverse_kl": list(rng.uniform(0, 0.2, n))} for n in (30, 4, 18, 9, 22)]
    return {"before_rows": before, "after_rows": after}


def eval_counts(seed=0, n=120, k=4):
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 1.5, n)
    a = {f"p{i}": int(rng.binomial(k, min(1, pi + 0.1))) for i, pi in enumerate(p)}
    b = {f"p{i}": int(rng.binomial(k, pi * 0.8)) for i, pi in enumerate(p)}
    return a, b


def context(ex: str) -> dict:
    if ex == "02a.2":
        return c2_rows()
    if ex == "02b.2":
        return {k: np.array(v) for k, v in exercises.EXAMPLES["02b.1"].items()}
    if ex == "03.1":
        return {"p_bar": 0.66272, "G": 8}
    if ex == "03.2":
        return {"per_problem": eval_counts()[0], "k": 4}
    if ex == "04.1":
        a, b = eval_counts(1)
        return {"a_counts": a, "b_counts": b, "k": 4}
    if ex == "04.2":
        from s2dlab.core.config import load_config

        return {"cfg": load_config("tiny")}
    if ex == "05.1":
        completion = "7+8=5\n5-3=2\n\\boxed{2}"
        return {"completion": completion, "gold": "7+8=15\n15-3=12\n\\boxed{12}",
                "tokens": list(completion) + ["<|im_end|>"]}
    if ex == "05.2":
        return {"implicit_reward": [0.01, -0.02, -3.9, 0.05, -0.4, 0.02, 0.0]}
    return {}


def rounded(value, decimals=3):
    if isinstance(value, (list, tuple, np.ndarray)):
        return [round(float(v), decimals) for v in value]
    return round(float(value), decimals)


# --- the table: exercise -> (rounded / other form, wrong answer, words the failure must say) ---------------------------
# Each entry is a function of the right namespace (the solution's) returning (rounded answers, wrong answers, hint).

def _00_1(ns):
    as_lists = {k: (list(v) if v is not None else None) for k, v in ns["my_slips"].items()}
    wrong = {**ns["my_slips"], (15, "-", 4): ("borrow", 21)}  # 15-4: 5 >= 4, no borrow
    return {"my_slips": as_lists}, {"my_slips": wrong}, "15-4"


def _00_2(ns):
    return ({"my_pass_at_1": Fraction(1, 4), "my_pass_at_2": Fraction(1, 2)},  # fractions are numbers too
            {"my_pass_at_1": 0.25, "my_pass_at_2": 1 - (3 / 4) ** 2}, "with replacement")


def _01_1(ns):
    fn = ns["my_reward"]

    def as_bool(completion, answer):  # bools instead of floats: an equivalent form
        return bool(fn(completion, answer))

    def first_box(completion, answer):  # the typical mistake: reading the first box
        m = re.search(r"\\boxed\{(-?\d+)\}", completion)
        return float(bool(m) and m[1] == answer)

    return {"my_reward": as_bool}, {"my_reward": first_box}, "only the last one counts"


def _01_2(ns):
    r = np.array(exercises.EXAMPLES["01.2"], float)
    return ({"my_advantages": [2.474, -0.353, -0.353, -0.353, -0.353, -0.353, -0.353, -0.353]},  # ANSWERS.md
            {"my_advantages": list((r - r.mean()) / (r.std() + 1e-4))}, "Bessel")


def _01_3(ns):
    return {"my_auroc": 0.8333}, {"my_auroc": 7 / 9}, "tie"


def _02a_1(ns):
    printed = {"my_forward_kl": 1.457, "my_reverse_kl": 0.605, "my_cross_entropy": 2.313}  # ANSWERS.md
    swapped = {"my_forward_kl": 0.605, "my_reverse_kl": 1.457, "my_cross_entropy": 2.313}
    return printed, swapped, "swapped"


def _02a_2(ns):
    per_rollout = np.mean([np.mean(r["reverse_kl"]) for r in ns["before_rows"]])
    wrong = {"my_c2_before": per_rollout, "my_c2_after": ns["my_c2_after"], "my_c2_change": ns["my_c2_change"]}
    return ({k: rounded(ns[k]) for k in ("my_c2_before", "my_c2_after", "my_c2_change")}, wrong,
            "per-rollout means")


def _02b_1(ns):
    printed = {"my_rewards": [-1.792, 0.693, 1.099], "my_expected_minus_r": 0.757, "my_reverse_kl": 0.757}
    forward = {**printed, "my_reverse_kl": 0.566}  # the forward KL where the reverse is asked
    return printed, forward, "forward KL"


def _02b_2(ns):
    return ({"my_gradient": (0.416, -0.485, 0.069)},  # ANSWERS.md, as a tuple
            {"my_gradient": [-0.416, 0.485, -0.069]}, "sign")


def _02b_3(ns):
    def with_kl_div(logp_S, logp_T, mask):  # the same loss through torch's kl_div: an equivalent form
        per_pos = torch.nn.functional.kl_div(logp_T, logp_S, log_target=True, reduction="none").sum(-1)
        return (per_pos * mask).sum() / mask.sum()

    def forward(logp_S, logp_T, mask):  # the warmup's direction
        per_pos = (logp_T.exp() * (logp_T - logp_S)).sum(-1)
        return (per_pos * mask).sum() / mask.sum()

    return {"my_opd_loss": with_kl_div}, {"my_opd_loss": forward}, "forward KL"


def _03_1(ns):
    p, G = round(ns["p_bar"], 3), ns["G"]  # the value the notebook prints
    printed = {"my_all_right": p ** G, "my_all_wrong": (1 - p) ** G, "my_dead_share": p ** G + (1 - p) ** G}
    return printed, {**printed, "my_dead_share": p ** G}, "only the all-right"


def _03_2(ns):
    counts = np.array(list(ns["per_problem"].values()), float)
    half = 1.96 * counts.std(ddof=1) / np.sqrt(len(counts))
    return ({"my_interval": rounded(ns["my_interval"], 4)},
            {"my_interval": [counts.mean() - half, counts.mean() + half]}, "divide each problem's count by k")


def _04_1(ns):
    a = np.array([ns["a_counts"][p] for p in sorted(ns["a_counts"])], float) / ns["k"]
    b = np.array([ns["b_counts"][p] for p in sorted(ns["a_counts"])], float) / ns["k"]
    half = 1.96 * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    unpaired = [a.mean() - b.mean() - half, a.mean() - b.mean() + half]
    return ({"my_difference": rounded(ns["my_difference"], 4),
             "my_difference_interval": np.round(ns["my_difference_interval"], 4)},
            {"my_difference": ns["my_difference"], "my_difference_interval": unpaired}, "pair the problems")


def _04_2(ns):
    c = ns["cfg"]
    no_generations = (c.fkl_warmup.steps * c.fkl_warmup.batch_size + c.opd.steps * c.opd.batch_size
                      + c.student_grpo.steps * c.student_grpo.prompts_per_step)
    return ({"my_student_sequences": float(ns["my_student_sequences"])},
            {"my_student_sequences": no_generations}, "num_generations")


def _05_1(ns):
    return ({"my_first_wrong_char": np.int64(ns["my_first_wrong_char"]),
             "my_first_wrong_token": float(ns["my_first_wrong_token"])},
            {"my_first_wrong_char": ns["my_first_wrong_char"] + 1,
             "my_first_wrong_token": ns["my_first_wrong_token"] + 1}, "start at 0")


def _05_2(ns):
    mean = float(np.mean(ns["implicit_reward"]))
    return ({"my_log_ratio": rounded(ns["my_log_ratio"], 2) + 0.0, "my_teacher_finds_it_more_likely":
             np.bool_(ns["my_teacher_finds_it_more_likely"])},
            {"my_log_ratio": mean, "my_teacher_finds_it_more_likely": mean > 0}, "mean per token")


TABLE = {"00.1": _00_1, "00.2": _00_2, "01.1": _01_1, "01.2": _01_2, "01.3": _01_3, "02a.1": _02a_1,
         "02a.2": _02a_2, "02b.1": _02b_1, "02b.2": _02b_2, "02b.3": _02b_3, "03.1": _03_1, "03.2": _03_2,
         "04.1": _04_1, "04.2": _04_2, "05.1": _05_1, "05.2": _05_2}
# 02b.4 (the OPD loop) trains models: its solution runs in the slow tier (tests/test_notebooks.py); its check is in
# the table below on loss curves.


def _case(ex, kind):
    ns = solution(ex, **context(ex))
    fn = exercises.CHECKS[ex]
    right = answers_of(fn, ns)
    inputs = {k: v for k, v in right.items() if not k.startswith("my_")}
    rounded_answers, wrong_answers, hint = TABLE[ex](ns)
    return fn, right, {**right, **rounded_answers}, {**inputs, **wrong_answers}, hint


def test_every_exercise_has_a_row():
    assert set(TABLE) | {"02b.4"} == set(exercises.CHECKS)


@pytest.mark.parametrize("ex", sorted(TABLE))
def test_right_answer_passes(ex, capsys):
    fn, right, _, _, _ = _case(ex, "right")
    assert fn(**right) == "correct"
    assert f"✓ {ex} correct" in capsys.readouterr().out


@pytest.mark.parametrize("ex", sorted(TABLE))
def test_rounded_answer_passes(ex, capsys):
    fn, right, rounded_answers, _, _ = _case(ex, "rounded")
    assert repr(rounded_answers) != repr(right), f"{ex}: the rounded row must differ from the right one"
    assert fn(**rounded_answers) == "correct"


@pytest.mark.parametrize("ex", sorted(TABLE))
def test_typical_wrong_answer_fails_and_says_why(ex):
    fn, _, _, wrong, hint = _case(ex, "wrong")
    with pytest.raises(WrongAnswer) as err:
        fn(**wrong)
    message = str(err.value)
    assert message.startswith(f"{ex}: "), message
    assert hint.lower() in message.lower(), f"{ex}: the message should say {hint!r}: {message}"
    assert isinstance(err.value, AssertionError)  # a failed check reads as a failed assertion in Jupyter


@pytest.mark.parametrize("ex", sorted(exercises.CHECKS))
def test_placeholder_is_skipped(ex, capsys):
    fn = exercises.CHECKS[ex]
    params = inspect.signature(fn).parameters
    args = {}
    for name in params:
        if name in ("my_reward", "my_opd_loss"):
            args[name] = lambda *a: None  # a function whose body is still `...`
        elif name.startswith("my_"):
            args[name] = ... if name != "my_slips" else {(7, "+", 8): ...}
        else:
            args[name] = None
    assert fn(**args) == "skipped"
    assert f"⏭ {ex} skipped" in capsys.readouterr().out


# --- 02b.4, the OPD loop: its losses and where it took the student -------------------------------------------------------

LIBRARY = list(0.09 * np.exp(-np.arange(30) / 40) + 0.004 * np.cos(np.arange(30)))


class TableLM(torch.nn.Module):
    """A language model whose next-token logits depend on the current token only: enough to score rollouts."""

    def __init__(self, logits_VV):
        super().__init__()
        self.table = logits_VV

    def forward(self, input_ids):
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.table[input_ids])


def _probe():
    from types import SimpleNamespace

    g = torch.Generator().manual_seed(0)
    teacher, start = torch.randn(12, 12, generator=g) * 2, torch.randn(12, 12, generator=g) * 2
    rollouts = [SimpleNamespace(prompt_ids=list(torch.randint(12, (3,), generator=g).tolist()),
                                completion_ids=list(torch.randint(12, (6,), generator=g).tolist())) for _ in range(20)]
    return TableLM(teacher), TableLM(start), start, teacher, rollouts


@pytest.mark.parametrize("kind, losses, moved, hint", [
    ("right", list(0.092 * np.exp(-np.arange(30) / 35) + 0.005 * np.sin(np.arange(30))), 0.5, None),
    ("rounded", [round(v, 4) for v in LIBRARY], 0.5, None),
    ("wrong: ascends", list(0.09 * np.exp(np.arange(30) / 30)), -0.5, "went up"),
    ("wrong: never steps", LIBRARY, 0.0, "did not measurably change"),
    ("wrong: sum over tokens", list(20 * 0.09 * np.exp(-np.arange(30) / 40)), 0.5, "mean over real"),
    ("wrong: too few steps", LIBRARY[:10], 0.5, "30 steps"),
    ("wrong: negative", [-v for v in LIBRARY], 0.5, "negative"),
])
def test_opd_loop_check(kind, losses, moved, hint):
    teacher, start, start_table, teacher_table, rollouts = _probe()
    # `moved` of the way from the starting student's logits to the teacher's (negative: away from the teacher)
    trained = TableLM(start_table + moved * (teacher_table - start_table))
    args = (losses, trained, LIBRARY, 30, start, teacher, rollouts)
    if hint is None:
        assert exercises.check_02b_4(*args) == "correct"
    else:
        with pytest.raises(WrongAnswer, match=re.escape(hint)):
            exercises.check_02b_4(*args)


# --- the checks' own formulas against the library's --------------------------------------------------------------------

def test_slip_rule_is_the_task_s():
    from s2dlab.core.tasks.arithmetic import slip_of

    for v in range(0, 40):
        for op in "+-":
            for b in range(0, 10):
                assert exercises._slip_rule(v, op, b) == slip_of(v, op, b), (v, op, b)


def test_reward_cases_agree_with_the_task_s_grader():
    from s2dlab.core import data
    from s2dlab.core.config import load_config

    grade = data.grade_fn(load_config("tiny"))
    for completion, answer, want, what in exercises.REWARD_CASES:
        assert float(grade(completion, answer)) == want, what


def test_auroc_by_pairs_agrees_with_diagnostics():
    from s2dlab.core.diagnostics import auroc

    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = list(np.round(rng.normal(size=12), 1))  # rounded: ties happen
        correct = list(rng.random(12) < 0.5) or [True]
        if 0 < sum(correct) < len(correct):
            assert exercises._auroc_by_pairs(scores, correct) == pytest.approx(auroc(scores, correct))


def test_fixed_examples_are_the_notebooks():
    """The values an exercise cell shows are the ones its check uses (the solution cells set them too)."""
    for ex, names in (("01.2", ["rewards_01"]), ("01.3", ["scores_01", "correct_01"]),
                      ("02a.1", ["p_teacher", "p_student"]), ("02b.1", ["p_s", "p_t"])):
        ns = solution(ex)
        example = exercises.EXAMPLES[ex]
        values = [example] if not isinstance(example, dict) else list(example.values())
        for name, value in zip(names, values):
            assert list(np.asarray(ns[name], float)) == list(np.asarray(value, float)), (ex, name)
    pS, pT = (np.array(exercises.EXAMPLES["02b.1"][k]) for k in ("p_s", "p_t"))
    forward, reverse = exercises._kl(pT, pS), exercises._kl(pS, pT)
    assert abs(forward - reverse) > 0.1, "02b.1 must tell the two directions apart"


def test_check_cells_call_their_check_with_the_notebooks_names():
    """Each notebook's check cell calls `exercises.check_NN_x(...)` with the check's parameter names, in order."""
    seen = set()
    for stem in NOTEBOOK_OF.values():
        for cell in jupytext.read(NOTEBOOKS / f"{stem}.py").cells:
            ex = SOLVE.check_id(cell.source) if cell.cell_type == "code" else None
            if ex is None:
                continue
            name = "check_" + ex.replace(".", "_")
            calls = [n for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Attribute) and n.func.attr == name]
            assert len(calls) == 1, f"{stem}: the check cell of {ex} should call exercises.{name}(...) once"
            args = [a.id for a in calls[0].args if isinstance(a, ast.Name)] + [k.arg for k in calls[0].keywords]
            expected = list(inspect.signature(exercises.CHECKS[ex]).parameters)
            assert args == expected, f"{stem}: {name} is called with {args}, expected {expected}"
            seen.add(ex)
    assert seen == set(exercises.CHECKS)


# --- predictions -------------------------------------------------------------------------------------------------------

def test_reveal_scores_choices_and_numbers(capsys):
    assert exercises.reveal("P", "Greedy ", "greedy", choices=["greedy", "avg@k"]) is True
    assert exercises.reveal("P", "avg@k", "greedy", choices=["greedy", "avg@k"]) is False
    assert exercises.reveal("P", "neither", "greedy", choices=["greedy", "avg@k"]) is None
    assert exercises.reveal("P", ..., 0.4) is None
    assert exercises.reveal("P", 0.45, 0.4, rel=0.2) is True
    assert exercises.reveal("P", 0.6, 0.4, rel=0.2) is False
    assert exercises.reveal("P", 1.0, 1.0000003, abs_tol=1e-3) is True
    assert exercises.reveal("P", 30, 64, factor=2) is False and exercises.reveal("P", 40, 64, factor=2) is True
    assert exercises.reveal("P", "many", 64, factor=2) is None
    out = capsys.readouterr().out
    assert "✓ P: you guessed 'greedy'" in out and "✗ P" in out and "no guess written" in out


def test_reveal_says_when_the_run_did_not_measure_the_observation(capsys):
    assert exercises.reveal("Predict 00.a", "greedy", None, choices=["greedy", "avg@k"],
                            missing="not measured (eval.greedy=false)") is None
    assert capsys.readouterr().out == "◌ Predict 00.a: nothing to compare with: not measured (eval.greedy=false)\n"
    assert exercises.reveal("P", 0.3, None, abs_tol=0.1) is None
    assert "not measured on this run" in capsys.readouterr().out


def test_check_05_1_skips_a_task_with_no_gold_solution(capsys):
    assert exercises.check_05_1(3, 2, "abc", None, ["a", "b", "c"]) == "skipped"
    assert "05.1 skipped: it needs the arithmetic task's gold worked solution" in capsys.readouterr().out
