"""Data access for the dashboard: everything its callbacks need, as plain Python over s2dlab.runs and s2dlab.viz.

`s2dlab.dashboard.app` holds the layout and wires these functions to components; nothing here imports gradio, so
each view is testable by calling it directly (tests/test_app.py). The views that run saved checkpoints
(counterfactual branches, the estimator panel) are in `s2dlab.dashboard.live`.

Readers render, they never recompute: the Stages tab shows the run's `summary.json` (`s2dlab.summary`, the one
definition of C1, C2, the arms' intervals and the paper's predictions) and the rows it was measured on; the token
lens is read from `lens/` (`s2dlab.lens`). Nothing here calls a measure or a verdict of `s2dlab.diagnostics`.

Safety. The app only ever reads inside `runs_root` (the one write: `s2dlab.summary.read_summary` writes the
summary.json of a run written before summaries existed, on its first read); runs are named by their path
relative to the root, and `Store.open` rejects absolute paths, `..`, and anything (a symlink included) that
resolves outside the root.
Stages must be stage folders of the run. Expected problems (a missing, empty or corrupt run) raise `AppError` with
a sentence meant for the UI; the app shows it as a message instead of a traceback.
"""

from __future__ import annotations

import html
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from s2dlab import summary as summary_mod
from s2dlab import viz
from s2dlab.errors import S2DLabError
from s2dlab.runs import (Run, RunStoreError, list_runs, open_run, read_json_file, read_rollout_file,
                         stage_sort_key)
from s2dlab.token_text import TokenText
from s2dlab.viz.figures import CURVE_LABELS, curve_names


class AppError(S2DLabError):
    """A problem to show in the UI as a plain sentence (no traceback)."""


# Above this many bytes of weights a model is "large" for live scoring on a CPU (a 0.5B model in float32).
LARGE_MODEL_BYTES = 2 * 1024 ** 3
TABLE_COLUMNS = ["prompt_id", "sample_idx", "policy", "correct", "length", "sum_implicit_reward", "mean_reverse_kl",
                 "answer", "extracted", "completion"]
COLOR_BY = {"implicit reward": "implicit_reward", "reverse KL": "reverse_kl", "forward KL": "forward_kl"}


# --------------------------------------------------------------------------------------------------------------
# small caches keyed on file identity, so a live run's new files are seen and unchanged ones are not re-read


class _LRU:
    def __init__(self, size: int):
        self.size, self.data, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key, make):
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        value = make()
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


def _file_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


_SNAPSHOTS = _LRU(32)
_SUMMARIES = _LRU(8)
_TOKENIZERS = _LRU(4)
_MODELS = _LRU(4)


class _LazyVocab(Mapping):
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


