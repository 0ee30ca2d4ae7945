"""Data access for the dashboard: everything its callbacks need, as plain Python over s2dlab.runs and s2dlab.viz.

`s2dlab.dashboard.app` holds the layout and wires these functions to components; nothing here imports gradio, so
each view is testable by calling it directly (tests/test_app.py).

Safety. The app only ever reads inside `runs_root`: runs are named by their path relative to the root, and
`Store.open` rejects absolute paths, `..`, and anything (a symlink included) that resolves outside the root.
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

from s2dlab import diagnostics, viz
from s2dlab.errors import S2DLabError
from s2dlab.runs import Run, RunStoreError, list_runs, open_run, read_json_file, read_rollout_file
from s2dlab.token_text import TokenText


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


_SNAPSHOTS = _LRU(16)
_TOKENIZERS = _LRU(4)
_MODELS = _LRU(2)


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
        """Run ids (relative paths) under the root, sorted; [] when the root is missing or holds none."""
        out = []
        for p in list_runs(self.root):
            rel = p.relative_to(self.root).as_posix()
            out.append(rel if rel else ".")
        return out

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
        rel = Path(str(run_id))
        if rel.is_absolute() or ".." in rel.parts:
            raise AppError(f"{run_id!r} is not a run inside {self.root}.")
        path = self._inside(self.root / rel)
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
# stages view


def _results_for(store: Store, run: Run) -> tuple[dict | None, str]:
    """The run's results.json, or the multi-seed aggregate one folder up (inside the root)."""
    try:
        res = run.results()
    except RunStoreError as e:
        raise AppError(f"Cannot read results: {e}") from e
    if res is not None:
        return res, "results.json"
    parent = run.path.parent / "results.json"
    try:
        store._inside(parent)
    except AppError:
        return None, ""
    try:
        agg = read_json_file(parent)
    except RunStoreError:
        return None, ""
    return (agg, "the aggregate results.json over seeds") if isinstance(agg, dict) else (None, "")


def _student_rows(store: Store, run: Run, run_id: str, stage: str, which: str = "last") -> list[dict] | None:
    steps = run.rollout_steps(stage) if stage in run.stages() else []
    if not steps:
        return None
    try:
        df = store.snapshot(run_id, stage, steps[0] if which == "first" else steps[-1])
    except AppError:
        return None
    return df[_is_student(df)].to_dict("records")


def verdicts(store: Store, run_id: str) -> str:
    """Plain-words C1 / C2 verdicts (s2dlab.diagnostics), from results.json or, failing that, the snapshots.

    The one place the dashboard judges C1 and C2: swap this function for a reader of the run's summary once the
    run writes one.
    """
    diag = diagnostics
    run = store.open(run_id)
    res, _ = _results_for(store, run)
    lines = []
    c1 = (res or {}).get("c1") or {}
    sep = c1.get("separation_after")
    if sep is None:
        rows = _student_rows(store, run, run_id, "teacher_grpo") or _student_rows(store, run, run_id, "opd")
        sep = diag.c1_separation(rows) if rows else None
    if sep is not None:
        before, after = c1.get("teacher_accuracy_before"), c1.get("teacher_accuracy_after")
        lines.append("**C1** " + diag.verdict_c1(sep, before, after))
    else:
        lines.append("**C1** no scored rollouts to judge yet.")
    c2 = (res or {}).get("c2") or {}
    after = c2.get("after_warmup") or c2.get("opd_start")
    before = c2.get("before_warmup")
    if after is None:
        rows = _student_rows(store, run, run_id, "fkl_warmup") or _student_rows(store, run, run_id, "opd", "first")
        after = diag.c2_closeness(rows) if rows else None
    if after is not None:
        lines.append("**C2** " + diag.verdict_c2(after, before))
    else:
        lines.append("**C2** no scored rollouts to judge yet.")
    return "\n\n".join(lines)


