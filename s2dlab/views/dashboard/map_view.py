"""The Map tab's data: the C1 x C2 maps (`s2dlab map --out DIR`, `s2dlab.workflow.cmap`) found under the runs
folder, and one map's figure and table read from its map.json.

Readers render, they never recompute: the figure is `s2dlab.views.viz.map.map_figure` and every number in the table
is a value of map.json as `s2dlab.workflow.cmap.write_map` wrote it (C1, C2 and the gain with their 95% intervals).
Each cell names its run folders by their id in the run picker, so a cell opens in the other tabs. Nothing here
imports gradio.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from s2dlab.core.runs import RunStoreError, read_json_file, subfolders
from s2dlab.views.dashboard.store import AppError, Store
from s2dlab.workflow.cmap import MAP_FILE

MAP_COLUMNS = ["teacher", "student", "C1 (AUROC diff vs raw teacher)", "C2 (reverse KL, nats/token)",
               "gain (points, bridge − cold GRPO)", "bridge (%)", "cold GRPO (%)", "seeds", "run folders"]
REFERENCE = "0 (the reference)"  # C1 of the raw teacher: the raw teacher against itself, by definition
# a map at the root or one level below it (runs/<name>/map.json): its cells (<map>/seed_<k>/<cell>) are then within
# the depth the run picker lists (`s2dlab.core.runs.list_runs`), so each cell's run folder opens in the other tabs
MAX_DEPTH = 1


def find_maps(store: Store) -> list[str]:
    """Ids (paths relative to the root, "." for the root itself) of the folders holding a map.json, sorted. Hidden
    and symlinked folders are not entered, nor a map's own seed folders (its cells are runs, not maps)."""
    root = store.root
    if not root.is_dir():
        return []
    found = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / MAP_FILE).is_file():
            found.append(folder.relative_to(root).as_posix() or ".")
            return  # a map's seed_<k> folders hold its cells
        if (folder / "run.json").is_file() or depth >= MAX_DEPTH:
            return
        for sub in subfolders(folder):
            walk(sub, depth + 1)

    walk(root, 0)
    return sorted(found)


def newest(store: Store, maps: list[str]) -> str | None:
    """The map of `maps` whose map.json was written last (a map being computed rewrites it after every cell)."""
    def written(map_id):
        try:
            return (store.path_of(map_id) / MAP_FILE).stat().st_mtime_ns
        except (OSError, AppError):
            return -1

    return max(maps, key=written) if maps else None


def written(store: Store, map_id: str | None) -> list | None:
    """[map id, mtime, size] of the map's map.json (what the Map tab last drew), None when there is none."""
    if not map_id:
        return None
    try:
        st = (store.path_of(map_id) / MAP_FILE).stat()
    except (OSError, AppError):
        return None
    return [map_id, st.st_mtime_ns, st.st_size]


def read_map(store: Store, map_id: str | None) -> dict:
    """The map.json of `map_id` (inside the root), or AppError with a sentence: none chosen, outside the root, no
    map.json, corrupt JSON, not a map."""
    if not map_id:
        raise AppError(f"No map under {store.root}: `s2dlab map --out {store.root}/map` makes one (one seed of the "
                       "default grid takes about 20 minutes on a laptop CPU).")
    path = store.path_of(map_id) / MAP_FILE
    try:
        got = read_json_file(path)
    except RunStoreError as e:
        raise AppError(f"Cannot read the map {map_id!r}: {e}") from e
    if got is None:
        raise AppError(f"{map_id!r} holds no {MAP_FILE}: `s2dlab map --out {store.path_of(map_id)}` makes one.")
    if not isinstance(got, dict) or not isinstance(got.get("cells"), list):
        raise AppError(f"{path} is not a map (expected a JSON object with a list of cells); remake it with "
                       f"`s2dlab map --out {store.path_of(map_id)}`, which keeps the cells already trained.")
    return got


def _interval(v: Mapping | None, scale: float = 1.0, signed: bool = True) -> str:
    """"+0.123456 [+0.050000, +0.196000]" from {"mean", "ci"}; "-" when there is no value. Six decimals: the
    dashboard's tables round it once, to the interval's width, for display (`ui.round_interval`)."""
    if not isinstance(v, Mapping) or v.get("mean") is None:
        return "-"
    fmt = "{:+.6f}" if signed else "{:.6f}"
    text = fmt.format(scale * v["mean"])
    ci = v.get("ci") or [None, None]
    if ci[0] is not None and ci[1] is not None:
        text += f" [{fmt.format(scale * ci[0])}, {fmt.format(scale * ci[1])}]"
    return text


def run_id(map_id: str, run: str) -> str:
    """A cell's run folder (relative to its map, as map.json writes it) as a run id of the root."""
    if Path(run).is_absolute():
        return run
    return run if map_id in (".", "") else f"{map_id}/{run}"


def map_frame(m: Mapping, map_id: str = ".") -> pd.DataFrame:
    """One row per cell of map.json, in its order: C1, C2 and the gain with their intervals, both arms' accuracy
    with theirs, the seeds and the cell's run folders (run ids of the root)."""
    rows = []
    for c in m.get("cells") or []:
        c1 = c.get("c1") or {}
        rows.append([str(c.get("teacher")), str(c.get("student")),
                     REFERENCE if c1.get("reference") and c1.get("mean") is not None else _interval(c1),
                     _interval(c.get("c2"), signed=False), _interval(c.get("gain"), 100),
                     _interval(c.get("bridge"), 100, signed=False), _interval(c.get("cold_grpo"), 100, signed=False),
                     len(c.get("seeds") or []), ", ".join(run_id(map_id, r) for r in c.get("runs") or [])])
    return pd.DataFrame(rows, columns=MAP_COLUMNS)


def map_note(m: Mapping, map_id: str) -> str:
    """What the map is and how it was made: the command, the seeds, the wall time per seed, what is still pending."""
    seeds = m.get("seeds") or []
    cells, grid = m.get("cells") or [], m.get("grid") or {}
    n = len(grid.get("teachers") or []) * len(grid.get("students") or [])
    parts = [(f"**{html.escape(map_id)}**: {len(cells)} of {n or '?'} cells, {len(seeds)} seed"
              f"{'s' if len(seeds) != 1 else ''} ({', '.join(str(s) for s in seeds)}). The gain is the bridge's "
              "accuracy minus cold GRPO's on the same student at equal student steps, paired over problems and "
              "seeds; C1 is the AUROC of the teacher's summed implicit reward minus the raw teacher's; C2 is the "
              "per-token reverse KL from the student to the teacher before the bridge. Brackets: 95% intervals. "
              "Each cell's run folders are runs of the picker above.")]
    if m.get("command"):
        parts.append(f"Made by `{html.escape(str(m['command']))}`.")
    times = {k: v for k, v in (m.get("wall_seconds_per_seed") or {}).items() if v is not None}
    if times:
        parts.append("Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) + ".")
    if not m.get("complete", True):
        pending = m.get("pending") or []
        parts.append(f"Incomplete (still running or stopped): {n - len(cells) if n else '?'} cells missing"
                     + (f", {len(pending)} pending" if pending else "") + "; press ↻ reload map to see new cells.")
    return " ".join(parts)


def map_view(store: Store, map_id: str | None) -> dict:
    """{"figure", "table", "note"} of one map, read from its map.json."""
    from s2dlab.views.viz.map import map_figure

    m = read_map(store, map_id)
    fig = map_figure(m)
    fig.update_layout(width=None, autosize=True)  # the tab's width, not the notebook's 1500 px
    return {"figure": fig, "table": map_frame(m, map_id), "note": map_note(m, map_id)}
