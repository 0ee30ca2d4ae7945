"""The paper's Table 2 as a plan of stages: the four-stage workflow, cold GRPO, the bridge ablations, the halves.

    s2dlab run                                  # the four-stage workflow and cold GRPO (tiny preset, runs/tiny)
    s2dlab run --ablations                      # every row of the table
    s2dlab run --ablations --seeds 5 --out runs/table2
    s2dlab run --arms bridge,bridge_no_warmup,cold_grpo base.student=far   # only these arms and what they need
    s2dlab run --preset qwen3_paper --out runs/qwen3   # GPU box

The labeled pool is cut into fixed halves 1H / 2H (`s2dlab.core.data`). The arms, each the stage whose model is its
student, are in `s2dlab.workflow.arms`; `plan` lists the stages that make them, in dependency order.

Every stage is evaluated when it finishes (`<stage>/eval.json`); the fixed-rollout C1/C2 measurements follow the
stages they need, and `summary.json` / `results.json` are rewritten after every stage (`s2dlab.workflow.summary`). At the
end the token lens (`s2dlab.instruments.lens`) re-scores the first probe snapshot with each student checkpoint against its
own and the raw teacher.
Rerunning a run folder skips finished stages and resumes an interrupted one. `--seeds N` runs `seed_0 ..
seed_{N-1}` under the run folder and writes their aggregate with intervals.
"""

from __future__ import annotations

import copy
import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from s2dlab.core.config import Config, ConfigError
from s2dlab.core.runs import Run, create_run, open_run
from s2dlab.workflow.arms import ARM_ORDER, ARMS, DEFAULT_ARMS, Arm, select_arms  # noqa: F401 - the plan's arms


@dataclass(frozen=True)
class Step:
    """One stage to run: its folder (`name`), the stage module and that module's `run` keyword arguments."""

    name: str
    module: str
    kwargs: dict = field(default_factory=dict)

    @property
    def needs(self) -> list[str]:
        """The stages whose models this one starts from or learns from."""
        keys = ("init", "teacher", "policy_from")
        return [v for k, v in self.kwargs.items() if k in keys and v]


