"""The runs under one folder, as the dashboard reads them: `Store`, its file caches and `AppError`.

Safety. The app only ever reads inside `runs_root` (the one write: `s2dlab.workflow.summary.read_summary` writes the
summary.json of a run written before summaries existed, on its first read); runs are named by their path relative
to the root, and `Store.open` rejects absolute paths, `..`, and anything (a symlink included) that resolves outside
the root. Stages must be stage folders of the run. Expected problems (a missing, empty or corrupt run) raise
`AppError` with a sentence meant for the UI; the app shows it as a message instead of a traceback.

Caches are keyed on file identity (path, mtime, size), so a live run's new files are seen and unchanged ones are
not read again. Nothing here imports gradio or torch.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from s2dlab.core.errors import S2DLabError
from s2dlab.core.runs import (
    Run,
    RunStoreError,
    StageRecord,
    list_runs,
    open_run,
    read_json_file,
    read_rollout_file,
)
from s2dlab.core.token_text import TokenText
from s2dlab.views import viz
from s2dlab.workflow import summary as summary_mod


class AppError(S2DLabError):
    """A problem to show in the UI as a plain sentence (no traceback)."""


def whole_number(value, what: str, low: int | None = 0, high: int | None = None) -> int:
    """`value` (a number box's value: None, a float, a string) as an int in [low, high], else AppError with a
    sentence naming the value and what to type instead."""
    span = (f" from {low} to {high}" if low is not None and high is not None else
            f" of at least {low}" if low is not None else f" of at most {high}" if high is not None else "")
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AppError(f"{what.capitalize()} is empty: type a whole number{span}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AppError(f"{what.capitalize()} {value!r} is not a number: type a whole number{span}.") from None
    if not number.is_integer():
        raise AppError(f"{what.capitalize()} {value:g} is not a whole number: type a whole number{span}.")
    n = int(number)
    if (low is not None and n < low) or (high is not None and n > high):
        raise AppError(f"{what.capitalize()} {n} is out of range: type a whole number{span}.")
    return n


# --------------------------------------------------------------------------------------------------------------
# caches


class LRU:
    """A small thread-safe least-recently-used cache. `get(key, make)` builds a missing value once: a second
    caller asking for the same key while it is being built waits for it instead of building it again (two threads
    loading one model at once is what breaks a load)."""

    def __init__(self, size: int):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()
        self.building: dict = {}  # key -> the lock held while that value is built

    def get(self, key, make):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
            gate = self.building.setdefault(key, threading.Lock())
        with gate:
            with self.lock:
                if key in self.data:  # built by the caller we waited for
                    self.data.move_to_end(key)
                    return self.data[key]
            try:
                value = make()
            finally:
                with self.lock:
                    self.building.pop(key, None)
            with self.lock:
                self.data[key] = value
                self.data.move_to_end(key)
                while len(self.data) > self.size:
                    self.data.popitem(last=False)
        return value

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


def file_key(path: Path) -> tuple:
    """(path, mtime, size): a file's identity for the caches."""
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


SNAPSHOTS = LRU(32)
SUMMARIES = LRU(8)
TOKENIZERS = LRU(4)


class LazyVocab(Mapping):
    """id -> token text through the run's tokenizer, named on demand (a 150k vocabulary is never walked); a
    byte-level piece of a character reads as `\\xNN` escapes, as in the rows' `tokens`."""

    def __init__(self, token_text: TokenText, fallback: Mapping[int, str]):
        self.token_text, self.fallback, self.cache = token_text, fallback, {}

    def __getitem__(self, i: int) -> str:
        if i not in self.cache:
            try:
                self.cache[i] = self.token_text.name(int(i)) or None
            except Exception:  # ids beyond the vocabulary, odd tokenizers: fall back to the rows' own tokens
                self.cache[i] = None
            if self.cache[i] is None:
                self.cache[i] = self.fallback[i]
        return self.cache[i]

    def get(self, i, default=None):
        try:
            return self[i]
        except KeyError:
            return default

    def __iter__(self):
        return iter(self.fallback)

    def __len__(self):
        return len(self.fallback)


def fast_tokenizer(folder: Path) -> TokenText:
    """The tokenizer of `folder` through the `tokenizers` library alone: names ids without loading transformers."""
    from tokenizers import Tokenizer

    return TokenText(Tokenizer.from_file(str(folder / "tokenizer.json")))


# --------------------------------------------------------------------------------------------------------------
# the store


class Store:
    """Runs under `runs_root`, addressed by their path relative to it ("." when the root itself is a run)."""

    def __init__(self, runs_root: str | os.PathLike):
        self.root = Path(runs_root).expanduser().resolve()

    # ---- runs

    def run_choices(self) -> list[str]:
        """Run ids (relative paths) under the root, sorted, each folder of seeds (`seed_<k>` runs under a folder
        without run.json, as `s2dlab run --seeds N` writes) just before its seeds; [] when the root holds none."""
        out = []
        for p in list_runs(self.root):
            rel = p.relative_to(self.root).as_posix() or "."
            parent = p.parent
            if (p.name.startswith("seed_") and parent != p and not (parent / "run.json").exists()
                    and (self.root == parent or self.root in parent.parents)):
                agg = parent.relative_to(self.root).as_posix() or "."
                if agg not in out:
                    out.append(agg)
            out.append(rel)
        return out

    def run_options(self) -> list[tuple[str, str]]:
        """(label, run id) for the run picker: a folder of seeds is labelled with its seed count."""
        return [(f"{r} ({len(self.seed_runs(r))} seeds, aggregate)" if self.is_aggregate(r) else r, r)
                for r in self.run_choices()]

    def is_aggregate(self, run_id: str | None) -> bool:
        """True when `run_id` is a folder of `seed_<k>` runs (no run.json of its own)."""
        if not run_id:
            return False
        path = self.path_of(run_id)
        return not (path / "run.json").exists() and any(path.glob("seed_*/run.json"))

    def seed_runs(self, run_id: str) -> list[str]:
        path = self.path_of(run_id)
        seeds = sorted((p.parent for p in path.glob("seed_*/run.json")), key=lambda p: (len(p.name), p.name))
        return [p.relative_to(self.root).as_posix() for p in seeds]

    def path_of(self, run_id: str) -> Path:
        """The folder of `run_id` inside the root; AppError for anything that leaves it."""
        rel = Path(str(run_id))
        if rel.is_absolute() or ".." in rel.parts:
            raise AppError(f"{run_id!r} is not a run inside {self.root}.")
        return self.inside(self.root / rel)

    def inside(self, path: Path) -> Path:
        """`path` resolved, or AppError when it resolves outside the root (a symlink included)."""
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise AppError(f"{path} is outside the runs folder {self.root}; the app reads nothing outside it.")
        return resolved

    def summary(self, run_id: str | None) -> dict:
        """The run's summary.json through `s2dlab.workflow.summary.read_summary` (a run written before summaries existed is
        summarised on first read); a folder of seeds gives its aggregate. Cached while the file is unchanged."""
        if self.is_aggregate(run_id):
            path = self.path_of(run_id) / summary_mod.SUMMARY_FILE
            if not path.is_file():
                raise AppError(f"{run_id!r} is a folder of seeds without an aggregate {summary_mod.SUMMARY_FILE} yet: "
                               f"it is written when `s2dlab run --seeds N --out {run_id}` finishes.")
            try:
                got = SUMMARIES.get(("agg", *file_key(path)), lambda: read_json_file(path))
            except RunStoreError as e:
                raise AppError(f"Cannot read the aggregate summary: {e}") from e
            if not isinstance(got, dict):
                raise AppError(f"{path} is not a summary (expected a JSON object).")
            return got
        run = self.open(run_id)
        path = run.path / summary_mod.SUMMARY_FILE
        key = file_key(path) if path.is_file() else None
        try:
            if key is None:
                return summary_mod.read_summary(run)
            return SUMMARIES.get(key, lambda: summary_mod.read_summary(run))
        except RunStoreError as e:
            raise AppError(f"Cannot read the summary of {run_id!r}: {e}") from e
        except Exception as e:  # an old or partial run the summary cannot describe: a sentence, not a traceback
            raise AppError(f"Cannot summarise run {run_id!r} ({type(e).__name__}: {e}); rerun a stage or "
                           f"`s2dlab score {run.path}` to see why.") from e

    def open(self, run_id: str | None) -> Run:
        """The run `run_id`, or AppError (no run chosen, outside the root, missing, corrupt)."""
        if not run_id:
            raise AppError(f"No run selected. Runs folder: {self.root}"
                           + ("" if self.run_choices() else " (no runs found: it holds no run.json)."))
        path = self.path_of(run_id)
        if self.is_aggregate(run_id):
            raise AppError(f"{run_id!r} is a folder of {len(self.seed_runs(run_id))} seeds: the Stages tab shows their "
                           f"aggregate; pick one seed's run ({self.seed_runs(run_id)[0]}) for the token views.")
        try:
            return open_run(path)
        except RunStoreError as e:
            raise AppError(f"Cannot open run {run_id!r}: {e}") from e

    # ---- stages and snapshots

    def stage_path(self, run: Run, stage: str | None) -> Path:
        if not stage:
            raise AppError("No stage selected.")
        try:
            folder = run.stage_dir(stage)
        except ValueError as e:
            raise AppError(str(e)) from e
        return self.inside(folder)

    def record(self, run: Run, stage: str) -> StageRecord | None:
        """The stage's record (`Run.stage`), or None while its stage.json is being written or cannot be read."""
        try:
            return run.stage(stage)
        except (RunStoreError, ValueError):
            return None

    def stages(self, run_id: str) -> list[str]:
        return self.open(run_id).stages()

    def snapshot_stages(self, run_id: str) -> list[str]:
        """Stages that have at least one rollout snapshot, in workflow order."""
        run = self.open(run_id)
        return [s for s in run.stages() if run.rollout_steps(s)]

    def steps(self, run_id: str, stage: str) -> list[int]:
        run = self.open(run_id)
        self.stage_path(run, stage)
        return run.rollout_steps(stage)

    def snapshot(self, run_id: str, stage: str, step: int | str | None = None) -> pd.DataFrame:
        """One rollout snapshot (latest when `step` is None), cached while the file is unchanged."""
        run = self.open(run_id)
        self.stage_path(run, stage)
        steps = run.rollout_steps(stage)
        if not steps:
            raise AppError(f"Stage {stage!r} of {run_id!r} has no rollout snapshots yet.")
        step = steps[-1] if step in (None, "") else whole_number(step, "the snapshot step", 0)
        if step not in steps:
            raise AppError(f"Stage {stage!r} has no snapshot at step {step} (it has {steps}).")
        path = self.inside(run.rollout_path(stage, step))
        try:
            df = SNAPSHOTS.get(file_key(path), lambda: read_rollout_file(path))
        except RunStoreError as e:
            raise AppError(f"Cannot read this snapshot: {e}") from e
        if df.empty or "tokens" not in df:
            raise AppError(f"{path} holds no scored rollouts.")
        if "policy" not in df:
            df = df.assign(policy="student")
        return df

    def rows_file(self, run: Run, relpath: str) -> list[dict] | None:
        """The rows of a parquet file of the run (the fixed C1/C2 rollouts), None when it does not exist."""
        path = self.inside(run.path / relpath)
        if not path.is_file():
            return None
        try:
            return SNAPSHOTS.get(file_key(path), lambda: read_rollout_file(path)).to_dict("records")
        except RunStoreError as e:
            raise AppError(f"Cannot read {relpath}: {e}") from e

    # ---- tokenizers

    def vocab(self, run: Run, df: pd.DataFrame) -> Mapping[int, str]:
        """Names for top-k ids: the run's saved tokenizer when there is one inside the root, else the rows."""
        fallback = viz.vocab_from_rows(df)
        folder = self.tokenizer_dir(run)
        if folder is None:
            return fallback
        try:
            tok = TOKENIZERS.get(file_key(folder / "tokenizer.json"), lambda: fast_tokenizer(folder))
        except Exception:  # an unreadable tokenizer only costs the names of the alternatives
            return fallback
        return LazyVocab(tok, fallback)

    def tokenizer_dir(self, run: Run, stage: str | None = None) -> Path | None:
        """The run's saved tokenizer (`tokenizer/`, else a stage's `model/`) inside the root, or None."""
        candidates = [run.path / "tokenizer"]
        if stage:
            candidates.insert(0, run.model_dir(stage))
        candidates += [run.model_dir(s) for s in run.stages()]
        for folder in candidates:
            if (folder / "tokenizer.json").is_file():
                try:
                    return self.inside(folder)
                except AppError:
                    continue
        return None
