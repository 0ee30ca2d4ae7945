"""Synthetic multi-step integer arithmetic: the embedded task of the `tiny` preset.

A problem joins `n_terms` numbers of `digits` digits with operators from `ops`, e.g. `7+3-5+8=?`. The answer is
the integer value (it may be negative) and the worked solution does one operation per line, products first and
then left to right, ending in the boxed answer:

    7+3=10
    10-5=5
    5+8=13
    \\boxed{13}

Each problem is one point of a finite space (numbers x operators) and the text determines the point, so distinct
indices give distinct problem texts, and disjoint splits are slices of one draw of distinct indices.

**Slips.** The corpus the tiny base models are pretrained on (the `sft` split) is not clean: each step where a
schoolchild's slip is possible is written wrong with probability `slip_rate`, the way web text carries common
mistakes. Three kinds, all on + and - of a non-negative running value `v` and a number `b`:

    carry   v + b crosses a ten   (v % 10 + b >= 10)     7+8=5      (the carry is dropped: 15 - 10)
    borrow  v - b borrows a ten   (v >= 10, v % 10 < b)  13-5=18    (the borrow is dropped: 8 + 10)
    sign    v - b goes below 0    (0 <= v < b)           3-5=2      (the minus sign is dropped)

The solution then carries on correctly from the wrong value, so the final answer is wrong and the solution looks
plausible. A model pretrained on this corpus puts about `slip_rate` of its probability on the slip at each such
step: its likelihood is not reward-shaped, and sparse-reward RL has something to remove (the paper's condition
C1). Gold solutions everywhere else (labeled pool, eval, `solution` of any record outside the corpus) are clean.
"""

from __future__ import annotations

import random
import re
from collections import Counter

ALLOWED_OPS = "+-*"
SLIP_KINDS = ("carry", "borrow", "sign")


def _check_knobs(n_terms: int, digits: int, ops: str) -> str:
    """Validated operator string (duplicates removed, order kept)."""
    if not isinstance(n_terms, int) or n_terms < 2:
        raise ValueError(f"n_terms={n_terms!r}: need an integer >= 2 (one operation per step)")
    if not isinstance(digits, int) or digits < 1:
        raise ValueError(f"digits={digits!r}: need an integer >= 1")
    if not isinstance(ops, str) or not ops or any(o not in ALLOWED_OPS for o in ops):
        raise ValueError(f"ops={ops!r}: need a non-empty string of operators from {ALLOWED_OPS!r}")
    return "".join(dict.fromkeys(ops))


def space_size(n_terms: int = 3, digits: int = 2, ops: str = "+-") -> int:
    """Number of distinct problems for these knobs."""
    ops = _check_knobs(n_terms, digits, ops)
    numbers = 10**digits - 10 ** (digits - 1)
    return numbers**n_terms * len(ops) ** (n_terms - 1)


def _decode(index: int, n_terms: int, digits: int, ops: str) -> tuple[list[int], list[str]]:
    """The problem at `index` of the space (mixed radix: numbers, then operators)."""
    low = 10 ** (digits - 1)
    count = 10**digits - low
    numbers = []
    for _ in range(n_terms):
        index, r = divmod(index, count)
        numbers.append(low + r)
    operators = []
    for _ in range(n_terms - 1):
        index, r = divmod(index, len(ops))
        operators.append(ops[r])
    return numbers, operators


def _apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def slip_of(value: int, op: str, b: int) -> tuple[str, int] | None:
    """`(kind, wrong result)` when `value op b` is a step where a slip is possible (see the module docstring)."""
    if value < 0 or op == "*":
        return None
    if op == "+" and value % 10 + b >= 10:
        return "carry", value + b - 10
    if op == "-" and value >= 10 and value % 10 < b:
        return "borrow", value - b + 10
    if op == "-" and value < b:
        return "sign", b - value
    return None


Step = tuple[int, str, int, int]  # one line of a worked solution: (left, operator, right, result)


