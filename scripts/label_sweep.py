"""The paper's "scarce labels" claim in one plot: accuracy against the number of labeled problems, the four-stage
workflow (and its bridge on 1H, and the replay) against cold GRPO, each budget a run of `s2dlab run` with
`task.label_budget=N` (the first N labeled problems of the pool, cut into halves of N/2).

    python scripts/label_sweep.py --budgets 100,300,1000,2000 --seeds 2 --out runs/label_sweep
    python scripts/label_sweep.py ... --html docs/img/label_sweep.html     # also the figure

Every budget keeps the same student steps and the same teacher steps; fewer labels mean more passes over them.
Each point prints avg@k with its 95% interval (problems and seeds, `s2dlab.core.diagnostics.accuracy_interval`);
`label_sweep.json` holds the numbers the figure is drawn from. Runs that finished are reused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from s2dlab.core import diagnostics as dg
from s2dlab.core.config import load_config, parse_overrides
from s2dlab.core.runs import atomic_write_json, open_run
from s2dlab.workflow.pipeline import after_stage, find_step, run_pipeline, run_stage
from s2dlab.workflow.summary import per_problem, write_summary

ARMS = {"bridge_1h_stage3": "student_grpo", "bridge_1h": "opd", "bridge_1h_replay": "replay", "cold_grpo": "cold_grpo"}


def figure(points: list[dict], k: int):
    import plotly.graph_objects as go

    fig = go.Figure()
    colors = {"bridge_1h_stage3": "#b2182b", "bridge_1h": "#ef8a62", "bridge_1h_replay": "#999999",
              "cold_grpo": "#2166ac"}
    for arm, color in colors.items():
        pts = [p for p in points if p["arm"] == arm and p["mean"] is not None]
        if not pts:
            continue
        fig.add_scatter(x=[p["labels"] for p in pts], y=[100 * p["mean"] for p in pts], name=arm,
                        mode="lines+markers", line=dict(color=color),
                        error_y=dict(type="data", array=[100 * (p["ci"][1] - p["mean"]) for p in pts],
                                     arrayminus=[100 * (p["mean"] - p["ci"][0]) for p in pts]))
    fig.update_layout(title="Accuracy against labeled problems (95% intervals over problems and seeds)",
                      xaxis_title="labeled problems", yaxis_title=f"avg@{k} (%)", xaxis_type="log",
                      template="plotly_white", height=460)
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", default="100,300,1000,2000", help="comma-separated label budgets")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--out", default="runs/label_sweep")
    p.add_argument("--html", help="write the figure here")
    args, extra = p.parse_known_args(argv)
    fixed = parse_overrides(extra)
    points = []
    k = None
    for budget in [int(b) for b in args.budgets.split(",")]:
        scores = {arm: [] for arm in ARMS}
        for seed in range(args.seeds):
            cfg = load_config("tiny", overrides={**fixed, "task.label_budget": budget, "seed": seed})
            k = cfg.eval.n_samples
            out = Path(args.out) / f"labels_{budget}" / f"seed_{seed}"
            run_pipeline(cfg, out, progress=False)
            run = open_run(out)
            run_stage(cfg, run, find_step(cfg, "replay"))  # the replay control, beside the default plan
            after_stage(cfg, run, "replay")
            write_summary(cfg, run)
            for arm, stage in ARMS.items():
                scores[arm].append(per_problem(cfg, run, stage))
        for arm, per_seed in scores.items():
            iv = dg.accuracy_interval(per_seed)
            points.append({"labels": budget, "arm": arm, "mean": iv["mean"], "ci": iv["ci"],
                           "per_seed": iv["per_seed"]})
            print(f"labels {budget:>5}  {arm:<18} avg@{k} {100 * iv['mean']:5.1f} "
                  f"[{100 * iv['ci'][0]:5.1f}, {100 * iv['ci'][1]:5.1f}]", flush=True)
    atomic_write_json(Path(args.out) / "label_sweep.json", {"budgets": args.budgets, "seeds": args.seeds,
                                                             "overrides": extra, "points": points})
    if args.html:
        figure(points, k).write_html(args.html, include_plotlyjs=True, full_html=True)
        print(f"figure written to {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
