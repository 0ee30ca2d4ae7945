"""Problem records: the synthetic arithmetic task and the loaders for real math data (on small local fixtures)."""

import json
import re
from pathlib import Path

import pytest

from s2dlab.core.rewards import grade
from s2dlab.core.tasks import (
    DatasetNotAvailableError,
    arithmetic_splits,
    load_task,
    make_problems,
    split_records,
    to_dataset,
)
from s2dlab.core.tasks.arithmetic import space_size
from s2dlab.core.tasks.math_datasets import DAPO_PREFIX, DAPO_SUFFIX

FIXTURES = Path(__file__).parent / "data" / "benchmarks"
KEYS = {"id", "prompt", "answer", "solution"}


# --- arithmetic -------------------------------------------------------------------------------------------------------

def _value(expression: str) -> int:
    """Independent evaluation of a generated prompt (digits and + - * only, checked first)."""
    assert re.fullmatch(r"\d+(?:[-+*]\d+)+", expression), expression
    return eval(expression)  # noqa: S307 - the pattern above admits nothing but integer arithmetic


def _check_solution(record: dict) -> None:
    lines = record["solution"].split("\n")
    assert lines[-1] == f"\\boxed{{{record['answer']}}}"
    for line in lines[:-1]:
        m = re.fullmatch(r"(-?\d+)([-+*])(\d+)=(-?\d+)", line)
        assert m, line
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        assert {"+": a + b, "-": a - b, "*": a * b}[op] == c, line
    assert int(lines[-2].rsplit("=", 1)[1]) == int(record["answer"])


def test_default_problems_have_the_documented_shape():
    records = make_problems(200, seed=0)
    for r in records:
        assert set(r) == KEYS
        assert re.fullmatch(r"\d\d[-+]\d\d[-+]\d\d=\?", r["prompt"]), r["prompt"]
        assert re.fullmatch(r"-?\d+", r["answer"])
        assert len(r["solution"].split("\n")) == 3  # two steps and the box
    assert records[0]["id"] == "arith-00000"
    assert any(r["answer"].startswith("-") for r in records), "negative answers must occur"


@pytest.mark.parametrize("knobs", [{}, {"n_terms": 5}, {"digits": 1}, {"digits": 3, "n_terms": 2},
                                   {"ops": "+-*", "n_terms": 4}, {"ops": "*"}])
def test_solution_steps_recompute_the_answer(knobs):
    for r in make_problems(100, seed=3, **knobs):
        assert int(r["answer"]) == _value(r["prompt"].removesuffix("=?"))
        _check_solution(r)


def test_products_are_done_before_sums():
    records = make_problems(300, seed=1, ops="+*", n_terms=3)
    mixed = [r for r in records if re.fullmatch(r"\d+\+\d+\*\d+=\?", r["prompt"])]
    assert mixed
    for r in mixed:
        assert "*" in r["solution"].split("\n")[0]


def test_generation_is_deterministic_by_seed():
    assert make_problems(50, seed=7) == make_problems(50, seed=7)
    assert [r["prompt"] for r in make_problems(50, seed=7)] != [r["prompt"] for r in make_problems(50, seed=8)]
    assert len({r["prompt"] for r in make_problems(500, seed=7)}) == 500


def test_splits_are_disjoint_sized_and_stable():
    sizes = {"sft": 2000, "teacher_rl": 300, "student_rl": 300, "eval": 100}
    splits = arithmetic_splits(sizes, seed=0)
    assert {k: len(v) for k, v in splits.items()} == sizes
    prompts = [r["prompt"] for records in splits.values() for r in records]
    assert len(prompts) == len(set(prompts))
    assert splits["eval"][42]["id"] == "arith-eval-00042"
    assert all(set(r) == KEYS for records in splits.values() for r in records)
    assert arithmetic_splits(sizes, seed=0) == splits
    assert arithmetic_splits(sizes, seed=1)["eval"] != splits["eval"]


