"""Loaders for real math data: MATH-500, AIME 2024, AIME 2025, AMC 2023, GSM8K (test), MATH (train), DAPO-Math-17k.

Every loader returns problem records `{"id", "prompt", "answer", "solution"}` (docs/CONTRACTS.md) and takes
`source`: a local JSONL file, a folder holding `<file name>.jsonl` (the names below, as in a benchmarks folder),
or None for the Hugging Face Hub through `datasets.load_dataset` (a GPU box with network or a filled cache).

`solution` is kept only when it is a worked solution whose last box is the answer (GSM8K's `#### N` line is
rewritten as `\\boxed{N}`); otherwise it is None. Local files are read strictly: a line that is not JSON or lacks
a field stops the load with the file, line and field named. Hub rows that cannot be converted are skipped with
a warning, since the data is not ours to fix.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from s2dlab.core.errors import InputError, MissingError, S2DLabError
from s2dlab.core.rewards import extract_boxed

logger = logging.getLogger(__name__)

# DAPO-Math-17k wraps each problem in a fixed instruction (its "Answer: ..." format); the bare problem is what
# the prompt suffix of this project is appended to.
DAPO_PREFIX = ("Solve the following math problem step by step. The last line of your response should be of the "
               "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n")
DAPO_SUFFIX = '\n\nRemember to put your answer on its own line after "Answer:".'


class DatasetNotAvailableError(S2DLabError, RuntimeError):
    """A hub dataset could not be loaded (offline and not cached, or no network)."""


class _MissingField(Exception):
    def __init__(self, field: str):
        super().__init__(field)
        self.field = field


def _get(row: dict, *names: str):
    """The first of `names` present (and not None) in `row`."""
    for name in names:
        if row.get(name) is not None:
            return row[name]
    raise _MissingField(" or ".join(repr(n) for n in names))


def _answer_text(value) -> str:
    """Answers as strings; whole floats (AMC's 27.0) as integers."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _checked_solution(solution, answer: str) -> str | None:
    """The solution when its last box is the answer, so every kept solution ends in `\\boxed{answer}`."""
    if not isinstance(solution, str):
        return None
    boxed = extract_boxed(solution, max_chars=None, max_content=None, max_depth=None)
    return solution if boxed == answer else None


# --- one converter per task: a raw row (local JSONL line or hub row) -> record ----------------------------------------

def _math500(row: dict, index: int) -> dict:
    answer = _answer_text(_get(row, "answer"))
    return {"id": str(row.get("unique_id") or f"math500-{index:03d}"), "prompt": _get(row, "problem").strip(),
            "answer": answer, "solution": _checked_solution(row.get("solution"), answer)}


def _aime24(row: dict, index: int) -> dict:
    answer = _answer_text(_get(row, "answer"))
    return {"id": f"aime24-{row['id'] if row.get('id') is not None else index}",
            "prompt": _get(row, "problem", "question").strip(), "answer": answer,
            "solution": _checked_solution(row.get("solution"), answer)}


def _aime25(row: dict, index: int) -> dict:
    answer = _answer_text(_get(row, "answer"))
    return {"id": f"aime25-{row['id'] if row.get('id') is not None else index}",
            "prompt": _get(row, "problem", "question").strip(), "answer": answer,
            "solution": _checked_solution(row.get("solution"), answer)}


def _amc23(row: dict, index: int) -> dict:
    return {"id": f"amc23-{row['id'] if row.get('id') is not None else index}",
            "prompt": _get(row, "problem", "question").strip(), "answer": _answer_text(_get(row, "answer")),
            "solution": None}


def _gsm8k_solution(text: str) -> tuple[str, str]:
    """(answer, solution ending in a box) from GSM8K's `...#### 1,234`; calculator notes `<<a*b=c>>` dropped."""
    work, _, final = text.rpartition("####")
    answer = final.strip().replace(",", "")
    work = re.sub(r"<<[^>]*>>", "", work).rstrip()
    return answer, f"{work}\n\\boxed{{{answer}}}" if work else f"\\boxed{{{answer}}}"


def _gsm8k(row: dict, index: int) -> dict:
    raw_answer = str(_get(row, "answer"))
    if "####" in raw_answer:  # hub format: `answer` is the whole worked solution
        answer, solution = _gsm8k_solution(raw_answer)
    else:
        answer = raw_answer.strip().replace(",", "")
        worked = row.get("solution")
        solution = _gsm8k_solution(worked)[1] if isinstance(worked, str) and "####" in worked else None
    idx = row.get("idx", index)
    return {"id": f"gsm8k-{idx:04d}" if isinstance(idx, int) else f"gsm8k-{idx}",
            "prompt": _get(row, "question", "problem").strip(), "answer": answer, "solution": solution}


def _math_train(row: dict, index: int) -> dict:
    solution = row.get("solution")
    if row.get("answer") is not None:
        answer = _answer_text(row["answer"])
    else:  # hub format: the answer is the last box of the reference solution
        answer = extract_boxed(solution, max_chars=None, max_content=None, max_depth=None) if solution else None
        if answer is None:
            raise _MissingField("'answer' (or a 'solution' with \\boxed{...})")
    return {"id": f"math-train-{index:05d}", "prompt": _get(row, "problem").strip(), "answer": answer,
            "solution": _checked_solution(solution, answer)}


def _dapo_problem(prompt) -> str:
    """The bare problem: the user message without DAPO's fixed instruction around it."""
    if isinstance(prompt, list):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role", "user") == "user"]
        if not users or not isinstance(users[0].get("content"), str):
            raise _MissingField("'prompt' (a user message with text content)")
        prompt = users[0]["content"]
    text = str(prompt)
    text = text[len(DAPO_PREFIX):] if text.startswith(DAPO_PREFIX) else text
    text = text.rstrip()
    suffix = DAPO_SUFFIX.rstrip()
    text = text[:-len(suffix)] if text.endswith(suffix) else text
    return text.strip()


def _dapo(row: dict, index: int) -> dict:
    reward_model = row.get("reward_model")
    if isinstance(reward_model, dict) and reward_model.get("ground_truth") is not None:
        answer = reward_model["ground_truth"]
    elif row.get("answer") is not None:
        answer = row["answer"]
    else:
        raise _MissingField("'reward_model.ground_truth' (or 'answer')")
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    return {"id": f"dapo-{extra['index']}" if extra.get("index") is not None else f"dapo-{index:05d}",
            "prompt": _dapo_problem(_get(row, "prompt")), "answer": _answer_text(answer), "solution": None}


@dataclass(frozen=True)
class TaskSpec:
    convert: Callable[[dict, int], dict]
    file_name: str  # in a local folder
    hub_id: str
    hub_split: str
    hub_config: str | None = None
    dedupe: bool = False  # drop repeated problem texts (DAPO-Math-17k's hub copy repeats each ~100 times)
    fields: str = ""  # the local JSONL fields, for error messages


TASKS: dict[str, TaskSpec] = {
    "math500": TaskSpec(_math500, "math500.jsonl", "HuggingFaceH4/MATH-500", "test",
                        fields="problem, answer, solution, unique_id"),
    "aime24": TaskSpec(_aime24, "aime24.jsonl", "HuggingFaceH4/aime_2024", "train",
                       fields="id, problem, answer, solution"),
    "aime25": TaskSpec(_aime25, "aime25.jsonl", "math-ai/aime25", "test", fields="id, problem, answer"),
    "amc23": TaskSpec(_amc23, "amc23.jsonl", "math-ai/amc23", "test", fields="id, problem, answer"),
    "gsm8k": TaskSpec(_gsm8k, "gsm8k_test.jsonl", "openai/gsm8k", "test", hub_config="main",
                      fields="question, answer (a number, or a solution ending in '#### N'), solution"),
    "math": TaskSpec(_math_train, "math_train.jsonl", "DigitalLearningGmbH/MATH-lighteval", "train",
                     fields="problem, answer (or solution with \\boxed{})"),
    "dapo": TaskSpec(_dapo, "dapo_math_17k.jsonl", "BytedTsinghua-SIA/DAPO-Math-17k", "train", dedupe=True,
                     fields="prompt (chat messages or text), reward_model.ground_truth (or answer)"),
}
ALIASES = {"math_train": "math", "math-500": "math500", "aime_2024": "aime24", "aime_2025": "aime25",
           "dapo_math_17k": "dapo"}


# --- reading ----------------------------------------------------------------------------------------------------------

def _resolve(source: str | os.PathLike, spec: TaskSpec) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / spec.file_name
        if not path.is_file():
            raise MissingError(f"{path}: no {spec.file_name} in the folder {source}")
    elif not path.is_file():
        raise MissingError(f"{path}: no such file or folder")
    return path


def read_jsonl(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a bad line raises `InputError` naming file and line."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1});"
                                 " save the file as UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            rows.append((lineno, obj))
    return rows


def _load_local(path: Path, spec: TaskSpec) -> list[dict]:
    records = []
    for k, (lineno, row) in enumerate(read_jsonl(path)):
        try:
            records.append(spec.convert(row, k))
        except _MissingField as e:
            raise InputError(f"{path}:{lineno}: missing field {e.field} (expected fields: {spec.fields})") from None
    return records


def _hub_rows(spec: TaskSpec, split: str):
    try:
        from datasets import load_dataset

        return load_dataset(spec.hub_id, spec.hub_config, split=split)
    except Exception as e:  # noqa: BLE001 - every failure gets the same advice
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = " (HF_HUB_OFFLINE is set and it is not in the local cache)" if offline else ""
        config = f", {spec.hub_config!r}" if spec.hub_config else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DatasetNotAvailableError(
            f"could not load {spec.hub_id} (split {split!r}) from the Hugging Face Hub{why}: {type(e).__name__}: "
            f"{first}; either pass source=<a local JSONL file, or a folder with {spec.file_name}> with fields {spec.fields}, "
            f"or fill the cache once on a machine with network access: "
            f"datasets.load_dataset({spec.hub_id!r}{config}, split={split!r})") from e


def _load_hub(spec: TaskSpec, split: str) -> list[dict]:
    records, skipped = [], []
    for k, row in enumerate(_hub_rows(spec, split)):
        try:
            records.append(spec.convert(dict(row), k))
        except _MissingField as e:
            skipped.append(f"row {k}: missing {e.field}")
    if skipped:
        logger.warning("%s: skipped %d rows that could not be converted (first: %s)", spec.hub_id, len(skipped),
                       skipped[0])
    return records


def _dedupe(records: list[dict]) -> list[dict]:
    seen, out = set(), []
    for r in records:
        if r["prompt"] not in seen:
            seen.add(r["prompt"])
            out.append(r)
    return out


# --- public API -------------------------------------------------------------------------------------------------------

def load_task(name: str, source: str | os.PathLike | None = None, split: str | None = None,
              limit: int | None = None) -> list[dict]:
    """Problem records of a named task (see `TASKS`), from `source` or, when None, from the hub.

    `split` picks the hub split (default: the task's evaluation or training split); a local file holds one
    split, so with `source` it must be None or that default. `limit` keeps the first records.
    """
    if name == "arithmetic":
        raise InputError("task 'arithmetic' is generated, not loaded: use s2dlab.core.tasks.arithmetic_splits")
    key = ALIASES.get(name, name)
    if key not in TASKS:
        raise InputError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)} (and 'arithmetic', generated)")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit={limit!r}: need a non-negative integer or None")
    spec = TASKS[key]
    if source is not None:
        if split not in (None, spec.hub_split):
            raise InputError(f"split={split!r} with a local source: a local file holds one split "
                             f"({spec.hub_split!r} for {key}); drop split or point source at that split's file")
        records = _load_local(_resolve(source, spec), spec)
    else:
        records = _load_hub(spec, split or spec.hub_split)
    if spec.dedupe:
        records = _dedupe(records)
    return records if limit is None else records[:limit]


