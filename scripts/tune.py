"""Tune one stage's hyperparameters on the validation split (never on eval), the same way for every arm.

Each point of the grid is a run folder under `--out` that starts from the finished stages of `--from` (copied, so
the stage being tuned always starts from the same models), runs `STAGE` for each seed and evaluates it on
`arithmetic_val` (the validation split, disjoint from eval). The table ranks the points by validation avg@k with
a 95% interval over problems and seeds; `tune.json` holds every number.

    python scripts/tune.py cold_grpo --grid cold_grpo.learning_rate=1e-5,3e-5,1e-4 cold_grpo.prompts_per_step=4,8
    python scripts/tune.py opd --from runs/tiny --grid opd.learning_rate=2e-4,5e-4,1e-3 --seeds 2

`--from` must hold the stages `STAGE` starts from (for cold_grpo only the base models, which are copied from the
shipped ones when `--from` is not given). Points that finished are reused when the script is run again.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from pathlib import Path

from s2dlab.core import diagnostics as dg
from s2dlab.core.config import load_config, parse_overrides
from s2dlab.core.runs import atomic_write_json, create_run, open_run, read_json_file
from s2dlab.workflow.pipeline import find_step, run_stage
from s2dlab.workflow.summary import lineage, per_problem


def grid_points(items: list[str]) -> list[dict]:
    """`["a.b=1,2", "c.d=x"]` -> every combination as a dict of overrides."""
    axes = []
    for item in items:
        key, values = item.split("=", 1)
        axes.append([(key, v) for v in values.split(",")])
    return [dict(p) for p in itertools.product(*axes)] if axes else [{}]


def copy_needed(src, dst, stage: str, cfg) -> None:
    """Copy into `dst` every finished stage of `src` that `stage` depends on (its plan step's inputs, recursively)."""
    step = find_step(cfg, stage)
    todo, seen = list(step.needs), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if not src.finished(name):
            raise SystemExit(f"tune: {src.path} has no finished {name!r}, which {stage} needs; run it first")
        if not dst.stage(name).fields:
            shutil.copytree(src.stage_dir(name), dst.stage_dir(name), dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("checkpoints"))
        todo += [n for n, _ in lineage(src, name) if n != name]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", help="the stage folder to tune, e.g. cold_grpo, fkl_warmup, opd, student_grpo")
    p.add_argument("--grid", nargs="+", default=[], metavar="key=v1,v2", help="values to try per config key")
    p.add_argument("--from", dest="source", metavar="RUN", help="run folder with the stages STAGE starts from")
    p.add_argument("--seeds", type=int, default=2, help="seeds per grid point (default 2)")
    p.add_argument("--out", default="runs/tune", help="folder for the grid's runs (default runs/tune)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="fixed overrides for every point")
    args, extra = p.parse_known_args(argv)
    if any("=" not in a or a.startswith("-") for a in extra):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    fixed = parse_overrides([*args.overrides, *extra])
    out = Path(args.out) / args.stage
    results = []
    for point in grid_points(args.grid):
        label = " ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "defaults"
        per_seed, seconds = [], []
        for seed in range(args.seeds):
            cfg = load_config("tiny", overrides={**fixed, **parse_overrides([f"{k}={v}" for k, v in point.items()]),
                                                 "seed": seed, "eval.sets": "arithmetic_val"})
            folder = out / (label.replace(" ", "_").replace("=", "-") or "defaults") / f"seed_{seed}"
            run = create_run(folder, cfg.to_dict(), cfg.seed)
            if args.source:
                copy_needed(open_run(Path(args.source) / f"seed_{seed}" if (Path(args.source) / "seed_0").exists()
                                     else args.source), run, args.stage, cfg)
            t0 = time.time()
            run_stage(cfg, run, find_step(cfg, args.stage))
            from s2dlab.workflow.evaluate import evaluate_stage

            evaluate_stage(cfg, run, args.stage, progress=False)
            seconds.append(time.time() - t0)
            per_seed.append(per_problem(cfg, run, args.stage))
        iv = dg.accuracy_interval(per_seed)
        results.append({"point": point, "label": label, "val": iv, "seconds": seconds, "fixed": args.overrides + extra})
        print(f"{label:<48} val avg@k {100 * iv['mean']:5.1f} [{100 * iv['ci'][0]:5.1f}, {100 * iv['ci'][1]:5.1f}]"
              f"  seeds {' '.join(f'{100 * x:.1f}' for x in iv['per_seed'])}", flush=True)
    # points of earlier invocations into the same folder are kept (a point measured again replaces its old entry)
    earlier = (read_json_file(out / "tune.json") or {}).get("results", [])
    labels = {r["label"] for r in results}
    results += [r for r in earlier if r["label"] not in labels]
    results.sort(key=lambda r: -r["val"]["mean"])
    atomic_write_json(out / "tune.json", {"stage": args.stage, "source": args.source, "results": results})
    print(f"\nbest on validation: {results[0]['label']} ({100 * results[0]['val']['mean']:.1f}); "
          f"all points in {out / 'tune.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