def solve_steps(numbers: list[int], operators: list[str], slip_rate: float = 0.0, rng: random.Random | None = None
                ) -> tuple[int, list[Step]]:
    """(value, steps): products first (usual precedence), then + and - left to right, each step as
    `(left, op, right, result)`.

    With `slip_rate > 0` (and `rng`), each step where a slip is possible is written wrong with that probability,
    and the solution carries on from the wrong value (the returned value is then the wrong final answer).
    """
    numbers, operators, steps = list(numbers), list(operators), []
    while "*" in operators:
        k = operators.index("*")
        value = numbers[k] * numbers[k + 1]
        steps.append((numbers[k], "*", numbers[k + 1], value))
        numbers[k:k + 2] = [value]
        del operators[k]
    value = numbers[0]
    for op, b in zip(operators, numbers[1:]):
        result = _apply(value, op, b)
        slip = slip_of(value, op, b) if slip_rate > 0 else None
        if slip is not None and rng.random() < slip_rate:
            result = slip[1]
        steps.append((value, op, b, result))
        value = result
    return value, steps


def solve(numbers: list[int], operators: list[str], slip_rate: float = 0.0, rng: random.Random | None = None
          ) -> tuple[int, list[str]]:
    """(value, step lines) in the `steps` layout (`7+3=10`): `solve_steps`, written out."""
    value, steps = solve_steps(numbers, operators, slip_rate, rng)
    return value, [_LINE["steps"](s) for s in steps]


# --- layouts: the same worked solution written another way ------------------------------------------------------------
#
# Every layout writes the same steps with the same values and ends in the same `\boxed{v}` (the grader reads only
# the box, so a solution grades the same in every layout); what differs is the text a model is trained to produce.
# The tiny base teacher and the close student are pretrained on `steps`; the graded-distance students
# (`s2dlab.workflow.stages.base.STUDENT_LAYOUTS`) on the others, at the same slip rate.

LAYOUTS = {
    "steps": "one step per line, `7+3=10`, then the box (the teacher's corpus)",
    "blank_line": "the same lines with a blank line before the box",
    "running": "the first step in full, then only the operation and its result per line, `+8=13` (the running "
               "value is the previous line's result), then the box",
}
_LINE = {
    "steps": lambda s: f"{s[0]}{s[1]}{s[2]}={s[3]}",
    "blank_line": lambda s: f"{s[0]}{s[1]}{s[2]}={s[3]}",
    "running": lambda s: f"{s[1]}{s[2]}={s[3]}",
}
# full lines `detect_layout` counts (`blank_line` is told from `steps` by its blank line)
_LINE_RE = {
    "sum": re.compile(r"-?\d+[-+]\d+=-?\d+"),  # a `steps` line of + or - (products are written in full everywhere)
    "running": re.compile(r"[-+*]\d+=-?\d+"),
}
_STEPS_LINE = re.compile(r"(-?\d+)([-+*])(\d+)=(-?\d+)")


