"""Verifiable tasks as problem records `{"id", "prompt", "answer", "solution"}` (docs/CONTRACTS.md).

`arithmetic` is generated locally (the tiny preset); the math benchmarks and training sets are loaded from a
local JSONL or the Hugging Face Hub with `load_task`.
"""

from s2dlab.core.tasks.arithmetic import arithmetic_splits, make_problems, to_dataset
from s2dlab.core.tasks.math_datasets import (
    TASKS,
    DatasetNotAvailableError,
    load_aime24,
    load_aime25,
    load_amc23,
    load_dapo,
    load_gsm8k,
    load_math500,
    load_math_train,
    load_task,
    split_records,
)

__all__ = [
    "TASKS",
    "DatasetNotAvailableError",
    "arithmetic_splits",
    "load_aime24",
    "load_aime25",
    "load_amc23",
    "load_dapo",
    "load_gsm8k",
    "load_math500",
    "load_math_train",
    "load_task",
    "make_problems",
    "split_records",
    "to_dataset",
]
