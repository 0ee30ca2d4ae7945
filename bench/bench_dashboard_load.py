"""A room on one dashboard: simulated participants drive the running app through `gradio_client`, each opening a
rollout in the token view, a token lens row, the estimator panel, counterfactual branches (N = 8) and a Live
sample, all at once; every request must succeed, and the latency of each handler is written down.

    python bench/bench_dashboard_load.py                         # 20 participants on tests/data's fixture run
    python bench/bench_dashboard_load.py --participants 3        # what tests/test_dashboard_load.py runs
    python bench/bench_dashboard_load.py --runs runs --run tiny --json /tmp/load.json
    python bench/bench_dashboard_load.py --url http://127.0.0.1:7860/ --runs runs   # an app already running

The app is started as `s2dlab app RUNS --port P` in a child process on 127.0.0.1 (unless `--url`), and stopped at
the end. Participants start together (a barrier), so the model handlers (estimators, branches, Live) queue behind
each other in the app's one model queue: their latency is mostly waiting, which is the point. Bounded: at most
`--max-participants` participants, and every request must finish before `--timeout` seconds after the start; a
request past it is a failure. A failure is an exception from the client (an error, a full queue, a timeout) or a
status line that starts with ⚠. Prints one row per handler: requests, failures, median and 95th-percentile latency
(nearest rank), the slowest; exits 1 when anything failed. A benchmark, not a test: no number here is a threshold.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# what a participant does, in order, as the browser would: load the run list, open the run (stage and snapshot),
# open the token view, the lens, the estimators, type a position and sample branches there, open Live and sample
HANDLERS = ("runs", "open_run", "token_view", "lens", "estimators", "branch_position", "branches", "live_setup",
            "live")
BRANCH_SAMPLES = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(runs: Path, timeout: float = 120.0, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`s2dlab app RUNS` on a free port of 127.0.0.1 (in the environment `env`), once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "s2dlab", "app", str(runs), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"the app did not answer on {url} within {timeout:.0f} s")


def requests_for(runs: Path, run_id: str | None) -> tuple[str, dict[str, dict]]:
    """(run id, {handler: keyword arguments}) of one participant's requests, read from the run store: the latest
    snapshot whose models are saved (the token view, branches at position 1 of its first student rollout, the
    estimators), the lens's first rollout, and the Live tab's default pair on a problem of the run's eval set.
    Opening the run moves the pickers to its default snapshot; the requests name their snapshot themselves."""
    from s2dlab.views.dashboard import data, live
    from s2dlab.views.dashboard.store import AppError

    store = data.Store(runs)
    run_id = run_id or next(r for r in store.run_choices() if not store.is_aggregate(r))
    snapshot = None
    for stage in reversed(store.snapshot_stages(run_id)):
        for step in reversed(store.steps(run_id, stage)):
            try:
                live.snapshot_models(store, run_id, stage, step)
            except AppError:
                continue
            snapshot = (stage, step)
            break
        if snapshot:
            break
    if snapshot is None:
        raise SystemExit(f"no snapshot of {run_id} was taken by saved models: nothing to branch or estimate")
    stage, step = snapshot
    df = store.snapshot(run_id, stage, step)
    row = df[df["policy"] != "teacher"].iloc[0]
    pid, sample = str(row["prompt_id"]), int(row["sample_idx"])
    _, candidates, _ = live.branch_candidates(store, run_id, stage, step, pid, sample, 1)
    setup = live.live_setup(store, run_id)
    where = dict(run_id=run_id, stage=stage, step=step)
    # the choices a session was offered are all its requests may name (Gradio checks), so each pick is made after
    # the request that offers it, with None where the app takes the first
    return run_id, {
        "runs": dict(current=None),
        "open_run": dict(run_id=run_id),
        "token_view": dict(**where, prompt_id=None, sample=None, teacher=None, color="implicit reward"),
        "lens": dict(run_id=run_id, key=None, value="implicit reward", pairs=None),
        "estimators": dict(**where, rollout=None, allow=False),
        "branch_position": dict(**where, pid=pid, sample=sample, position=1),
        "branches": dict(**where, pid=pid, sample=sample, position=1, cands=candidates, n=BRANCH_SAMPLES,
                         length=16, seed=0, allow=False),
        "live_setup": dict(run_id=run_id),
        "live": dict(run_id=run_id, student=setup["student"], teacher=setup["teacher"],
                     problem=setup["problem"], answer=setup["answer"], allow=False, seed=None, new_seed=True),
    }


def participant(url: str, requests: dict[str, dict], start: threading.Barrier, deadline: float,
                out: list[dict]) -> None:
    from gradio_client import Client

    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as e:  # a client that cannot connect fails every request it would have made
        out.extend({"handler": h, "seconds": None, "error": f"client: {e}"} for h in HANDLERS)
        start.abort()
        return
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for name in HANDLERS:
        left = deadline - time.monotonic()
        if left <= 0:
            out.append({"handler": name, "seconds": None, "error": "past the deadline before it started"})
            continue
        t0 = time.perf_counter()
        try:
            result = client.submit(**requests[name], api_name=f"/{name}").result(timeout=left)
            seconds = time.perf_counter() - t0
            status = result[-1] if isinstance(result, (list, tuple)) else result
            error = status if isinstance(status, str) and status.startswith("⚠") else None
        except Exception as e:  # an error, a full queue, the deadline
            seconds, error = time.perf_counter() - t0, f"{type(e).__name__}: {e}"
        out.append({"handler": name, "seconds": seconds, "error": error})
    client.close()


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q`-th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for name in HANDLERS:
        mine = [r for r in results if r["handler"] == name]
        ok = [r["seconds"] for r in mine if r["error"] is None]
        rows.append({"handler": name, "requests": len(mine), "failures": len(mine) - len(ok),
                     "median_s": statistics.median(ok) if ok else None, "p95_s": percentile(ok, 95) if ok else None,
                     "max_s": max(ok) if ok else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "tests" / "data", help="runs folder (default: tests/data)")
    ap.add_argument("--run", default=None, help="run id inside it (default: the first run)")
    ap.add_argument("--participants", type=int, default=20)
    ap.add_argument("--max-participants", type=int, default=50, help="refuse more than this many")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds every request must finish within")
    ap.add_argument("--url", default=None, help="drive an app already running there instead of starting one")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows and every request here")
    args = ap.parse_args(argv)
    if not 1 <= args.participants <= args.max_participants:
        raise SystemExit(f"--participants {args.participants}: use 1..{args.max_participants}")
    run_id, requests = requests_for(args.runs, args.run)
    proc, url = (None, args.url) if args.url else start_app(args.runs)
    results: list[dict] = []
    try:
        start = threading.Barrier(args.participants)
        began = time.monotonic()
        deadline = began + args.timeout
        threads = [threading.Thread(target=participant, args=(url, requests, start, deadline, results), daemon=True)
                   for _ in range(args.participants)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 30)
        wall = time.monotonic() - began
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    rows = summarise(results)
    missing = args.participants * len(HANDLERS) - len(results)
    print(f"{args.participants} participants on {url} ({args.runs}/{run_id}), {wall:.1f} s in all; each, in order: "
          f"{', '.join(HANDLERS)} (branches N={BRANCH_SAMPLES})")
    print(f"{'handler':<16} {'requests':>8} {'failures':>8} {'median s':>9} {'p95 s':>8} {'max s':>8}")
    for r in rows:
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"{r['handler']:<16} {r['requests']:>8} {r['failures']:>8} {fmt(r['median_s']):>9} "
              f"{fmt(r['p95_s']):>8} {fmt(r['max_s']):>8}")
    errors = [r for r in results if r["error"]]
    for r in errors[:10]:
        print(f"failed: {r['handler']}: {r['error']}")
    if missing:
        print(f"{missing} requests never finished")
    if args.json:
        args.json.write_text(json.dumps({"participants": args.participants, "run": run_id, "wall_s": wall,
                                         "rows": rows, "requests": results}, indent=2))
    return 1 if errors or missing else 0


if __name__ == "__main__":
    sys.exit(main())