def plan(cfg: Config, ablations: bool | Sequence[str] = False) -> tuple[list[Step], dict[str, Arm]]:
    """The stages in dependency order, and the arms they produce: `s2dlab run`'s (`ablations=False`), every row
    (`True`), or only the arms named (`s2dlab run --arms a,b,c`) and the stages they start from or learn from."""
    selected = None if isinstance(ablations, bool) else select_arms(ablations)
    ablations = ablations if selected is None else True
    bridge_steps = cfg.fkl_warmup.steps + cfg.opd.steps  # the top block's student budget
    steps = [
        Step("base_teacher", "base", {"roles": ("teacher",)}),
        Step("base_student", "base", {"roles": ("student",)}),
        Step("teacher_grpo", "grpo", dict(section="teacher_grpo", policy_from="base_teacher", role="teacher",
                                          labels="1h", counterpart_from="base_student")),
        Step("fkl_warmup", "fkl_warmup", dict(init="base_student", teacher="teacher_grpo", prompts="1h")),
        Step("opd", "opd", dict(init="fkl_warmup", teacher="teacher_grpo", prompts="1h")),
        Step("student_grpo", "grpo", dict(section="student_grpo", policy_from="opd", role="student", labels="2h",
                                          counterpart_from="teacher_grpo")),
        Step("cold_grpo", "grpo", dict(section="cold_grpo", policy_from="base_student", role="student",
                                       labels="pool", counterpart_from="teacher_grpo")),
    ]
    if ablations:
        steps += [
            Step("replay", "grpo", dict(section="student_grpo", policy_from="opd", role="student", labels="1h",
                                        counterpart_from="teacher_grpo")),
            Step("full.teacher_grpo", "grpo", dict(section="teacher_grpo", policy_from="base_teacher",
                                                   role="teacher", labels="pool", counterpart_from="base_student")),
            Step("full.fkl_warmup", "fkl_warmup", dict(init="base_student", teacher="full.teacher_grpo",
                                                       prompts="pool")),
            Step("full.opd", "opd", dict(init="full.fkl_warmup", teacher="full.teacher_grpo", prompts="pool")),
            Step("raw_teacher.fkl_warmup", "fkl_warmup", dict(init="base_student", teacher="base_teacher",
                                                              prompts="pool")),
            Step("raw_teacher.opd", "opd", dict(init="raw_teacher.fkl_warmup", teacher="base_teacher",
                                                prompts="pool")),
            Step("no_warmup.opd", "opd", dict(init="base_student", teacher="full.teacher_grpo", prompts="pool",
                                              steps=bridge_steps)),
            Step("no_opd.fkl_warmup", "fkl_warmup", dict(init="base_student", teacher="full.teacher_grpo",
                                                         prompts="pool", loss="sampled", steps=bridge_steps)),
            Step("teacher_sft", "sft", dict(section="teacher_sft", init="base_teacher", role="teacher",
                                            labels="pool", counterpart_from="base_student")),
            Step("sft_teacher.fkl_warmup", "fkl_warmup", dict(init="base_student", teacher="teacher_sft",
                                                              prompts="pool")),
            Step("sft_teacher.opd", "opd", dict(init="sft_teacher.fkl_warmup", teacher="teacher_sft",
                                                prompts="pool")),
            Step("gold_sft", "sft", dict(section="gold_sft", init="base_student", role="student", labels="pool",
                                         counterpart_from="full.teacher_grpo")),
        ]
    if cfg.task.name != "arithmetic":  # real data has final answers only: no gold worked solutions
        # so no SFT stage, and none of the stages that start from or learn from one (the SFT'd teacher's bridge)
        dropped: set[str] = set()
        for s in steps:  # dependency order: a stage's needs come before it
            if s.module == "sft" or dropped.intersection(s.needs):
                dropped.add(s.name)
        steps = [s for s in steps if s.name not in dropped]
    names = {s.name for s in steps}
    arms = {a.name: a for a in ARMS if a.final in names and (ablations or a.name in DEFAULT_ARMS)}
    if selected is not None:
        missing = [a for a in selected if a not in arms]
        if missing:
            raise ConfigError(f"--arms: arm {missing[0]!r} needs gold worked solutions, which task.name="
                              f"{cfg.task.name!r} does not have; drop it")
        by_name, keep = {s.name: s for s in steps}, set()
        todo = [arms[a].final for a in selected]
        while todo:  # the arms' final stages and everything they start from or learn from
            name = todo.pop()
            if name not in keep:
                keep.add(name)
                todo += by_name[name].needs
        steps = [s for s in steps if s.name in keep]
        arms = {a: arms[a] for a in selected}
    return steps, arms


def find_step(cfg: Config, name: str) -> Step:
    """The step that writes stage folder `name` (any row of the full plan), or a one-line error listing them."""
    steps, _ = plan(cfg, ablations=True)
    by_name = {s.name: s for s in steps}
    if name == "base":
        return Step("base", "base", {})
    if name not in by_name:
        raise ConfigError(f"no stage named {name!r}; stages are: base, {', '.join(by_name)}")
    return by_name[name]


def run_stage(cfg: Config, run: Run, step: Step) -> dict:
    """Run one step (its module's `run`), after checking that the stages it starts from have finished."""
    from s2dlab.workflow.stages import lifecycle

    for need in step.needs:
        if need.startswith("base_"):
            importlib.import_module("s2dlab.workflow.stages.base").run(cfg, run, roles=(need.removeprefix("base_"),))
        elif not lifecycle.finished(run, need):
            raise ConfigError(f"stage {step.name!r} starts from {need!r}, which has not finished in {run.path}; "
                              f"run it first: s2dlab stage {need} --out {run.path}")
    module = importlib.import_module(f"s2dlab.workflow.stages.{step.module}")
    kwargs = dict(step.kwargs)
    if step.module != "base":
        kwargs["out"] = step.name
    return module.run(cfg, run, **kwargs)


def after_stage(cfg: Config, run: Run, name: str, progress: bool = False) -> None:
    """Evaluate a finished stage, take the fixed-rollout C1/C2 measurements it makes possible, rewrite the summary."""
    from s2dlab.workflow import measure, summary
    from s2dlab.workflow.evaluate import evaluate_stage

    evaluate_stage(cfg, run, name, progress=progress)
    measure.measure_after(cfg, run, name)
    summary.write_summary(cfg, run)


# --- a run folder under one config --------------------------------------------------------------------------------------