def stages_view(store: Store, run_id: str):
    """(curves, results table, results bars, C1 figure, C2 figure, quadrant figure, verdict markdown, note)."""
    run = store.open(run_id)
    try:
        curves = viz.stage_curves_figure(run)
    except RunStoreError as e:
        raise AppError(f"Cannot read metrics: {e}") from e
    res, source = _results_for(store, run)
    table = viz.results_table(res).reset_index()
    table = table.map(lambda v: round(v, 4) if isinstance(v, float) else v)
    bars = viz.results_bar_figure(res)
    c1_rows = _student_rows(store, run, run_id, "teacher_grpo") or _student_rows(store, run, run_id, "opd")
    c1 = viz.c1_figure(c1_rows)
    c2_data = {k: v for k, v in ((res or {}).get("c2") or {}).items() if isinstance(v, Mapping)}
    if not c2_data:  # no results.json yet: the warmup's first and last snapshots
        for label, stage, which in (("before warmup", "fkl_warmup", "first"), ("after warmup", "fkl_warmup", "last")):
            rows = _student_rows(store, run, run_id, stage, which)
            if rows:
                c2_data[label] = diagnostics.c2_closeness(rows)
    c2 = viz.c2_histogram_figure(c2_data)
    q_rows = _student_rows(store, run, run_id, "opd") or c1_rows
    quad = viz.quadrant_figure(q_rows)
    note = (f"Results from {source}." if source else "No results.json yet: the table fills in when the run ends.")
    return curves, table, bars, c1, c2, quad, verdicts(store, run_id), note


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


def model_stages(store: Store, run_id: str) -> list[str]:
    """Stages with a saved model inside the runs folder."""
    run = store.open(run_id)
    return [s for s in run.stages() if run.has_model(s)]


def model_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors")) + sum(
        p.stat().st_size for p in folder.glob("*.bin"))


def live_warning(store: Store, run_id: str, student_stage: str | None, teacher_stage: str | None) -> str:
    """A warning when the chosen models are large and there is no GPU, else ""."""
    if not student_stage or not teacher_stage:
        return ""
    run = store.open(run_id)
    total = sum(model_bytes(run.model_dir(s)) for s in (student_stage, teacher_stage) if run.has_model(s))
    if total >= LARGE_MODEL_BYTES and not _cuda():
        return (f"⚠ These checkpoints hold {total / 1024 ** 3:.1f} GiB of weights and no GPU is available: sampling "
                "and scoring on the CPU may take minutes and tens of GB of memory. Tick the box to run anyway.")
    return ""


def _cuda() -> bool:
    import torch  # here, so the app starts without loading torch

    return torch.cuda.is_available()


def _load_live_model(folder: Path):
    from s2dlab.models import load_model, set_generation_defaults

    model = load_model(folder, dtype="auto", device="cuda" if _cuda() else "cpu")
    model.eval()
    return model, set_generation_defaults


def live_score(run: Run, student_stage: str, teacher_stage: str, problem: str, *, answer: str | None = None,
               max_new_tokens: int | None = None, temperature: float = 1.0, seed: int = 0,
               store: Store | None = None) -> dict:
    """Sample one completion of `problem` from `student_stage`'s checkpoint and score it against
    `teacher_stage`'s on the spot; returns one run-store rollout row (see docs/DESIGN.md).

    Uses `s2dlab.generation.sample` and `s2dlab.scoring.score_rollouts` (imported here, so the app starts without
    loading torch). Only checkpoints saved inside the run folder are loaded. The prompt is formatted as in the
    run's config (suffix, chat-template options); grading needs `answer`.
    """
    from s2dlab.generation import sample
    from s2dlab.rewards import grade as _grade
    from s2dlab.scoring import score_rollouts

    problem = (problem or "").strip()
    if not problem:
        raise AppError("Type a problem first.")
    for stage in (student_stage, teacher_stage):
        if not stage or not run.has_model(stage):
            raise AppError(f"Stage {stage!r} has no saved model in this run ({run.path}); live scoring needs "
                           "local checkpoints (model/ folders).")
    folders = {s: run.model_dir(s) for s in (student_stage, teacher_stage)}
    if store is not None:
        folders = {s: store._inside(f) for s, f in folders.items()}
    cfg_info = run.info.get("config") or {}
    task = cfg_info.get("task") or {}
    gen = cfg_info.get("generation") or {}
    models_cfg = cfg_info.get("models") or {}
    tiny = models_cfg.get("student", "tiny") == "tiny"
    chat_kwargs = {} if tiny else {"enable_thinking": bool(gen.get("enable_thinking", False))}

    tok_dir = (store.tokenizer_dir(run, student_stage) if store else None) or folders[student_stage]
    tokenizer = _hf_tokenizer(tok_dir)
    loaded = {}
    for stage, folder in folders.items():
        key = _file_key(folder / "config.json")
        model, set_defaults = _MODELS.get(key, lambda f=folder: _load_live_model(f))
        set_defaults(model, tokenizer)
        loaded[stage] = model
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