def test_a_small_space_is_used_exactly_then_refused():
    size = space_size(n_terms=2, digits=1, ops="+")
    assert size == 81
    everything = make_problems(size, seed=0, n_terms=2, digits=1, ops="+")
    assert len({r["prompt"] for r in everything}) == size
    with pytest.raises(ValueError, match=r"90.*81"):
        arithmetic_splits({"a": 50, "b": 40}, seed=0, n_terms=2, digits=1, ops="+")


@pytest.mark.parametrize("knobs,needle", [({"ops": "+/"}, "'+/'"), ({"n_terms": 1}, "n_terms=1"),
                                          ({"digits": 0}, "digits=0"), ({"ops": ""}, "ops=''")])
def test_bad_knobs_are_named(knobs, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        make_problems(5, seed=0, **knobs)


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="eval"):
        arithmetic_splits({"sft": 10, "eval": -1}, seed=0)


def test_to_dataset_keeps_the_records():
    records = make_problems(5, seed=0)
    ds = to_dataset(records)
    assert len(ds) == 5 and set(ds.column_names) == KEYS
    assert ds[3] == records[3]


# --- loaders on fixtures ----------------------------------------------------------------------------------------------

def _raw(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def test_math500_maps_fields_and_keeps_boxed_solutions():
    records = load_task("math500", FIXTURES / "math500.jsonl")
    raw = _raw("math500.jsonl")
    assert [r["id"] for r in records] == [x["unique_id"] for x in raw]
    assert [r["prompt"] for r in records] == [x["problem"].strip() for x in raw]
    assert [r["answer"] for r in records] == [x["answer"] for x in raw]
    for r in records:
        assert set(r) == KEYS
        assert grade(r["solution"], r["answer"]), r["id"]


def test_a_folder_source_reads_the_named_file():
    assert load_task("math500", FIXTURES) == load_task("math500", FIXTURES / "math500.jsonl")


def test_aime_keeps_zero_padded_answers_that_grade_as_numbers():
    records = load_task("aime24", FIXTURES)
    by_id = {r["id"]: r for r in records}
    assert by_id["aime24-67"]["answer"] == "025"
    assert grade("so the answer is \\boxed{25}", "025")
    assert grade("\\boxed{25}", "025", integer_only=True)
    assert not grade("\\boxed{26}", "025")


def test_gsm8k_answer_and_boxed_solution():
    records = load_task("gsm8k", FIXTURES)
    assert [r["answer"] for r in records] == ["18", "3", "2125"]
    assert records[0]["id"] == "gsm8k-0000"
    for r in records:
        assert r["solution"].endswith(f"\\boxed{{{r['answer']}}}")
        assert "<<" not in r["solution"] and "####" not in r["solution"]


def test_gsm8k_hub_format_answer_after_hashes(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    row = {"question": "Q?", "answer": "He pays 2*617=<<2*617=1234>>1234 dollars.\n#### 1,234"}
    path.write_text(json.dumps(row) + "\n")
    (r,) = load_task("gsm8k", path)
    assert r["answer"] == "1234"
    assert r["solution"] == "He pays 2*617=1234 dollars.\n\\boxed{1234}"


def test_math_train_and_amc23():
    math = load_task("math", FIXTURES)
    assert [r["answer"] for r in math] == [x["answer"] for x in _raw("math_train.jsonl")]
    assert all(r["solution"] is None for r in math)
    assert len({r["id"] for r in math}) == len(math)
    amc = load_task("amc23", FIXTURES)
    assert [r["answer"] for r in amc] == ["27", "36", "45"]


def test_dapo_strips_the_instruction_and_drops_repeats():
    records = load_task("dapo", FIXTURES)
    assert len(records) == 3  # the fixture repeats one problem
    assert records[0] == {"id": "dapo-a1f0c7e2-0001", "prompt": "Find the sum of all positive divisors of $12$.",
                          "answer": "28", "solution": None}
    for r in records:
        assert "Answer:" not in r["prompt"] and not r["prompt"].startswith("Solve the following")
    assert records[2]["prompt"].endswith("Give the answer as an integer.")


def test_limit_keeps_the_first_records():
    assert load_task("math_train", FIXTURES, limit=2) == load_task("math", FIXTURES)[:2]


def test_a_line_missing_a_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "math500.jsonl"
    path.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n\n" + json.dumps({"problem": "2+2?"}) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:3: missing field 'answer'")):
        load_task("math500", path)


