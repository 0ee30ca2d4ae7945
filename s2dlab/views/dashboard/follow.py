"""Following a run in progress: what a run looks like now (its stages, their status, their snapshots, how much
each has logged), what changed since the last look, and the stage choices with the running stage marked.

The app looks every few seconds (`gr.Timer`, `s2dlab.views.dashboard.tabs.header`) and refreshes only what changed, so a
run that `s2dlab run` or a notebook is writing shows its new stages, snapshots and curve points as they land,
with the user's selection kept. Cheap: a directory listing and a stat per stage, no file is parsed but the stage
records.
"""

from __future__ import annotations

import datetime as _dt
import html

from s2dlab.views.dashboard.store import AppError, Store

RUNNING = "running"


def run_state(store: Store, run_id: str | None) -> dict | None:
    """{"run", "stages": {stage: {"status", "steps", "metrics"}}, "summary"} of the run now (`metrics`: the size
    of its metrics.jsonl, `summary`: summary.json's mtime), or None when there is no run to look at."""
    if not run_id:
        return None
    try:
        run = store.open(run_id)
    except AppError:
        return None
    stages = {}
    for name in run.stages():
        record = store.record(run, name)
        metrics = run.stage_dir(name) / "metrics.jsonl"
        try:
            size = metrics.stat().st_size
        except OSError:
            size = 0
        stages[name] = {"status": record.status if record is not None else None,
                        "steps": run.rollout_steps(name), "metrics": size}
    try:
        summary = (run.path / "summary.json").stat().st_mtime_ns
    except OSError:
        summary = None
    return {"run": run_id, "stages": stages, "summary": summary}


def changes(before: dict | None, after: dict | None) -> dict:
    """What differs between two `run_state`s of one run: `stages` (a stage appeared or changed status), `steps`
    (stages with new snapshots), `metrics` (stages that logged more), `new` (stages that appeared), `summary`; all
    empty when either is None or they are of two runs."""
    out = {"stages": False, "steps": [], "metrics": [], "new": [], "summary": False}
    if not before or not after or before.get("run") != after.get("run"):
        return out
    old, now = before["stages"], after["stages"]
    out["new"] = [s for s in now if s not in old]
    out["stages"] = bool(out["new"]) or any(now[s]["status"] != old[s]["status"] for s in now if s in old)
    out["steps"] = [s for s in now if now[s]["steps"] != (old.get(s) or {}).get("steps")]
    out["metrics"] = [s for s in now if now[s]["metrics"] != (old.get(s) or {}).get("metrics")]
    out["summary"] = before.get("summary") != after.get("summary")
    return out


def changed(change: dict) -> bool:
    return bool(change["stages"] or change["steps"] or change["metrics"] or change["summary"])


def stage_options(store: Store, run_id: str, state: dict | None = None) -> list[tuple[str, str]]:
    """(label, stage) of the stages with rollout snapshots, in workflow order, the running one labelled so."""
    state = state or run_state(store, run_id)
    stages = (state or {}).get("stages") or {}
    return [(f"{s} · running" if info["status"] == RUNNING else s, s) for s, info in stages.items() if info["steps"]]


def follow_line(state: dict | None) -> str:
    """One line about a run being written: which stage runs, its snapshots so far, how many stages are done; ""
    when nothing runs."""
    stages = (state or {}).get("stages") or {}
    running = [s for s, info in stages.items() if info["status"] == RUNNING]
    if not running:
        return ""
    done = sum(info["status"] == "done" for info in stages.values())
    parts = []
    for s in running:
        steps = stages[s]["steps"]
        parts.append(f"**{html.escape(s)}** is running" + (f" (snapshots at steps {', '.join(map(str, steps))})"
                                                           if steps else " (no snapshot yet)"))
    now = _dt.datetime.now().strftime("%H:%M:%S")
    return f"● {'; '.join(parts)}; {done} stage{'' if done == 1 else 's'} done. Looked at {now}; new files appear " \
           "as they land."