# Config sections whose keys change only the stages that read that section; any other key (seed, models, task,
# generation, probe snapshots, ...) changes every stage.
_SECTION_STAGES = {
    "teacher_grpo": lambda s: s.kwargs.get("section") == "teacher_grpo",
    "student_grpo": lambda s: s.kwargs.get("section") == "student_grpo",
    "cold_grpo": lambda s: s.kwargs.get("section") == "cold_grpo",
    "teacher_sft": lambda s: s.kwargs.get("section") == "teacher_sft",
    "gold_sft": lambda s: s.kwargs.get("section") == "gold_sft",
    "fkl_warmup": lambda s: s.module == "fkl_warmup",
    "opd": lambda s: s.module == "opd",
    "base": lambda s: s.module == "base",
}


@dataclass
class ConfigChange:
    """What a changed config touches in a run folder: the stages to train again (those whose section changed and
    every stage that starts from or learns from one of them), whether every stage is evaluated again (eval.*), and
    whether the fixed C1/C2 rollouts are taken again."""

    diff: list
    stages: list[str]
    reevaluate: bool
    rediagnose: bool

    def words(self, present: list[str]) -> str:
        here = [s for s in self.stages if s in present]
        parts = []
        if here and len(here) == len(present) and len(here) > 3:
            parts.append(f"retrain all {len(here)} stages")
        elif here:
            parts.append(f"retrain {', '.join(here)}")
        if self.reevaluate:
            parts.append("evaluate every stage again")
        if self.rediagnose and not here:
            parts.append("take the C1/C2 rollouts again")
        return " and ".join(parts) or "record the new config (no finished stage depends on these keys)"


def config_change(cfg: Config, diff: list) -> ConfigChange:
    """The stages of the full plan that the keys of `diff` (`config.config_diff` triples) touch, with everything
    after them (s2dlab run --retrain, s2dlab stage --retrain)."""
    steps, _ = plan(cfg, ablations=True)
    touched, reevaluate, rediagnose = set(), False, False
    for key, _old, _new in diff:
        section, _, leaf = key.partition(".")
        if section == "eval":
            reevaluate = True
        elif section == "probe" and leaf.startswith("c1_"):
            rediagnose = True
        elif section in _SECTION_STAGES:
            touched |= {s.name for s in steps if _SECTION_STAGES[section](s)}
            if key in ("fkl_warmup.steps", "opd.steps"):  # the arms that run for the bridge's student steps
                touched |= {s.name for s in steps if "steps" in s.kwargs}
        else:
            touched |= {s.name for s in steps} | {"base_teacher", "base_student"}
            rediagnose = True
    if touched & {"base_teacher", "base_student"}:
        touched.add("base")
    grew = True
    while grew:  # everything after a touched stage
        grew = False
        for s in steps:
            if s.name not in touched and (set(s.needs) & touched):
                touched.add(s.name)
                grew = True
    order = ["base_teacher", "base_student"] + [s.name for s in steps if s.module != "base"]
    return ConfigChange(diff, [n for n in order if n in touched], reevaluate, rediagnose or bool(touched))


def preflight(cfg: Config) -> None:
    """Read the task's splits and eval sets before anything is written: a bad data file (missing, not UTF-8, a row
    without a problem, a hub set not in the cache offline) stops with its one line before a run folder is made."""
    from s2dlab.core import data

    data.task_splits(cfg)
    data.eval_sets(cfg)


def open_for(cfg: Config, out_dir: str | Path, *, retrain: bool = False, new_place: str = "a new --out",
             retrain_flag: str = "--retrain", check_only: bool = False) -> Run | None:
    """The run folder `out_dir` for `cfg`: created, or reused when it was made under the same config.

    Made under another config, it stops with one line naming the keys that differ and the two ways out (a new
    folder, or `retrain_flag`); with `retrain=True` the stages the change touches and everything after them are
    removed (model, metrics, snapshots, eval), every eval.json goes when eval.* changed, the summary, lens and
    affected C1/C2 rollouts go, and run.json takes the new config (its history under `retrained`). The stages are
    then trained again by whatever runs next. `check_only` raises what it would raise and writes nothing (returns
    None): the commands check before they take the folder's lock, so a refused command leaves no file behind.
    """
    from s2dlab.core.config import ConfigMismatchError, config_diff, diff_text
    from s2dlab.core.distributed import is_main_process

    out_dir = Path(out_dir)
    if not (out_dir / "run.json").exists() and any(out_dir.glob("seed_*/run.json")):
        raise ConfigError(f"{out_dir} holds seed_<k> runs of `s2dlab run --seeds N`; give --seeds N again, or use "
                          "a new --out for a single run")
    if check_only and not (out_dir / "run.json").exists():
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"--out {out_dir} is a file, not a folder; give a folder path for the run")
        return None
    try:
        if check_only:
            run = open_run(out_dir)
            diff = config_diff({**run.info.get("config", {}), "seed": run.info.get("seed")},
                               {**cfg.to_dict(), "seed": cfg.seed})
            if not diff or retrain:
                return None
            raise ConfigMismatchError("", diff)
        return create_run(out_dir, cfg.to_dict(), cfg.seed)
    except ConfigMismatchError as err:
        diff = err.diff
    run = open_run(out_dir)
    change = config_change(cfg, diff)
    present = run.stages()
    if not retrain:
        raise ConfigMismatchError(f"{out_dir} was made with another config ({diff_text(diff)}); keep it as it is and "
                                  f"use {new_place}, or add {retrain_flag} to {change.words(present)}", diff)
    if is_main_process():
        _retrain(run, cfg, change, present)
    return open_run(out_dir)