# --------------------------------------------------------------------------------------------------------------
# the store: runs under one root


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
        path = self._path(run_id)
        return not (path / "run.json").exists() and any(path.glob("seed_*/run.json"))

    def seed_runs(self, run_id: str) -> list[str]:
        path = self._path(run_id)
        seeds = sorted((p.parent for p in path.glob("seed_*/run.json")), key=lambda p: (len(p.name), p.name))
        return [p.relative_to(self.root).as_posix() for p in seeds]

    def _path(self, run_id: str) -> Path:
        rel = Path(str(run_id))
        if rel.is_absolute() or ".." in rel.parts:
            raise AppError(f"{run_id!r} is not a run inside {self.root}.")
        return self._inside(self.root / rel)

    def summary(self, run_id: str | None) -> dict:
        """The run's summary.json through `s2dlab.summary.read_summary` (a run written before summaries existed is
        summarised on first read); a folder of seeds gives its aggregate. Cached while the file is unchanged."""
        if self.is_aggregate(run_id):
            path = self._path(run_id) / summary_mod.SUMMARY_FILE
            if not path.is_file():
                raise AppError(f"{run_id!r} is a folder of seeds without an aggregate {summary_mod.SUMMARY_FILE} yet: "
                               f"it is written when `s2dlab run --seeds N --out {run_id}` finishes.")
            try:
                got = _SUMMARIES.get(("agg", *_file_key(path)), lambda: read_json_file(path))
            except RunStoreError as e:
                raise AppError(f"Cannot read the aggregate summary: {e}") from e
            if not isinstance(got, dict):
                raise AppError(f"{path} is not a summary (expected a JSON object).")
            return got
        run = self.open(run_id)
        path = run.path / summary_mod.SUMMARY_FILE
        key = _file_key(path) if path.is_file() else None
        try:
            if key is None:
                return summary_mod.read_summary(run)
            return _SUMMARIES.get(key, lambda: summary_mod.read_summary(run))
        except RunStoreError as e:
            raise AppError(f"Cannot read the summary of {run_id!r}: {e}") from e
        except Exception as e:  # an old or partial run the summary cannot describe: a sentence, not a traceback
            raise AppError(f"Cannot summarise run {run_id!r} ({type(e).__name__}: {e}); rerun a stage or "
                           f"`s2dlab score {run.path}` to see why.") from e

    def _inside(self, path: Path) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise AppError(f"{path} is outside the runs folder {self.root}; the app reads nothing outside it.")
        return resolved

    def open(self, run_id: str | None) -> Run:
        """The run `run_id`, or AppError (no run chosen, outside the root, missing, corrupt)."""
        if not run_id:
            raise AppError(f"No run selected. Runs folder: {self.root}"
                           + ("" if self.run_choices() else " (no runs found: it holds no run.json)."))
        path = self._path(run_id)
        if self.is_aggregate(run_id):
            raise AppError(f"{run_id!r} is a folder of {len(self.seed_runs(run_id))} seeds: the Stages tab shows their "
                           f"aggregate; pick one seed's run ({self.seed_runs(run_id)[0]}) for the token views.")
        try:
            return open_run(path)
        except RunStoreError as e:
            raise AppError(f"Cannot open run {run_id!r}: {e}") from e

    def stage_path(self, run: Run, stage: str | None) -> Path:
        if not stage:
            raise AppError("No stage selected.")
        try:
            folder = run.stage_dir(stage)
        except ValueError as e:
            raise AppError(str(e)) from e
        return self._inside(folder)

    # ---- stages and snapshots

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
        step = steps[-1] if step in (None, "") else int(step)
        if step not in steps:
            raise AppError(f"Stage {stage!r} has no snapshot at step {step} (it has {steps}).")
        path = self._inside(run.rollout_path(stage, step))
        try:
            df = _SNAPSHOTS.get(_file_key(path), lambda: read_rollout_file(path))
        except RunStoreError as e:
            raise AppError(f"Cannot read this snapshot: {e}") from e
        if df.empty or "tokens" not in df:
            raise AppError(f"{path} holds no scored rollouts.")
        if "policy" not in df:
            df = df.assign(policy="student")
        return df

    def vocab(self, run: Run, df: pd.DataFrame) -> Mapping[int, str]:
        """Names for top-k ids: the run's saved tokenizer when there is one inside the root, else the rows."""
        fallback = viz.vocab_from_rows(df)
        folder = self.tokenizer_dir(run)
        if folder is None:
            return fallback
        try:
            tok = _TOKENIZERS.get(_file_key(folder / "tokenizer.json"), lambda: _fast_tokenizer(folder))
        except Exception:  # an unreadable tokenizer only costs the names of the alternatives
            return fallback
        return _LazyVocab(tok, fallback)

    def tokenizer_dir(self, run: Run, stage: str | None = None) -> Path | None:
        """The run's saved tokenizer (`tokenizer/`, else a stage's `model/`) inside the root, or None."""
        candidates = [run.path / "tokenizer"]
        if stage:
            candidates.insert(0, run.model_dir(stage))
        candidates += [run.model_dir(s) for s in run.stages()]
        for folder in candidates:
            if (folder / "tokenizer.json").is_file():
                try:
                    return self._inside(folder)
                except AppError:
                    continue
        return None


def _fast_tokenizer(folder: Path) -> TokenText:
    # the `tokenizers` library alone: names ids without loading a transformers tokenizer
    from tokenizers import Tokenizer

    return TokenText(Tokenizer.from_file(str(folder / "tokenizer.json")))


def _hf_tokenizer(folder: Path):
    from s2dlab.models import load_tokenizer

    return load_tokenizer(folder, local_files_only=True)


# --------------------------------------------------------------------------------------------------------------
# choices for the pickers


def _is_student(df: pd.DataFrame) -> pd.Series:
    return df["policy"].fillna("student") != "teacher"