def render(steps: list[Step], value: int, layout: str = "steps") -> str:
    """A worked solution in `layout` (see `LAYOUTS`), ending in the boxed `value`."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not one of {', '.join(LAYOUTS)}")
    lines = [_LINE[layout](s) for s in steps]
    if layout == "running" and steps and steps[0][1] != "*":
        lines[0] = _LINE["steps"](steps[0])  # the running value has to start somewhere
    elif layout == "running":  # products first: each product in full, then the running operations
        lines = [_LINE["steps"](s) if s[1] == "*" else _LINE["running"](s) for s in steps]
        first_sum = next((k for k, s in enumerate(steps) if s[1] != "*"), None)
        if first_sum is not None:
            lines[first_sum] = _LINE["steps"](steps[first_sum])
    blank = [""] if layout == "blank_line" else []
    return "\n".join(lines + blank + [f"\\boxed{{{value}}}"])


def parse_solution(solution: str) -> tuple[list[Step], int]:
    """The steps and boxed value of a solution written in the `steps` layout (what every record's `solution`
    holds); a line that is not a step is a ValueError naming it."""
    *lines, box = solution.split("\n")
    m = re.fullmatch(r"\\boxed\{(-?\d+)\}", box)
    if not m:
        raise ValueError(f"{box!r} is not the boxed last line of a worked solution")
    steps = []
    for line in lines:
        s = _STEPS_LINE.fullmatch(line)
        if not s:
            raise ValueError(f"{line!r} is not a step line like 7+3=10")
        steps.append((int(s[1]), s[2], int(s[3]), int(s[4])))
    return steps, int(m[1])


def relayout(solution: str, layout: str) -> str:
    """A `steps`-layout solution written in another layout (the same steps, values and box)."""
    steps, value = parse_solution(solution)
    return render(steps, value, layout)


def in_layout(records: list[dict], layout: str) -> list[dict]:
    """Records whose `solution` is written in `layout` (the records themselves for `steps`, the layout they hold):
    what an SFT in another layout trains on, the graded students' corpus and the SFT teacher's gold solutions."""
    if layout == "steps":
        return records
    return [{**r, "solution": relayout(r["solution"], layout)} for r in records]


def detect_layout(completion: str) -> str:
    """The layout a completion is written in: `running` when it holds at least as many running lines (`+8=13`) as
    full sum lines (`5+8=13`; `running` writes its first sum in full), else `blank_line` when it holds an empty
    line, else `steps` (also for text in no layout)."""
    lines = completion.split("\n")
    counts = {name: sum(bool(rx.fullmatch(line)) for line in lines) for name, rx in _LINE_RE.items()}
    if counts["running"] and counts["running"] >= counts["sum"]:
        return "running"
    return "blank_line" if "" in lines[1:] else "steps"


def first_divergence(completion: str, solution: str) -> int | None:
    """Index of the first character of `completion` that departs from the gold worked `solution` (None when the
    completion is the solution). The arithmetic task has one canonical solution text per layout, so this is the
    first wrong character of a wrong rollout: the place a dense reward should blame. The gold solution (given in
    the `steps` layout, as records hold it) is compared in the layout the completion is written in
    (`detect_layout`), so a student pretrained on another layout is blamed at its first wrong value, not at its
    first character. A completion that stops early diverges where it stops (its length)."""
    layout = detect_layout(completion)
    if layout != "steps":
        try:
            solution = relayout(solution, layout)
        except ValueError:  # not a parseable steps-layout solution: compare the text as given
            pass
    for i, (a, b) in enumerate(zip(completion, solution)):
        if a != b:
            return i
    if len(completion) == len(solution):
        return None
    return min(len(completion), len(solution))


def _record(problem_id: str, numbers: list[int], operators: list[str], slip_rate: float = 0.0,
            rng: random.Random | None = None) -> dict:
    expression = str(numbers[0]) + "".join(f"{op}{b}" for op, b in zip(operators, numbers[1:]))
    value, steps = solve_steps(numbers, operators)
    record = {"id": problem_id, "prompt": f"{expression}=?", "answer": str(value), "solution": render(steps, value)}
    if slip_rate > 0:
        wrong, wrong_steps = solve_steps(numbers, operators, slip_rate, rng)
        record["solution"] = render(wrong_steps, wrong)
        record["slipped"] = wrong_steps != steps
    return record


def _draw_indices(total: int, seed: int, n_terms: int, digits: int, ops: str) -> list[int]:
    """`total` distinct indices of the problem space, uniformly, fixed by `seed`."""
    size = space_size(n_terms, digits, ops)
    if total > size:
        raise ValueError(f"asked for {total} distinct problems but n_terms={n_terms}, digits={digits}, ops={ops!r} "
                         f"allow only {size}; lower the sizes or raise n_terms/digits")
    return _distinct_indices(random.Random(seed), size, total)


def _draw(total: int, seed: int, n_terms: int, digits: int, ops: str) -> list[tuple[list[int], list[str]]]:
    ops = _check_knobs(n_terms, digits, ops)
    return [_decode(i, n_terms, digits, ops) for i in _draw_indices(total, seed, n_terms, digits, ops)]


# --- problem families and the long tail ---------------------------------------------------------------------------
#
# A problem's family is the slip each of its steps allows, with the number it happens on, in step order
# (`+carry8 -none -sign5`: a carry adding 8, a step with no possible slip, a sign slip subtracting 5): what its
# label can teach, since sparse RL on this task removes slips. The 52,488 problems of the tiny preset fall into
# 2,365 families of 1 to 1,695 problems. `task.family_tail=s` draws the labeled pool, val and eval from a long tail
# over families instead of uniformly: families are ranked in a random order fixed by the data seed, and every
# problem of the family of rank r weighs r^-s (s = 0 is the uniform draw). The corpus and the selection split stay
# uniform, so the shipped base models' pretraining text does not change. `family_halves` cuts a pool into halves
# that share no family (`task.halves=by_family`).

MAX_TAIL_SPACE = 1_000_000  # the long tail enumerates the space to know every problem's family


def family_of(numbers: list[int], operators: list[str]) -> str:
    """The family of a problem: per step, its operator and the slip it allows (carry, borrow or sign, with the
    number it adds or subtracts), or `none`."""
    _, steps = solve_steps(numbers, operators)
    words = []
    for left, op, right, _ in steps:
        slip = slip_of(left, op, right)
        words.append(f"{op}{slip[0]}{right}" if slip else f"{op}none")
    return " ".join(words)


def family_of_prompt(prompt: str) -> str:
    """`family_of` a record's prompt (`7+3-5+8=?`)."""
    m = re.fullmatch(r"(\d+(?:[-+*]\d+)+)=\?", prompt.strip())
    if not m:
        raise ValueError(f"{prompt!r} is not an arithmetic prompt like 7+3-5+8=?")
    tokens = re.findall(r"\d+|[-+*]", m[1])
    return family_of([int(t) for t in tokens[::2]], tokens[1::2])


