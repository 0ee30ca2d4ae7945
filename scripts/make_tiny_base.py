"""Train the tiny base teacher and students (stage 0) and write them to s2dlab/assets/tiny_base/.

These are the models `base.source=shipped` (the default) copies into a run, so `s2dlab run` on a laptop skips the
from-scratch SFT (about 36 minutes of CPU for the teacher, 5 for a student). Rerun this after changing the tiny
models, the task or stage 0:

    python scripts/make_tiny_base.py [--work runs/_tiny_base] [key=value ...]     # the teacher and the close student
    python scripts/make_tiny_base.py --students middle,far                        # only these students

`--students` trains only the students named (`base.student` levels: close, middle, far; each in its own work
folder `<work>_<level>`), leaves the shipped teacher alone and updates their entries of shipped.json. Every model
folder gets the character tokenizer beside its weights, so `s2dlab check --teacher ... --student
s2dlab/assets/tiny_base/student_far` reads it as it is.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from s2dlab.core.config import flatten, load_config
from s2dlab.core.models import build_char_tokenizer, load_model
from s2dlab.core.runs import create_run
from s2dlab.workflow.evaluate import evaluate_stage
from s2dlab.workflow.stages import base, lifecycle


def ship(cfg, run, role: str, name: str) -> dict:
    """Evaluate the run's `base_<role>`, copy it (weights, tokenizer, eval) to the shipped folder `name`."""
    stage = f"base_{role}"
    ev = evaluate_stage(cfg, run, stage)
    first = ev["sets"][cfg.eval.sets[0]]
    stage_info = run.stage(stage).fields
    entry = {"steps": stage_info["steps"], "select_step": stage_info.get("select_step"),
             "train_seconds": round(stage_info["finished"] - stage_info["started"]),
             "select_accuracy": stage_info.get("select_accuracy"),
             "eval_greedy": first.get("greedy"), f"eval_avg@{cfg.eval.n_samples}": ev["accuracy"]}
    if role == "student":
        entry.update(layout=base.STUDENT_LAYOUTS[cfg.base.student], distance=cfg.base.student)
    dest = base.SHIPPED / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    load_model(run.model_dir(stage)).save_pretrained(dest)
    build_char_tokenizer().save_pretrained(dest)
    # the evaluation ships too: a run with the default eval config on the same eval problems reuses it instead of
    # evaluating the same weights again (evaluate_stage re-evaluates whenever the eval config or problems differ)
    (dest / "eval.json").write_text(json.dumps(ev, indent=2, sort_keys=True) + "\n")
    print(f"{name}: {json.dumps(entry)}")
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/_tiny_base", help="run folder for the training (resumable)")
    p.add_argument("--students", metavar="LEVELS",
                   help=f"only these students, comma-separated ({', '.join(base.STUDENT_LAYOUTS)}); the teacher "
                        f"is left as shipped")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. base.student_steps=600")
    args = p.parse_args(argv)
    lifecycle.offline_defaults()
    path = base.SHIPPED / "shipped.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    if args.students:
        levels = [s.strip() for s in args.students.split(",") if s.strip()]
        unknown = [s for s in levels if s not in base.STUDENT_LAYOUTS]
        if unknown:
            p.error(f"--students {args.students}: unknown level {unknown[0]!r}; choose from "
                    f"{', '.join(base.STUDENT_LAYOUTS)}")
        for level in levels:
            cfg = load_config("tiny", overrides=["base.source=train", f"base.student={level}", *args.overrides])
            keys = {k: flatten(cfg)[k] for k in base.SHIPPED_KEYS}
            if info.get("config", keys) != keys:
                raise SystemExit(f"the shipped teacher was trained with {info['config']}, these students with {keys}; "
                                 f"rebuild the teacher first (run without --students)")
            run = create_run(f"{args.work}_{level}", cfg.to_dict(), cfg.seed)
            base.run(cfg, run, roles=("student",))
            info["config"] = keys
            info[base.shipped_name("student", level)] = ship(cfg, run, "student", base.shipped_name("student", level))
    else:
        cfg = load_config("tiny", overrides=["base.source=train", *args.overrides])
        run = create_run(args.work, cfg.to_dict(), cfg.seed)
        base.run(cfg, run)
        info["config"] = {k: flatten(cfg)[k] for k in base.SHIPPED_KEYS}
        for role in ("teacher", "student"):
            info[base.shipped_name(role, cfg.base.student)] = ship(cfg, run, role, base.shipped_name(role, cfg.base.student))
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    print(f"wrote {base.SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
