"""The data every stage reads: problem splits, the labeled pool and its halves, prompt sets, eval sets, grading.

The labeled pool (final answers only) is cut into two fixed random halves, as in the paper: **1H** for teacher RL
and the bridge of the four-stage workflow, **2H** for stage 3. The top block of the paper's Table 2 uses the whole
pool. `task.label_budget` keeps only the first N labeled problems (the label sweep); the halves are then N/2 each.

Splits of the embedded arithmetic task, one draw of distinct problems cut in this order (so changing a later
size never changes an earlier split):

    corpus   task.corpus_size   worked solutions with slips: the text the tiny base models are pretrained on
    select   base.select_size   stage-0 checkpoint selection
    pool     task.pool_size     labeled problems (final answers; clean gold solutions kept for the SFT arms)
    val      task.val_size      validation: every tuning decision is read here
    eval     task.eval_size     evaluation: reported, never tuned on

`task.family_tail > 0` draws pool, val and eval from a long tail over problem families (`arithmetic.family_of`);
corpus and select keep their uniform draw. `task.halves=by_family` cuts the pool so that no family is in both halves.

Real data (`task.name=dapo|math`): the training set is the pool, `task.val_size` problems are held out of it as
the validation split, and eval sets are loaded by name (`eval.sets`, `eval.sources`).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

from s2dlab.core.config import GRPO_SECTIONS, Config, ConfigError
from s2dlab.core.errors import InputError

LABELED = ("pool", "1h", "2h")  # the labeled sets a stage can train on
TAIL_SPLITS = ("pool", "val", "eval")  # the task's own distribution, drawn from a long tail with task.family_tail


@lru_cache(maxsize=8)
def _arithmetic(seed: int, n_terms: int, digits: int, sizes: tuple, slip_rate: float, family_tail: float = 0.0
                ) -> dict:
    from s2dlab.core.tasks.arithmetic import arithmetic_splits

    return arithmetic_splits(dict(sizes), seed=seed, n_terms=n_terms, digits=digits, slip_rate=slip_rate,
                             slip_splits=("corpus",), family_tail=family_tail, tail_splits=TAIL_SPLITS)


@lru_cache(maxsize=4)
def _real(name: str, source: str | None, seed: int, val_size: int) -> dict:
    from s2dlab.core.tasks import load_task

    records = load_task(name, source=source)
    prompts = list(dict.fromkeys(r["prompt"] for r in records))
    random.Random(seed).shuffle(prompts)
    val = set(prompts[:val_size])
    return {"pool_all": [r for r in records if r["prompt"] not in val],
            "val": [r for r in records if r["prompt"] in val]}


def task_splits(cfg: Config) -> dict[str, list[dict]]:
    """Every split of the configured task: `corpus`/`select`/`eval` (arithmetic only), `pool`, `1h`, `2h`, `val`.

    Records are `{"id", "prompt", "answer", "solution"}` (docs/CONTRACTS.md); the lists are shared and cached: do
    not modify them.
    """
    t = cfg.task
    if t.name == "arithmetic":
        sizes = (("corpus", t.corpus_size), ("select", cfg.base.select_size), ("pool", t.pool_size),
                 ("val", t.val_size), ("eval", t.eval_size))
        out = dict(_arithmetic(t.data_seed, t.n_terms, t.digits, tuple((k, v) for k, v in sizes if v > 0),
                               t.slip_rate, float(t.family_tail)))
        pool = out.get("pool", [])
    else:
        real = _real(t.name, t.source, t.data_seed, t.val_size)
        out, pool = {"val": real["val"]}, real["pool_all"]
    if t.label_budget is not None:
        if t.label_budget > len(pool):
            raise ConfigError(f"task.label_budget={t.label_budget} is larger than the labeled pool of {len(pool)} "
                              f"problems; lower the budget")
        pool = pool[: t.label_budget]
    if t.halves == "by_family":
        from s2dlab.core.tasks.arithmetic import family_halves

        first, second = family_halves(pool, t.data_seed)
        need = max(getattr(cfg, name).prompts_per_step for name in GRPO_SECTIONS)
        if len(first) < need:
            raise ConfigError(f"task.halves=by_family cut the labeled pool into halves of {len(first)} problems, "
                              f"fewer than the {need} prompts a GRPO step draws; raise task.pool_size (or "
                              f"task.label_budget), or use task.halves=random")
    else:
        half = len(pool) // 2
        first, second = pool[:half], pool[half:2 * half]
    out.update(pool=pool, **{"1h": first, "2h": second})
    return out


def labeled(cfg: Config, which: str) -> list[dict]:
    """The labeled problems of `which` (pool | 1h | 2h); an empty set is an error naming the sizes."""
    if which not in LABELED:
        raise ConfigError(f"labeled set {which!r} is not one of {', '.join(LABELED)}")
    records = task_splits(cfg)[which]
    if not records:
        raise ConfigError(f"the labeled set {which!r} is empty (task.pool_size={cfg.task.pool_size}, "
                          f"task.label_budget={cfg.task.label_budget}); raise the pool")
    return records


def prompt_set(cfg: Config, which: str) -> list[dict]:
    """Label-free prompts (`{"id", "prompt"}`) of a labeled set, for the warmup and OPD: answers are not used."""
    return [{"id": r["id"], "prompt": r["prompt"]} for r in labeled(cfg, which)]


def eval_sets(cfg: Config) -> dict[str, list[dict]]:
    """`{set name: records}` for `eval.sets`; `arithmetic` is the eval split, `arithmetic_val` the validation split."""
    out = {}
    for name in cfg.eval.sets:
        if name in ("arithmetic", "arithmetic_val"):
            if cfg.task.name != "arithmetic":
                raise ConfigError(f"eval.sets has {name!r} but task.name={cfg.task.name!r}; evaluate a real task "
                                  "on math500, aime24, aime25, gsm8k or amc23 (eval.sets=math500)")
            records = task_splits(cfg)["eval" if name == "arithmetic" else "val"]
        else:
            from s2dlab.core.tasks import load_task

            records = load_task(name, source=cfg.eval.sources.get(name))
        out[name] = records[: cfg.eval.limit] if cfg.eval.limit else records
    return out


def records_digest(sets: dict[str, list[dict]]) -> str:
    """A short digest of named problem sets (ids, prompts and answers): equal digests, the same problems."""
    import hashlib

    rows = [[name, [[r["id"], r["prompt"], r["answer"]] for r in records]] for name, records in sorted(sets.items())]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def probe_records(cfg: Config, n: int) -> list[dict]:
    """The first `n` problems of the first eval set: the fixed problems every probe snapshot samples."""
    if n <= 0:
        return []
    first = next(iter(eval_sets(cfg).values()))
    return first[:n]


def user_message(cfg: Config, problem: str) -> list[dict]:
    suffix = cfg.task.prompt_suffix
    return [{"role": "user", "content": f"{problem} {suffix}".strip() if suffix else problem}]


def chat_kwargs(cfg: Config) -> dict:
    """Keyword arguments for the chat template (`Config.chat_template_kwargs`)."""
    return cfg.chat_template_kwargs()


def grade_fn(cfg: Config):
    """`(completion, answer) -> bool` for the configured task (integer-only boxes on arithmetic)."""
    from s2dlab.core.rewards import grade

    integer_only = cfg.task.name == "arithmetic"
    return lambda completion, answer: grade(completion, answer, integer_only=integer_only)


def reward_fn(cfg: Config):
    """The TRL reward function of the task (`(completions, answer, **kw) -> list[float]`)."""
    from s2dlab.core.rewards import arithmetic_reward, math_reward

    return arithmetic_reward if cfg.task.name == "arithmetic" else math_reward


def write_jsonl(path: Path, rows: list[dict]) -> None:
    from s2dlab.core.runs import atomic_write_bytes

    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file this project wrote; a bad line is an `InputError` naming the file and line."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); delete the file to make it again") \
            from None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg}); delete the file to make it again") \
                    from None
    return rows
