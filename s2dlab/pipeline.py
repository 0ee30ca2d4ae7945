"""The workflow, the direct-GRPO baseline, the ablations, evaluation and the results table.

    base -> teacher_grpo -> fkl_warmup -> opd -> student_grpo      (arm "workflow")
    base -> direct_grpo                                             (arm "direct_grpo", same labeled problems)
    --ablations: raw_teacher (2a+2b from the teacher before stage 1, then 3), no_warmup (skip 2a), no_opd (skip 2b),
                 and the reference arm gold_sft (SFT on gold worked solutions, same student steps)

Every stage is evaluated when it finishes (`<stage>/eval.json`), and `results.json` holds the arms x metrics table
with the C1/C2 diagnostics. Rerunning a run folder skips finished stages and resumes an interrupted one.
`--seeds N` runs `seed_0 .. seed_{N-1}` under the run folder and writes the mean and sd of every arm.

    s2dlab run                                  # tiny preset into runs/tiny
    s2dlab run --ablations --seeds 3 --out runs/tiny3
    s2dlab run --preset qwen3_paper --out runs/qwen3   # GPU box
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from s2dlab.config import Config
from s2dlab.evaluate import evaluate_stage
from s2dlab.runs import Run, create_run

ABLATIONS = ("raw_teacher", "no_warmup", "no_opd", "gold_sft")


@dataclass
class Step:
    """One stage to run: which module, where it writes, what it starts from."""

    module: str
    out: str
    kwargs: dict


def plan(cfg: Config, ablations: bool = False) -> tuple[list[Step], dict[str, str]]:
    """The stages in order, and for each arm the stage whose model is that arm's final student."""
    w, o = cfg.fkl_warmup.enabled, cfg.opd.enabled
    steps = [Step("base", "base_teacher", {"roles": ("teacher",)}),
             Step("base", "base_student", {"roles": ("student",)}),
             Step("teacher_grpo", "teacher_grpo", {})]
    student = "base_student"
    if w:
        steps.append(Step("fkl_warmup", "fkl_warmup", dict(init=student, teacher="teacher_grpo", out="fkl_warmup")))
        student = "fkl_warmup"
    if o:
        steps.append(Step("opd", "opd", dict(init=student, teacher="teacher_grpo", out="opd")))
        student = "opd"
    steps.append(Step("student_grpo", "student_grpo", dict(init=student, teacher="teacher_grpo", out="student_grpo")))
    steps.append(Step("direct_grpo", "direct_grpo", {}))
    arms = {"workflow": "student_grpo", "direct_grpo": "direct_grpo"}
    if ablations:
        steps += [
            Step("fkl_warmup", "raw_teacher.fkl_warmup",
                 dict(init="base_student", teacher="base_teacher", out="raw_teacher.fkl_warmup")),
            Step("opd", "raw_teacher.opd",
                 dict(init="raw_teacher.fkl_warmup", teacher="base_teacher", out="raw_teacher.opd")),
            Step("student_grpo", "raw_teacher.student_grpo",
                 dict(init="raw_teacher.opd", teacher="base_teacher", out="raw_teacher.student_grpo")),
            Step("opd", "no_warmup.opd", dict(init="base_student", teacher="teacher_grpo", out="no_warmup.opd")),
            Step("student_grpo", "no_warmup.student_grpo",
                 dict(init="no_warmup.opd", teacher="teacher_grpo", out="no_warmup.student_grpo")),
            Step("student_grpo", "no_opd.student_grpo",
                 dict(init="fkl_warmup", teacher="teacher_grpo", out="no_opd.student_grpo")),
            Step("gold_sft", "gold_sft", {}),
        ]
        arms.update({"raw_teacher": "raw_teacher.student_grpo", "no_warmup": "no_warmup.student_grpo",
                     "no_opd": "no_opd.student_grpo", "gold_sft": "gold_sft"})
    return steps, arms


def run_stage(cfg: Config, run: Run, step: Step) -> dict:
    import importlib

    module = importlib.import_module(f"s2dlab.stages.{step.module}")
    return module.run(cfg, run, **step.kwargs)


def run_seed(cfg: Config, out_dir: str | Path, ablations: bool = False, progress: bool = True) -> dict:
    """Run every stage of one seed into `out_dir`, evaluate, and write `results.json`."""
    from s2dlab.stages.common import is_main_process, offline_defaults, process_state, tokenizer_for

    offline_defaults()
    # Under `accelerate launch` every process runs every stage; only the main one writes the run store
    # (the others return {}), and all of them wait at a barrier for its models and evaluations.
    with process_state(cfg).main_process_first():
        run = create_run(out_dir, cfg.to_dict(), cfg.seed)
        tokenizer_for(cfg, run)
    main = is_main_process()
    steps, arms = plan(cfg, ablations)
    timings = dict((run.read_json("timings.json") or {}))
    bar = tqdm(steps, desc=f"s2dlab run (seed {cfg.seed})", disable=not progress or not main)
    for step in bar:
        bar.set_postfix_str(step.out)
        t0 = time.time()
        run_stage(cfg, run, step)
        process_state(cfg).wait_for_everyone()
        if main:
            evaluate_stage(cfg, run, step.out, progress=False)
            if step.out not in timings:
                timings[step.out] = round(time.time() - t0, 1)
                run.write_json("timings.json", timings)
        process_state(cfg).wait_for_everyone()
    if not main:
        return {}
    results = collect_results(cfg, run, arms)
    results["timings_s"] = timings
    run.write_results(results)
    return results