def _retrain(run: Run, cfg: Config, change: ConfigChange, present: list[str]) -> None:
    import shutil
    import time as _time

    from s2dlab.core.config import flat_dict
    from s2dlab.core.runs import atomic_write_json

    gone = [s for s in change.stages if s in present]
    print(f"{run.path}: --retrain: {change.words(present)} ({', '.join(k for k, _, _ in change.diff)} changed)")
    for name in gone:
        shutil.rmtree(run.stage_dir(name))
    if change.reevaluate:
        for name in run.stages():
            (run.stage_dir(name) / "eval.json").unlink(missing_ok=True)
    diag = run.path / "diagnostics"
    if change.rediagnose and (not gone or "base_student" in gone):
        shutil.rmtree(diag, ignore_errors=True)
    for name in gone:
        for sub in ("c1", "c2"):
            (diag / sub / f"{name}.parquet").unlink(missing_ok=True)
    if gone:
        shutil.rmtree(run.path / "lens", ignore_errors=True)
    for name in ("summary.json", "results.json", "plan.json"):
        (run.path / name).unlink(missing_ok=True)
    timings = {k: v for k, v in (run.read_json("timings.json") or {}).items() if k not in gone}
    run.write_json("timings.json", timings)
    history = list(run.info.get("retrained") or [])
    history.append({"at": _time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": gone,
                    "changed": {k: [a, b] for k, a, b in change.diff},
                    "config_before": flat_dict(run.info.get("config") or {})})
    atomic_write_json(run.path / "run.json", {**run.info, "config": cfg.to_dict(), "seed": cfg.seed,
                                              "retrained": history})


def _lock(out_dir: Path):
    """The run folder's lock (`runs.run_lock`), held by the main process only (under `accelerate launch` the other
    processes of the same launch train beside it)."""
    import contextlib

    from s2dlab.core.distributed import is_main_process
    from s2dlab.core.runs import run_lock

    return run_lock(out_dir) if is_main_process() else contextlib.nullcontext()


def stage_into(cfg: Config, out_dir: str | Path, step: Step, retrain: bool = False) -> tuple[Run, list[str]]:
    """`s2dlab stage`: one step into a run folder (created, or reused under the same config), evaluated and
    summarised like in `s2dlab run`; returns the run and the stage folders it finished (none on a process other than
    the main one)."""
    from s2dlab.core.distributed import is_main_process, process_state
    from s2dlab.workflow.stages import lifecycle

    lifecycle.offline_defaults()
    preflight(cfg)
    open_for(cfg, out_dir, retrain=retrain, check_only=True)
    with _lock(Path(out_dir)):
        # Under `accelerate launch` the main process creates the run folder (and copies the shipped base models)
        # before the others open it; after the stage everyone waits for the main process to write the model.
        with process_state(cfg).main_process_first():
            run = open_for(cfg, out_dir, retrain=retrain)
            lifecycle.tokenizer_for(cfg, run)
        if step.name == "base":
            importlib.import_module("s2dlab.workflow.stages.base").run(cfg, run)
            names = ["base_teacher", "base_student"]
        else:
            run_stage(cfg, run, step)
            names = [step.name]
        process_state(cfg).wait_for_everyone()
        if not is_main_process():
            return run, []
        done = [n for n in names if lifecycle.finished(run, n)]
        for name in done:
            after_stage(cfg, run, name)
        return run, done


