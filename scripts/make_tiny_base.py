"""Train the tiny base teacher and student (stage 0) and write them to s2dlab/assets/tiny_base/.

These are the models `base.source=shipped` (the default) copies into a run, so `s2dlab run` on a laptop skips the
from-scratch SFT (about 25 minutes of CPU for both). Rerun this after changing the tiny models, the task or stage 0:

    python scripts/make_tiny_base.py [--work runs/_tiny_base] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from s2dlab.config import flatten, load_config
from s2dlab.evaluate import evaluate_stage
from s2dlab.runs import create_run
from s2dlab.models import load_model
from s2dlab.stages import base, lifecycle


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/_tiny_base", help="run folder for the training (resumable)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. base.student_steps=600")
    args = p.parse_args(argv)
    cfg = load_config("tiny", overrides=["base.source=train", *args.overrides])
    lifecycle.offline_defaults()
    run = create_run(args.work, cfg.to_dict(), cfg.seed)
    base.run(cfg, run)
    info = {"config": {k: flatten(cfg)[k] for k in base.SHIPPED_KEYS}}
    for role in ("teacher", "student"):
        stage = f"base_{role}"
        ev = evaluate_stage(cfg, run, stage)
        first = ev["sets"][cfg.eval.sets[0]]
        stage_info = run.read_json(f"{stage}/stage.json")
        info[role] = {"steps": stage_info["steps"], "select_step": stage_info.get("select_step"),
                      "train_seconds": round(stage_info["finished"] - stage_info["started"]),
                      "select_accuracy": stage_info.get("select_accuracy"),
                      "eval_greedy": first.get("greedy"), f"eval_avg@{cfg.eval.n_samples}": ev["accuracy"]}
        dest = base.SHIPPED / role
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        model = load_model(run.model_dir(stage))
        model.save_pretrained(dest)
        # the evaluation ships too: a run with the default eval config reuses it instead of evaluating the same
        # weights again (evaluate_stage re-evaluates whenever the eval config differs)
        (dest / "eval.json").write_text(json.dumps(ev, indent=2, sort_keys=True) + "\n")
        print(f"{stage}: {json.dumps(info[role])}")
    (base.SHIPPED / "shipped.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(f"wrote {base.SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