def collect_results(cfg: Config, run: Run, arms: dict[str, str]) -> dict:
    """Arms x metrics from the stages' eval.json, per-stage accuracies and the C1/C2 diagnostics."""
    from s2dlab.diagnostics import c1_separation, c2_closeness

    k = cfg.eval.n_samples
    stages = {s: ev for s in run.stages() if (ev := run.eval(s))}

    def metrics(stage: str) -> dict:
        ev = stages.get(stage)
        if not ev:
            return {}
        first = ev["sets"][cfg.eval.sets[0]]
        out = {"accuracy": ev["accuracy"], f"pass@{k}": first.get(f"pass@{k}"), "stage": stage}
        if "greedy" in first:
            out["greedy"] = first["greedy"]
        for name, res in ev["sets"].items():
            out[f"{name}/avg@{k}"] = res.get(f"avg@{k}")
        return out

    def snapshot(stage: str, which: str):
        steps = run.rollout_steps(stage) if stage in stages or run.stage_dir(stage).exists() else []
        if not steps:
            return None
        df = run.rollouts(stage, steps[0] if which == "first" else steps[-1])
        return [r for r in df.to_dict("records") if r.get("policy", "student") == "student"]

    c1 = {"teacher_accuracy_before": metrics("base_teacher").get("accuracy"),
          "teacher_accuracy_after": metrics("teacher_grpo").get("accuracy")}
    for label, which in (("before", "first"), ("after", "last")):
        rows = snapshot("teacher_grpo", which)
        if rows:
            c1[f"separation_{label}"] = c1_separation(rows)
    c2 = {}
    for label, stage, which in (("before_warmup", "fkl_warmup", "first"), ("after_warmup", "fkl_warmup", "last"),
                                ("opd_start", "opd", "first"), ("opd_end", "opd", "last"),
                                ("raw_teacher_before_warmup", "raw_teacher.fkl_warmup", "first")):
        rows = snapshot(stage, which)
        if rows:
            c2[label] = c2_closeness(rows)
    opd_curve = [{"step": m["step"], "mean_reverse_kl": m["probe/mean_reverse_kl"]}
                 for m in run.metrics("opd") if "probe/mean_reverse_kl" in m] if "opd" in run.stages() else []
    c2["opd_curve"] = opd_curve
    return {
        "name": run.name, "seed": cfg.seed, "eval": {"sets": cfg.eval.sets, "k": k},
        "arms": {arm: m for arm, stage in arms.items() if (m := metrics(stage))},
        "stages": {s: metrics(s) for s in stages},
        "teacher": {"base": metrics("base_teacher").get("accuracy"), "rl": metrics("teacher_grpo").get("accuracy")},
        "student": {s: metrics(s).get("accuracy") for s in stages if not s.endswith("teacher") and s != "teacher_grpo"},
        "c1": c1, "c2": c2,
    }


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and sd over seeds of every numeric arm metric; the per-seed tables are kept."""
    arms: dict[str, dict] = {}
    for res in per_seed:
        for arm, m in res["arms"].items():
            for key, value in m.items():
                if isinstance(value, (int, float)):
                    arms.setdefault(arm, {}).setdefault(key, []).append(value)
    out = {}
    for arm, m in arms.items():
        out[arm] = {}
        for key, values in m.items():
            out[arm][key] = statistics.fmean(values)
            out[arm][f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
            out[arm][f"{key}_n"] = len(values)
    return {"arms": out, "seeds": [r["seed"] for r in per_seed], "per_seed": per_seed,
            "eval": per_seed[0]["eval"] if per_seed else {}}


def run_pipeline(cfg: Config, out_dir: str | Path, ablations: bool = False, seeds: int = 1,
                 progress: bool = True) -> dict:
    """One seed into `out_dir`, or `seeds` seeds into `out_dir/seed_k` plus an aggregate `results.json`."""
    out_dir = Path(out_dir)
    if seeds < 1:
        raise ValueError(f"--seeds {seeds}: give 1 or more")
    if seeds == 1:
        return run_seed(cfg, out_dir, ablations, progress)
    per_seed = []
    for k in range(seeds):
        c = copy.deepcopy(cfg)
        c.seed = cfg.seed + k
        per_seed.append(run_seed(c, out_dir / f"seed_{k}", ablations, progress))
    if not all(per_seed):  # another process of an `accelerate launch`
        return {}
    agg = aggregate(per_seed)
    from s2dlab.runs import atomic_write_json

    atomic_write_json(out_dir / "results.json", agg)
    return agg


def results_table(results: dict) -> str:
    """Plain-text arms table (mean ± sd when several seeds)."""
    arms = results.get("arms", {})
    k = results.get("eval", {}).get("k", "k")
    lines = [f"{'arm':<14} {'avg@' + str(k):>16} {'greedy':>16} {'pass@' + str(k):>16}"]

    def cell(m, key):
        if m.get(key) is None:
            return "-"
        if f"{key}_sd" in m and m.get(f"{key}_n", 1) > 1:
            return f"{100 * m[key]:.1f} ± {100 * m[key + '_sd']:.1f}"
        return f"{100 * m[key]:.1f}"

    order = ["workflow", "direct_grpo", *ABLATIONS]
    for arm, m in sorted(arms.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)):
        lines.append(f"{arm:<14} {cell(m, 'accuracy'):>16} {cell(m, 'greedy'):>16} {cell(m, f'pass@{k}'):>16}")
    return "\n".join(lines)