def run_seed(cfg: Config, out_dir: str | Path, ablations: bool = False, progress: bool = True,
             retrain: bool = False) -> dict:
    """Run every stage of one seed into `out_dir`, evaluated and summarised; returns the summary."""
    preflight(cfg)
    open_for(cfg, out_dir, retrain=retrain, check_only=True)  # a refused run writes nothing, not even its lock
    with _lock(Path(out_dir)):
        return _run_seed(cfg, out_dir, ablations, progress, retrain)


def _run_seed(cfg: Config, out_dir: str | Path, ablations: bool, progress: bool, retrain: bool) -> dict:
    from s2dlab.core.distributed import is_main_process, process_state
    from s2dlab.workflow import summary
    from s2dlab.workflow.stages.lifecycle import offline_defaults, tokenizer_for

    offline_defaults()
    # Under `accelerate launch` every process runs every stage; only the main one writes the run store (the others
    # return {}), and all of them wait at a barrier for its models and evaluations.
    with process_state(cfg).main_process_first():
        run = open_for(cfg, out_dir, retrain=retrain)
        tokenizer_for(cfg, run)
    main = is_main_process()
    steps, arms = plan(cfg, ablations)
    run.write_json("plan.json", {"arms": list(arms), "stages": [s.name for s in steps]}) if main else None
    timings = dict(run.read_json("timings.json") or {})
    bar = tqdm(steps, desc=f"s2dlab run (seed {cfg.seed})", disable=not progress or not main, dynamic_ncols=True)
    for step in bar:
        bar.set_postfix_str(step.name)
        t0 = time.time()
        fresh = step.name not in timings
        run_stage(cfg, run, step)
        process_state(cfg).wait_for_everyone()
        if main:
            after_stage(cfg, run, step.name)
            if fresh:
                timings[step.name] = round(time.time() - t0, 1)
                run.write_json("timings.json", timings)
            if progress:
                bar.write(summary.stage_line(run, step.name, timings.get(step.name)))
        process_state(cfg).wait_for_everyone()
    if main and cfg.probe.num_prompts and not (run.path / "lens" / "lens.json").exists():
        from s2dlab.instruments.lens import compute_lens

        compute_lens(run, pairs=lens_pairs(run), progress=progress)
    return summary.write_summary(cfg, run) if main else {}


def lens_pairs(run: Run) -> list[tuple[str, str]]:
    """The token lens `s2dlab run` computes: every student checkpoint scored by the teacher it learned from (the
    stage-1 teacher when none) and by the raw base teacher, the pairs that show C1 token by token. `s2dlab lens
    RUN` computes every pair."""
    from s2dlab.instruments.lens import checkpoints

    ckpts = checkpoints(run)
    teachers = {c["stage"] for c in ckpts if c["role"] == "teacher"}
    pairs = []
    for c in ckpts:
        if c["role"] == "student":
            pairs += [(t, c["stage"]) for t in dict.fromkeys([c["teacher"] or "teacher_grpo", "base_teacher"])
                      if t in teachers]
    return pairs


def run_pipeline(cfg: Config, out_dir: str | Path, ablations: bool = False, seeds: int = 1,
                 progress: bool = True, retrain: bool = False) -> dict:
    """One seed into `out_dir`, or `seeds` seeds into `out_dir/seed_k` plus their aggregate `results.json`.

    A folder made under another config stops with the keys that differ (`open_for`) unless `retrain`; a folder in
    use by another process stops with who holds it (`runs.run_lock`)."""
    from s2dlab.workflow import summary

    out_dir = Path(out_dir)
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give 1 or more")
    if seeds == 1:
        return run_seed(cfg, out_dir, ablations, progress, retrain)
    if (out_dir / "run.json").exists():
        raise ConfigError(f"{out_dir} is a single run; --seeds {seeds} would write seed_<k> runs inside it and "
                          "replace its summary: use a new --out for the seeds")
    for k in range(seeds):
        c = copy.deepcopy(cfg)
        c.seed = cfg.seed + k
        open_for(c, out_dir / f"seed_{k}", retrain=retrain, check_only=True)
    per_seed = []
    with _lock(out_dir):
        for k in range(seeds):
            c = copy.deepcopy(cfg)
            c.seed = cfg.seed + k
            per_seed.append(run_seed(c, out_dir / f"seed_{k}", ablations, progress, retrain))
        if not all(per_seed):  # another process of an `accelerate launch`
            return {}
        return summary.write_aggregate(out_dir)