def test_a_line_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "aime.jsonl"
    path.write_text(json.dumps({"problem": "x", "answer": "1"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: not valid JSON")):
        load_task("aime24", path)


def test_unknown_and_generated_task_names():
    with pytest.raises(ValueError, match="math500.*dapo"):
        load_task("mathh500", FIXTURES)
    with pytest.raises(ValueError, match="arithmetic_splits"):
        load_task("arithmetic")


def test_missing_source_and_local_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="math500.jsonl"):
        load_task("math500", tmp_path)
    with pytest.raises(ValueError, match="split='train'"):
        load_task("math500", FIXTURES, split="train")


def test_unavailable_hub_dataset_says_what_to_do(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DatasetNotAvailableError, match=r"HuggingFaceH4/MATH-500.*; either pass source="):
        load_task("math500")


def test_hub_rows_are_converted(monkeypatch):
    import datasets

    prompt = [{"role": "user", "content": DAPO_PREFIX + "What is $6 \\times 7$?" + DAPO_SUFFIX}]
    hub = {
        "BytedTsinghua-SIA/DAPO-Math-17k": [
            {"prompt": prompt, "reward_model": {"ground_truth": "42"}, "extra_info": {"index": f"u{k}"}}
            for k in range(3)],
        "DigitalLearningGmbH/MATH-lighteval": [
            {"problem": "P1", "solution": "So $x=\\boxed{\\frac{1}{2}}$."},
            {"problem": "P2", "solution": "no box here"}],
    }
    seen = {}

    def fake_load(hub_id, config=None, split=None):
        seen[hub_id] = split
        return hub[hub_id]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert load_task("dapo") == [{"id": "dapo-u0", "prompt": "What is $6 \\times 7$?", "answer": "42",
                                  "solution": None}]
    math = load_task("math")
    assert [(r["prompt"], r["answer"]) for r in math] == [("P1", "\\frac{1}{2}")]  # the unboxed row is skipped
    assert math[0]["solution"].endswith("$.")
    assert seen == {"BytedTsinghua-SIA/DAPO-Math-17k": "train", "DigitalLearningGmbH/MATH-lighteval": "train"}


# --- split_records ----------------------------------------------------------------------------------------------------

def _pool(n: int) -> list[dict]:
    return [{"id": f"p{k}", "prompt": f"problem {k}", "answer": str(k), "solution": None} for k in range(n)]


def test_split_records_is_disjoint_complete_and_deterministic():
    pool = _pool(101)
    teacher, student = split_records(pool, fractions=(0.8, 0.2), seed=0)
    assert (len(teacher), len(student)) == (81, 20)
    assert not {r["prompt"] for r in teacher} & {r["prompt"] for r in student}
    assert sorted(r["id"] for r in teacher + student) == sorted(r["id"] for r in pool)
    assert split_records(pool, seed=0) == (teacher, student)
    assert split_records(pool, seed=1) != (teacher, student)
    assert [r["id"] for r in teacher] == sorted((r["id"] for r in teacher), key=lambda i: int(i[1:]))


def test_split_records_keeps_repeated_problems_together():
    pool = _pool(50) + [dict(r, id=r["id"] + "-again") for r in _pool(50)]
    for seed in range(5):
        a, b = split_records(pool, seed=seed)
        assert not {r["prompt"] for r in a} & {r["prompt"] for r in b}


@pytest.mark.parametrize("fractions", [(0.8, 0.3), (1.2, -0.2), ()])
def test_split_records_rejects_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_records(_pool(10), fractions=fractions)