def load_math500(source=None) -> list[dict]:
    return load_task("math500", source)


def load_aime24(source=None) -> list[dict]:
    return load_task("aime24", source)


def load_aime25(source=None) -> list[dict]:
    return load_task("aime25", source)


def load_amc23(source=None) -> list[dict]:
    return load_task("amc23", source)


def load_gsm8k(source=None) -> list[dict]:
    return load_task("gsm8k", source)


def load_math_train(source=None) -> list[dict]:
    return load_task("math", source)


def load_dapo(source=None) -> list[dict]:
    return load_task("dapo", source)


def split_records(records: list[dict], fractions: tuple[float, ...] = (0.8, 0.2),
                  seed: int = 0) -> tuple[list[dict], ...]:
    """Disjoint parts of `records` in the given proportions (e.g. teacher-RL / student-RL), deterministic by seed.

    Parts are cut over distinct problem texts, so a problem that appears twice never lands in two parts. Each
    part keeps the input order.
    """
    fractions = tuple(fractions)
    if not fractions or any(not isinstance(f, (int, float)) or f < 0 for f in fractions) or \
            abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions={fractions!r}: need non-negative numbers summing to 1")
    prompts = list(dict.fromkeys(r["prompt"] for r in records))
    random.Random(seed).shuffle(prompts)
    part_of, start, total = {}, 0, 0.0
    for k, fraction in enumerate(fractions):
        total += fraction
        end = len(prompts) if k == len(fractions) - 1 else round(total * len(prompts))
        part_of.update((p, k) for p in prompts[start:end])
        start = end
    parts: tuple[list[dict], ...] = tuple([] for _ in fractions)
    for r in records:
        parts[part_of[r["prompt"]]].append(r)
    return parts