def _prompt_text(s: Any, limit: int = 60) -> str:
    s = " ".join(str(s or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def problem_choices(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, prompt_id) per problem of a snapshot, labelled with the student's correct count."""
    out = []
    for pid, group in df.groupby("prompt_id", sort=False):
        stud = group[_is_student(group)]
        graded = stud["correct"].dropna() if "correct" in stud else pd.Series([], dtype=object)
        score = f" [{int(graded.astype(bool).sum())}/{len(graded)} correct]" if len(graded) else ""
        prompt = group["prompt"].iloc[0] if "prompt" in group else ""
        out.append((f"{pid}: {_prompt_text(prompt)}{score}", str(pid)))
    return out


def sample_choices(df: pd.DataFrame, prompt_id: str | None, policy: str = "student") -> list[tuple[str, int]]:
    """(label, sample_idx) of a problem's rollouts by `policy`."""
    if prompt_id is None:
        return []
    mask = (df["prompt_id"].astype(str) == str(prompt_id))
    mask &= _is_student(df) if policy == "student" else ~_is_student(df)
    out = []
    for _, row in df[mask].sort_values("sample_idx").iterrows():
        out.append((f"#{int(row['sample_idx'])} {badge_text(row.get('correct'))}", int(row["sample_idx"])))
    return out


def _pick(df: pd.DataFrame, prompt_id: str, policy: str, sample_idx: int | None) -> pd.Series | None:
    mask = (df["prompt_id"].astype(str) == str(prompt_id))
    mask &= _is_student(df) if policy == "student" else ~_is_student(df)
    rows = df[mask]
    if rows.empty:
        return None
    if sample_idx is not None and "sample_idx" in rows:
        exact = rows[rows["sample_idx"].astype(int) == int(sample_idx)]
        if not exact.empty:
            return exact.iloc[0]
    return rows.sort_values("sample_idx").iloc[0] if "sample_idx" in rows else rows.iloc[0]


# --------------------------------------------------------------------------------------------------------------
# token view


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def badge_text(correct) -> str:
    if _missing(correct):
        return "ungraded"
    return "✓ correct" if bool(correct) else "✗ incorrect"


_BADGE_CSS = ("<style>.s2d-badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;"
              "font-size:12px;margin-right:8px}.s2d-ok{background:#d1e5f0;color:#053061}"
              ".s2d-bad{background:#fddbc7;color:#67001f}.s2d-na{background:#eee;color:#333}"
              ".s2d-head{font-family:system-ui,sans-serif;font-size:13px;margin:4px 0}</style>")


def rollout_header_html(row: pd.Series, who: str) -> str:
    """Who sampled it, a correct/incorrect badge, the gold and the extracted answer (all escaped)."""
    correct = row.get("correct")
    cls = "s2d-na" if _missing(correct) else ("s2d-ok" if bool(correct) else "s2d-bad")
    gold = row.get("answer")
    extracted = row.get("extracted")
    esc = html.escape
    parts = [f'<span class="s2d-badge {cls}" data-testid="badge">{esc(badge_text(correct))}</span>',
             f"<b>{esc(who)}</b> sample #{int(row.get('sample_idx', 0))}",
             f" · gold <code>{esc('—' if _missing(gold) else str(gold))}</code>",
             f" · extracted <code>{esc('none' if _missing(extracted) else str(extracted))}</code>",
             f" · {int(row.get('length', len(row.get('tokens') or [])))} tokens"]
    if not _missing(row.get("sum_implicit_reward")):
        parts.append(f" · Σ implicit reward {float(row['sum_implicit_reward']):+.2f}")
    if not _missing(row.get("mean_reverse_kl")):
        parts.append(f" · mean reverse KL {float(row['mean_reverse_kl']):.3f}")
    return f'{_BADGE_CSS}<div class="s2d-head">{"".join(parts)}</div>'


def token_view(store: Store, run_id: str, stage: str, step, prompt_id: str | None, sample_idx: int | None,
               teacher_idx: int | None = None, color_by: str = "implicit reward"):
    """(student html, teacher html, per-position figure, note) for one problem of one snapshot.

    Both heatmaps share one colour range, so equal colours mean equal values.
    """
    df = store.snapshot(run_id, stage, step)
    run = store.open(run_id)
    if prompt_id is None:
        prompt_id = str(df["prompt_id"].iloc[0])
    value = COLOR_BY.get(color_by, "implicit_reward")
    student = _pick(df, prompt_id, "student", sample_idx)
    teacher = _pick(df, prompt_id, "teacher", teacher_idx)
    if student is None and teacher is None:
        raise AppError(f"Problem {prompt_id!r} is not in this snapshot.")
    vocab = store.vocab(run, df)
    vmax = viz.heatmap_vmax([student, teacher], value)
    prompt = (student if student is not None else teacher).get("prompt", "")
    note = f"**Problem {html.escape(str(prompt_id))}:** `{_prompt_text(prompt, 200)}`"

    def render(row, who):
        if row is None:
            return (f"<div class='s2d-head'>No {who} rollout for this problem in this snapshot"
                    + (" (teacher samples are taken only when the probe asks for them)." if who == "teacher" else ".")
                    + "</div>")
        return rollout_header_html(row, who) + viz.rollout_heatmap_html(row, value=value, vmax=vmax,
                                                                          id_to_text=vocab, max_height=420)

    fig = viz.per_token_figure(student if student is not None else teacher)
    return render(student, "student"), render(teacher, "teacher"), fig, note


# --------------------------------------------------------------------------------------------------------------
# rollouts table


def rollout_table(store: Store, run_id: str, stage: str, step, correct: str = "all",
                  policy: str = "all") -> pd.DataFrame:
    """One row per rollout: correct, length, summed implicit reward, mean reverse KL, answers, a text preview."""
    df = store.snapshot(run_id, stage, step)
    out = pd.DataFrame({
        "prompt_id": df["prompt_id"].astype(str),
        "sample_idx": df["sample_idx"].astype(int) if "sample_idx" in df else 0,
        "policy": df["policy"].fillna("student").astype(str),
        "correct": df["correct"].map(lambda v: None if _missing(v) else bool(v)) if "correct" in df else None,
        "length": df["tokens"].map(len),
    })
    ir = df["implicit_reward"] if "implicit_reward" in df else pd.Series([None] * len(df))
    rkl = df["reverse_kl"] if "reverse_kl" in df else pd.Series([None] * len(df))
    out["sum_implicit_reward"] = [round(float(sum(v)), 4) if v is not None else None for v in ir]
    out["mean_reverse_kl"] = [round(float(sum(v)) / max(1, len(v)), 4) if v is not None else None for v in rkl]
    out["answer"] = df["answer"].map(lambda v: "" if _missing(v) else str(v)) if "answer" in df else ""
    out["extracted"] = df["extracted"].map(lambda v: "" if _missing(v) else str(v)) if "extracted" in df else ""
    out["completion"] = df["completion"].map(lambda s: _prompt_text(s, 80)) if "completion" in df else ""
    if correct == "correct":
        out = out[out["correct"] == True]  # noqa: E712  (None stays out)
    elif correct == "incorrect":
        out = out[out["correct"] == False]  # noqa: E712
    if policy in ("student", "teacher"):
        out = out[out["policy"] == policy]
    return out[TABLE_COLUMNS].reset_index(drop=True)


def row_target(row_value: list | None) -> tuple[str, str, int] | None:
    """(prompt_id, policy, sample_idx) from a selected table row's values (columns as in TABLE_COLUMNS)."""
    if not row_value or len(row_value) < 3:
        return None
    try:
        return str(row_value[0]), str(row_value[2]), int(float(row_value[1]))
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------------
# stages view: the run's summary, rendered


def _stage_order(stages) -> list[str]:
    return sorted(stages, key=stage_sort_key)


def verdict_markdown(summary: Mapping, key: str | None = None) -> str:
    """The summary's own words: its `c1` or `c2` verdict (`key`), or for an aggregate of seeds every seed's C1 and
    C2 verdicts (`key` None). Nothing is judged here."""
    esc = lambda t: "<br>".join(html.escape(line, quote=False) for line in str(t).splitlines())  # noqa: E731
    if key is None:
        if not summary.get("per_seed"):
            return ""
        parts = [f"**{len(summary['per_seed'])} seeds** ({', '.join(str(s) for s in summary.get('seeds', []))}): "
                 "the accuracy intervals cover problems and seeds; C1 and C2 below are each seed's own verdicts."]
        for seed in summary["per_seed"]:
            for k in ("c1", "c2"):
                text = (seed.get(k) or {}).get("verdict")
                if text:
                    parts.append(f"**seed {seed.get('seed')}** " + esc(text))
        return "\n\n".join(parts)
    text = (summary.get(key) or {}).get("verdict")
    return esc(text) if text else f"No {key.upper()} verdict in this run's summary yet."


DEFAULT_CURVES = ("probe/accuracy", "probe/auroc", "probe/mean_reverse_kl", "reward", "loss")
DEFAULT_CURVE_STAGES = ("teacher_grpo", "fkl_warmup", "opd", "student_grpo", "cold_grpo")


def curve_choices(summary: Mapping) -> tuple[list[str], list[str], list[str], list[str]]:
    """(metric choices, default metrics, stage choices, default stages) for the curves, from the summary's
    `metric_names` of each stage: the curves s2dlab knows first (`viz.CURVE_LABELS`), bookkeeping left out; the
    default is `DEFAULT_CURVES` over the four-stage workflow and cold GRPO (`DEFAULT_CURVE_STAGES`)."""
    stages = summary.get("stages") or {}
    names = {m for e in stages.values() for m in (e or {}).get("metric_names") or []}
    metrics = curve_names(names)
    default = [m for m in DEFAULT_CURVES if m in metrics] or [m for m in metrics if m in CURVE_LABELS] or metrics[:4]
    with_metrics = _stage_order(s for s, e in stages.items() if (e or {}).get("metric_names"))
    default_stages = [s for s in with_metrics if s in DEFAULT_CURVE_STAGES] or with_metrics
    return metrics, default, with_metrics, default_stages


def curves_view(store: Store, run_id: str, metrics=None, stages=None):
    """The stage curves of a run (`viz.stage_curves_figure`), each point carrying (stage, step) for drill-down."""
    run = store.open(run_id)
    try:
        return viz.stage_curves_figure(run, metrics=metrics or None, stages=_stage_order(stages) if stages else None)
    except RunStoreError as e:
        raise AppError(f"Cannot read metrics: {e}") from e


def c2_files(pair: Mapping) -> tuple[str | None, str]:
    """(before, after) rollout files of one `c2.pairs` entry, as `s2dlab.summary.c2_summary` recorded them."""
    return pair.get("before_file"), pair["after_file"]


def _rows_file(store: Store, run: Run, relpath: str) -> list[dict] | None:
    path = store._inside(run.path / relpath)
    if not path.is_file():
        return None
    try:
        return _SNAPSHOTS.get(_file_key(path), lambda: read_rollout_file(path)).to_dict("records")
    except RunStoreError as e:
        raise AppError(f"Cannot read {relpath}: {e}") from e


def c2_choices(summary: Mapping) -> list[str]:
    pairs = (summary.get("c2") or {}).get("pairs") or []
    return _stage_order(p["stage"] for p in pairs)


def c2_view(store: Store, run_id: str, stage: str | None):
    """The C2 histogram of one distillation stage (default: `opd`, else the first), from the diagnostics files."""
    summary = store.summary(run_id)
    pairs = {p["stage"]: p for p in (summary.get("c2") or {}).get("pairs") or []}
    if not pairs:
        return viz.c2_pair_figure(None, None, None)
    stage = stage if stage in pairs else ("opd" if "opd" in pairs else c2_choices(summary)[0])
    run = store.open(run_id)
    before, after = c2_files(pairs[stage])
    return viz.c2_pair_figure(pairs[stage], _rows_file(store, run, before) if before else None,
                              _rows_file(store, run, after))


def c1_view(store: Store, run_id: str):
    summary = store.summary(run_id)
    c1 = summary.get("c1") or {}
    run = store.open(run_id)
    rows = {t: _rows_file(store, run, summary_mod.c1_path(t)) for t in (c1.get("teachers") or {})}
    return viz.c1_rollouts_figure(c1, rows)


def stages_view(store: Store, run_id: str) -> dict:
    """Everything the Stages tab shows, rendered from the run's summary (`s2dlab.summary.read_summary`) and the
    rows it was measured on: `arms`, `claims` (DataFrames), `arms_figure`, `c1_figure`, `c1_table`, `c2_figure`,
    `c2_table`, `c2_choices`, `c2_stage`, `quadrants`, `curves`, `metrics` / `metrics_default` / `curve_stages` /
    `curve_stages_default` (the curve pickers), `verdict` (an aggregate's per-seed verdicts), `c1_verdict` and
    `c2_verdict` (the summary's own words) and `note`.

    A folder of seeds shows its aggregate (arms, predictions, per-seed verdicts); the per-run figures then say to
    pick one seed's run."""
    summary = store.summary(run_id)
    out = {"arms": viz.arms_frame(summary), "claims": viz.claims_frame(summary),
           "arms_figure": viz.arms_figure(summary), "verdict": verdict_markdown(summary),
           "c1_verdict": verdict_markdown(summary, "c1"), "c2_verdict": verdict_markdown(summary, "c2"),
           "c1_table": viz.c1_frame(summary), "c2_table": viz.c2_frame(summary)}
    if store.is_aggregate(run_id):
        msg = "pick one seed's run for C1, C2, the quadrants and the curves"
        empty = viz.figures._empty_figure
        out.update(c1_verdict="", c2_verdict="", c1_figure=empty(msg), c2_figure=empty(msg),
                   c2_choices=[], c2_stage=None, quadrants=viz.figures._empty_figure(msg),
                   curves=viz.figures._empty_figure(msg), metrics=[], metrics_default=[], curve_stages=[],
                   curve_stages_default=[],
                   note=f"The aggregate summary of {len(summary.get('seeds') or [])} seeds "
                        f"({', '.join(s for s in store.seed_runs(run_id))}).")
        return out
    metrics, default, stages, default_stages = curve_choices(summary)
    choices = c2_choices(summary)
    c2_stage = "opd" if "opd" in choices else (choices[0] if choices else None)
    out.update(c1_figure=c1_view(store, run_id), c2_figure=c2_view(store, run_id, c2_stage), c2_choices=choices,
               c2_stage=c2_stage, quadrants=viz.quadrants_figure(summary.get("stages")),
               curves=curves_view(store, run_id, default, default_stages), metrics=metrics, metrics_default=default,
               curve_stages=stages, curve_stages_default=default_stages,
               note=f"From {summary_mod.SUMMARY_FILE} of {run_id} (seed {summary.get('seed')}); click a point of a "
                    "curve to open that stage's snapshot nearest that step.")
    return out


# --------------------------------------------------------------------------------------------------------------
# drill-down: a point of a curve -> that stage's snapshot, its largest |implicit reward| tokens

TOP_TOKEN_COLUMNS = ["prompt_id", "sample_idx", "policy", "position", "token", "implicit_reward", "p_student",
                     "p_teacher", "reverse_kl", "correct"]


def nearest_snapshot(store: Store, run_id: str, stage: str, step) -> int:
    """The snapshot step of `stage` nearest `step` (the earlier one on a tie)."""
    run = store.open(run_id)
    store.stage_path(run, stage)
    steps = run.rollout_steps(stage)
    if not steps:
        raise AppError(f"Stage {stage!r} of {run_id!r} has no rollout snapshots, so there is no snapshot to open at "
                       f"step {step}.")
    try:
        target = float(step)
    except (TypeError, ValueError) as e:
        raise AppError(f"step={step!r} is not a number.") from e
    return min(steps, key=lambda s: (abs(s - target), s))


def top_tokens(df: pd.DataFrame, n: int = 15) -> pd.DataFrame:
    """The `n` tokens of a snapshot with the largest |implicit reward| (stored per token), largest first."""
    out = []
    for _, row in df.iterrows():
        rewards = row.get("implicit_reward")
        if rewards is None or (isinstance(rewards, float) and math.isnan(rewards)):
            continue
        tokens, s_lp, t_lp = row.get("tokens"), row.get("student_logprob"), row.get("teacher_logprob")
        rkl = row.get("reverse_kl")
        for t, v in enumerate(rewards):
            if v is None or not math.isfinite(float(v)):
                continue
            out.append({"prompt_id": str(row["prompt_id"]), "sample_idx": int(row.get("sample_idx", 0)),
                        "policy": str(row.get("policy") or "student"), "position": t,
                        "token": viz.visible_text(str(tokens[t])), "implicit_reward": round(float(v), 4),
                        "p_student": None if s_lp is None else round(math.exp(float(s_lp[t])), 4),
                        "p_teacher": None if t_lp is None else round(math.exp(float(t_lp[t])), 4),
                        "reverse_kl": None if rkl is None else round(float(rkl[t]), 4),
                        "correct": None if _missing(row.get("correct")) else bool(row.get("correct"))})
    out.sort(key=lambda r: -abs(r["implicit_reward"]))
    return pd.DataFrame(out[:n], columns=TOP_TOKEN_COLUMNS)


def drill_down(store: Store, run_id: str, stage: str, step) -> tuple[int, pd.DataFrame, str]:
    """(snapshot step, its top |implicit reward| tokens, a note) for a clicked curve point (stage, step)."""
    snap = nearest_snapshot(store, run_id, stage, step)
    df = store.snapshot(run_id, stage, snap)
    try:
        shown = f"{float(step):g}"
    except (TypeError, ValueError):
        shown = str(step)
    note = (f"**{html.escape(stage)} · snapshot step {snap}** (nearest the clicked step {shown}): the tokens with "
            f"the largest |implicit reward|; click a row to open its rollout in the Token view.")
    return snap, top_tokens(df), note


# --------------------------------------------------------------------------------------------------------------
# token lens (s2dlab.lens): computed once per run, read here

LENS_VALUES = {"implicit reward": "implicit_reward", "reverse KL": "reverse_kl", "forward KL": "forward_kl"}
ALL_PAIRS = "all pairs"
LENS_MAX_DEFAULT_ROWS = 16  # above this many pairs the table opens on one teacher's rows


def lens_index(store: Store, run_id: str) -> dict:
    """The run's lens index (`lens/lens.json`); AppError with the command to run when the run has none."""
    from s2dlab.lens import check_lens, read_lens_index

    run = store.open(run_id)
    try:
        index = read_lens_index(run)
        check_lens(run)
    except RunStoreError as e:
        raise AppError(f"Cannot read the token lens: {e}") from e
    if not index:
        raise AppError(f"Run {run_id!r} has no token lens yet: run `s2dlab lens {run.path}` (it re-scores the "
                       "first probe snapshot with every saved checkpoint pair, once) and reload.")
    return index


def lens_choices(store: Store, run_id: str) -> tuple[list[tuple[str, str]], list[str], str, str]:
    """(rollout choices as (label, rollout key), pair filters, the default filter, a note) of the run's lens.

    Filters: all pairs, `teacher: <stage>` (every student under one teacher), `student: <stage>` (one student under
    every teacher). A lens of more than `LENS_MAX_DEFAULT_ROWS` pairs opens on the teacher most students learned
    from."""
    index = lens_index(store, run_id)
    rollouts = []
    for r in index.get("rollouts") or []:
        flips = r.get("n_sign_changes", 0)
        rollouts.append((f"{r['key']} {badge_text(r.get('correct'))} · {r.get('length')} tokens · {flips} sign "
                         f"change{'' if flips == 1 else 's'}", r["key"]))
    pairs = index.get("pairs") or []
    teachers = list(dict.fromkeys(p["teacher"] for p in pairs))
    students = list(dict.fromkeys(p["student"] for p in pairs))
    filters = [ALL_PAIRS] + [f"teacher: {t}" for t in teachers] + [f"student: {s}" for s in students]
    default = ALL_PAIRS
    if len(pairs) > LENS_MAX_DEFAULT_ROWS and teachers:
        own = [c.get("teacher") for c in index.get("checkpoints") or [] if c.get("teacher") in teachers]
        default = f"teacher: {max(teachers, key=own.count)}"
    src = index.get("source") or {}
    note = (f"The rollouts of **{html.escape(str(src.get('stage')))} step {src.get('step')}** (the first probe "
            f"snapshot) re-scored by {len(pairs)} (teacher ▸ student) checkpoint pairs; ⇅ marks a token whose "
            f"implicit reward is positive under one pair and negative under another (beyond "
            f"±{index.get('sign_tolerance')} nats), across all pairs. Computed {index.get('created')}.")
    return rollouts, filters, default, note


def lens_view(store: Store, run_id: str, rollout_key: str | None, value: str = "implicit reward",
              pairs: str | None = None) -> str:
    """The lens table of one rollout (`viz.lens_html`), all pairs or those of one teacher / one student
    (`pairs` = "teacher: <stage>" / "student: <stage>")."""
    from s2dlab.lens import read_lens

    index = lens_index(store, run_id)
    keys = [r["key"] for r in index.get("rollouts") or []]
    if not keys:
        raise AppError("The token lens of this run holds no rollouts.")
    if rollout_key not in keys:
        rollout_key = keys[0]
    run = store.open(run_id)
    store._inside(run.path / "lens")
    try:
        rows = read_lens(run, rollout_key)
    except RunStoreError as e:
        raise AppError(f"Cannot read the token lens: {e}") from e
    if pairs and pairs != ALL_PAIRS:
        role, _, stage = str(pairs).partition(": ")
        if role not in ("teacher", "student") or not stage:
            raise AppError(f"pairs={pairs!r}: pick {ALL_PAIRS!r}, 'teacher: <stage>' or 'student: <stage>'.")
        rows = rows[rows[role] == stage]
        if rows.empty:
            raise AppError(f"No lens pair has {role} checkpoint {stage!r}.")
    info = next(r for r in index["rollouts"] if r["key"] == rollout_key)
    title = f"{rollout_key} · {badge_text(info.get('correct'))}"
    return viz.lens_html(rows, value=LENS_VALUES.get(value, "implicit_reward"), title=title)


# --------------------------------------------------------------------------------------------------------------
# export: one self-contained HTML file per view


def _safe_name(*parts) -> str:
    name = "-".join(str(p) for p in parts if p not in (None, ""))
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120] or "view"


def export_file(folder: str | os.PathLike, title: str, parts: list[str], *name_parts) -> str:
    """Write `viz.standalone_html(title, parts)` to `folder/<name>.html` (atomically) and return its path."""
    from s2dlab.runs import atomic_write_bytes

    path = Path(folder) / f"{_safe_name(*name_parts)}.html"
    atomic_write_bytes(path, viz.standalone_html(title, parts).encode("utf-8"))
    return str(path)


# --------------------------------------------------------------------------------------------------------------
# compare view


def compare_problems(store: Store, run_id: str) -> list[tuple[str, str]]:
    """Problems present in the latest snapshot of any stage (union, first seen first)."""
    seen: dict[str, str] = {}
    for stage in store.snapshot_stages(run_id):
        df = store.snapshot(run_id, stage)
        for label, pid in problem_choices(df[_is_student(df)] if len(df[_is_student(df)]) else df):
            seen.setdefault(pid, label.split(" [")[0])
    return [(label, pid) for pid, label in seen.items()]


def compare_view(store: Store, run_id: str, prompt_id: str | None, stages: list[str] | None = None,
                 sample_idx: int = 0) -> str:
    """The same problem in the latest snapshot of each stage, one heatmap per stage on a shared colour range."""
    if not prompt_id:
        raise AppError("Pick a problem to compare.")
    run = store.open(run_id)
    chosen = [s for s in store.snapshot_stages(run_id) if not stages or s in stages]
    found = []
    for stage in chosen:
        df = store.snapshot(run_id, stage)
        row = _pick(df, prompt_id, "student", sample_idx)
        if row is not None:
            found.append((stage, int(df["step"].iloc[0]) if "step" in df else run.rollout_steps(stage)[-1], row,
                          store.vocab(run, df)))
    if not found:
        return f"<div class='s2d-head'>Problem {html.escape(str(prompt_id))} is in no stage's latest snapshot.</div>"
    vmax = viz.heatmap_vmax([f[2] for f in found], "implicit_reward")
    parts = []
    for stage, step, row, vocab in found:
        parts.append(f"<h4 style='margin:14px 0 2px 0'>{html.escape(stage)} · step {step}</h4>")
        parts.append(rollout_header_html(row, "student"))
        parts.append(viz.rollout_heatmap_html(row, vmax=vmax, id_to_text=vocab, max_height=300))
    return "".join(parts)


# --------------------------------------------------------------------------------------------------------------
# live scoring


def model_location(store: Store, run: Run, stage: str | None) -> Path | str | None:
    """Where `stage`'s model is: its saved `model/` folder (inside the runs folder), else the checkpoint its
    stage.json links (`model_source`: a folder, a `.gguf` file or a hub id, as `s2dlab check` and a linked
    `s2dlab stage base` record them; loaded where it lives, since the user named it), else None."""
    if not stage:
        return None
    if run.has_model(stage):
        return store._inside(run.model_dir(stage))
    try:
        source = (run.read_json(f"{stage}/stage.json") or {}).get("model_source")
    except Exception:  # a stage.json being written or unreadable: no model for now
        return None
    if not source:
        return None
    path = Path(str(source)).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve() if path.exists() else None  # a local checkpoint that has since moved: none
    return str(source)  # a hub id (offline: from the local cache)


def model_stages(store: Store, run_id: str) -> list[str]:
    """Stages with a model: saved inside the runs folder, or linked by their stage.json."""
    run = store.open(run_id)
    return [s for s in run.stages() if model_location(store, run, s) is not None]


def model_bytes(location: Path | str | None) -> int:
    """Bytes of weights at a model location (a folder's safetensors/bin files, a GGUF file; 0 for a hub id)."""
    if not isinstance(location, Path) or not location.exists():
        return 0
    if location.is_file():
        return location.stat().st_size
    return sum(p.stat().st_size for p in location.glob("*.safetensors")) + sum(
        p.stat().st_size for p in location.glob("*.bin"))


def _location_key(location: Path | str) -> tuple:
    if isinstance(location, Path):
        files = [location] if location.is_file() else [f for f in (location / "config.json",
                                                                   location / "model.safetensors") if f.exists()]
        return ("model", *[_file_key(f) for f in files])
    return ("model", location)


def load_live_model(location: Path | str):
    """The model at `location`, cached by its files (float32 on a CPU: weights stored in float16 or bfloat16
    compute slowly there)."""
    from transformers.utils import logging as hf_logging

    from s2dlab.models import load_model

    hf_logging.disable_progress_bar()  # the app's status line, not a terminal bar per weight file

    def make():
        cuda = _cuda()
        model = load_model(location, dtype="auto" if cuda else "float32", device="cuda" if cuda else "cpu")
        return model.eval()

    return _MODELS.get(_location_key(location), make)


def live_warning(store: Store, run_id: str, student_stage: str | None, teacher_stage: str | None) -> str:
    """A warning when the chosen models are large and there is no GPU, else ""."""
    if not student_stage or not teacher_stage:
        return ""
    run = store.open(run_id)
    total = sum(model_bytes(model_location(store, run, s)) for s in (student_stage, teacher_stage))
    if total >= LARGE_MODEL_BYTES and not _cuda():
        return (f"⚠ These checkpoints hold {total / 1024 ** 3:.1f} GiB of weights and no GPU is available: sampling "
                "and scoring on the CPU may take minutes and tens of GB of memory. Tick the box to run anyway.")
    return ""


def _cuda() -> bool:
    import torch  # here, so the app starts without loading torch

    return torch.cuda.is_available()


def live_score(run: Run, student_stage: str, teacher_stage: str, problem: str, *, answer: str | None = None,
               max_new_tokens: int | None = None, temperature: float = 1.0, seed: int = 0,
               store: Store | None = None) -> dict:
    """Sample one completion of `problem` from `student_stage`'s checkpoint and score it against
    `teacher_stage`'s on the spot; returns one run-store rollout row (see docs/DESIGN.md).

    Uses `s2dlab.generation.sample` and `s2dlab.scoring.score_rollouts` (imported here, so the app starts without
    loading torch). The checkpoints are the stages' `model/` folders inside the runs folder, or the models their
    stage.json links (`model_location`). The prompt is formatted as in the run's config (suffix, chat-template
    options); grading needs `answer`.
    """
    from s2dlab.generation import sample
    from s2dlab.rewards import grade as _grade
    from s2dlab.scoring import score_rollouts

    problem = (problem or "").strip()
    if not problem:
        raise AppError("Type a problem first.")
    store = store or Store(run.path.parent)
    locations = {s: model_location(store, run, s) for s in (student_stage, teacher_stage)}
    for stage, location in locations.items():
        if location is None:
            raise AppError(f"Stage {stage!r} has no model in this run ({run.path}): no model/ folder and no "
                           "model_source in its stage.json; live scoring needs a checkpoint.")
    cfg_info = run.info.get("config") or {}
    task = cfg_info.get("task") or {}
    gen = cfg_info.get("generation") or {}
    models_cfg = cfg_info.get("models") or {}
    tiny = models_cfg.get("student", "tiny") == "tiny"
    chat_kwargs = {} if tiny else {"enable_thinking": bool(gen.get("enable_thinking", False))}

    tok_dir = store.tokenizer_dir(run, student_stage) or locations[student_stage]
    tokenizer = _TOKENIZERS.get(("hf", *_location_key(tok_dir)), lambda: _hf_tokenizer(tok_dir))
    from s2dlab.models import set_generation_defaults

    loaded = {}
    for stage, location in locations.items():
        loaded[stage] = load_live_model(location)
        set_generation_defaults(loaded[stage], tokenizer)
    record = {"id": "live", "prompt": problem, "answer": answer}
    rollouts = sample(loaded[student_stage], tokenizer, [record], n=1,
                      max_new_tokens=int(max_new_tokens or gen.get("max_new_tokens", 64)), temperature=temperature,
                      top_p=1.0, top_k=0, seed=seed, prompt_suffix=task.get("prompt_suffix", "") or "",
                      chat_template_kwargs=chat_kwargs, progress=False)
    grade = None
    if answer:
        integer_only = task.get("name", "arithmetic") == "arithmetic"
        grade = lambda completion, gold: _grade(completion, gold, integer_only=integer_only)  # noqa: E731
    rows = score_rollouts(loaded[student_stage], loaded[teacher_stage], tokenizer, rollouts, grade_fn=grade,
                          answers={"live": answer} if answer else None, stage=student_stage, step=0)
    return rows[0]


def live_view(store: Store, run_id: str, student_stage: str, teacher_stage: str, problem: str,
              answer: str | None = None, allow_large: bool = False, seed: int = 0):
    """(html, figure, note) for the Live tab; refuses large models on a CPU unless `allow_large`."""
    run = store.open(run_id)
    warning = live_warning(store, run_id, student_stage, teacher_stage)
    if warning and not allow_large:
        raise AppError(warning)
    row = live_score(run, student_stage, teacher_stage, problem, answer=(answer or "").strip() or None, seed=seed,
                     store=store)
    vocab = store.vocab(run, pd.DataFrame([row]))
    page = rollout_header_html(pd.Series(row), f"{student_stage} (scored by {teacher_stage})")
    page += viz.rollout_heatmap_html(row, id_to_text=vocab, max_height=420)
    return page, viz.per_token_figure(row), warning or "Sampled and scored."