def family_halves(records: list[dict], seed: int) -> tuple[list[dict], list[dict]]:
    """Two halves of `records` with no family in common (what a new half can bring at most): families, in a random
    order fixed by `seed`, go one by one to the half holding fewer problems so far; the larger half is then cut to
    the smaller's size. Records keep their order within a half."""
    family = {r["id"]: family_of_prompt(r["prompt"]) for r in records}
    sizes = Counter(family.values())
    order = sorted(sizes)
    random.Random(f"halves-{seed}").shuffle(order)
    first, counts = set(), [0, 0]
    for f in order:
        side = 0 if counts[0] <= counts[1] else 1
        counts[side] += sizes[f]
        if side == 0:
            first.add(f)
    a = [r for r in records if family[r["id"]] in first]
    b = [r for r in records if family[r["id"]] not in first]
    n = min(len(a), len(b))
    return a[:n], b[:n]


def _tail_draw(total: int, seed: int, exclude: set[int], family_tail: float, n_terms: int, digits: int,
               ops: str) -> list[int]:
    """`total` distinct indices outside `exclude`, each problem weighted by its family's rank^-family_tail, in a
    random order (weighted sampling without replacement, Efraimidis-Spirakis keys, then shuffled so every split cut
    from it has the same mix)."""
    import numpy as np

    size = space_size(n_terms, digits, ops)
    if size > MAX_TAIL_SPACE:
        raise ValueError(f"task.family_tail needs a problem space of at most {MAX_TAIL_SPACE:,} problems, and "
                         f"n_terms={n_terms}, digits={digits} give {size:,}; lower them or set task.family_tail=0")
    families = [family_of(*_decode(i, n_terms, digits, ops)) for i in range(size)]
    ranking = sorted(set(families))
    random.Random(f"families-{seed}").shuffle(ranking)
    rank = {f: r for r, f in enumerate(ranking, start=1)}
    weights = np.array([rank[f] ** -family_tail for f in families])
    keys = np.log(np.random.default_rng(seed).random(size)) / weights
    keys[list(exclude)] = -np.inf
    if total > size - len(exclude):
        raise ValueError(f"asked for {total} more distinct problems but only {size - len(exclude)} are left")
    chosen = [int(i) for i in np.argsort(-keys, kind="stable")[:total]]
    random.Random(f"tail-order-{seed}").shuffle(chosen)
    return chosen


def _distinct_indices(rng: random.Random, size: int, k: int) -> list[int]:
    """`k` distinct indices below `size`. Sparse draws reject the rare repeat (expected draws < 2k); dense ones
    sample the whole space, which is then small (`random.sample` needs len(range), so not for huge spaces)."""
    if 2 * k >= size:
        return rng.sample(range(size), k)
    seen: set[int] = set()
    out = []
    while len(out) < k:
        i = rng.randrange(size)
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def make_problems(n: int, seed: int, n_terms: int = 3, digits: int = 2, ops: str = "+-",
                  id_prefix: str = "arith") -> list[dict]:
    """`n` distinct problem records (see docs/CONTRACTS.md) with ids `<id_prefix>-00000`, ..., deterministic by seed."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r}: need a non-negative integer")
    return [_record(f"{id_prefix}-{k:05d}", nums, ops_) for k, (nums, ops_) in
            enumerate(_draw(n, seed, n_terms, digits, ops))]


def arithmetic_splits(sizes: dict[str, int], seed: int, n_terms: int = 3, digits: int = 2, ops: str = "+-",
                      id_prefix: str = "arith", slip_rate: float = 0.0, slip_splits: tuple[str, ...] = ("sft",),
                      family_tail: float = 0.0, tail_splits: tuple[str, ...] = ()) -> dict[str, list[dict]]:
    """Named splits with no problem text in common, e.g. `{"sft": 8000, "eval": 300}` -> ids `arith-eval-00042`.

    One draw of `sum(sizes)` distinct problems is cut in the order of `sizes`, so the result depends on the seed,
    the knobs and every size: keep the sizes fixed when comparing runs. The worked solutions of `slip_splits`
    carry slips at `slip_rate` (module docstring; the `answer` field stays the true value, and `slipped` says
    whether the written solution went wrong); every other split's solutions are clean.

    With `family_tail > 0` the splits named in `tail_splits` are drawn again from the long tail over families (see
    `family_of`), outside the other splits' problems, which keep their uniform draw unchanged.
    """
    if not 0.0 <= slip_rate < 1.0:
        raise ValueError(f"slip_rate={slip_rate!r}: need a probability in [0, 1)")
    for name, size in sizes.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"split name {name!r}: need a non-empty string")
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"sizes[{name!r}]={size!r}: need a non-negative integer")
    if not (isinstance(family_tail, (int, float)) and family_tail >= 0):
        raise ValueError(f"family_tail={family_tail!r}: need a number >= 0 (0 draws uniformly)")
    ops = _check_knobs(n_terms, digits, ops)
    indices = _draw_indices(sum(sizes.values()), seed, n_terms, digits, ops)
    cuts, start = {}, 0
    for name, size in sizes.items():
        cuts[name], start = slice(start, start + size), start + size
    tailed = [name for name in sizes if name in tail_splits] if family_tail > 0 else []
    if tailed:
        kept = {i for name, cut in cuts.items() if name not in tailed for i in indices[cut]}
        fresh = _tail_draw(sum(sizes[n] for n in tailed), seed, kept, family_tail, n_terms, digits, ops)
        for name in tailed:
            indices[cuts[name]], fresh = fresh[:sizes[name]], fresh[sizes[name]:]
    out = {}
    for name, cut in cuts.items():
        rate = slip_rate if name in slip_splits else 0.0
        rng = random.Random(f"slips-{seed}-{name}")
        out[name] = [_record(f"{id_prefix}-{name}-{k:05d}", *_decode(i, n_terms, digits, ops), rate, rng)
                     for k, i in enumerate(indices[cut])]
    return out


def to_dataset(records: list[dict]):
    """A `datasets.Dataset` with one row per record (columns id, prompt, answer, solution)."""
    from datasets import (
        Dataset,  # imported here: generating problems does not need datasets
    )

    return Dataset.from_list(records)
