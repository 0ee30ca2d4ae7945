"""The paper's Table 2 as a plan of stages: the four-stage workflow, cold GRPO, the bridge ablations, the halves.

    s2dlab run                                  # the four-stage workflow and cold GRPO (tiny preset, runs/tiny)
    s2dlab run --ablations                      # every row of the table
    s2dlab run --ablations --seeds 5 --out runs/table2
    s2dlab run --preset qwen3_paper --out runs/qwen3   # GPU box

The labeled pool is cut into fixed halves 1H / 2H (`s2dlab.data`). Arms, each the stage whose model is its student:

    block    arm                  stages (teacher side | student side)                             paper row
    halves   bridge_1h_stage3     teacher_grpo on 1H | fkl_warmup, opd on 1H prompts, student_grpo  bridge on 1H + stage 3
                                  on 2H  (the four-stage workflow; `s2dlab run`)                     on 2H
    halves   bridge_1h            the same, without stage 3                                       bridge on 1H only
    halves   bridge_1h_replay     the same bridge, then GRPO on 1H again (same counts as stage 3)  replay control
    top      cold_grpo            GRPO on the base student with the whole pool (`s2dlab run`)       cold GRPO
    top      bridge               full.teacher_grpo on the pool | full.fkl_warmup, full.opd         full bridge
    top      bridge_raw_teacher   no stage 1: 2a + 2b from the base teacher                        - stage 1
    top      bridge_no_warmup     OPD only, for the bridge's student steps                        - stage 2a
    top      bridge_no_opd        teacher-sample SFT only, for the bridge's student steps          - stage 2b
    top      bridge_sft_teacher   teacher_sft (SFT on gold solutions of the pool) | 2a + 2b         SFT'd teacher
    ref      gold_sft             SFT of the base student on gold worked solutions of the pool     (not in the paper)

Every stage is evaluated when it finishes (`<stage>/eval.json`); the fixed-rollout C1/C2 measurements follow the
stages they need, and `summary.json` / `results.json` are rewritten after every stage (`s2dlab.summary`). At the
end the token lens (`s2dlab.lens`) re-scores the first probe snapshot with each student checkpoint against its
own and the raw teacher.
Rerunning a run folder skips finished stages and resumes an interrupted one. `--seeds N` runs `seed_0 ..
seed_{N-1}` under the run folder and writes their aggregate with intervals.
"""

from __future__ import annotations

import copy
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from s2dlab.config import Config, ConfigError
from s2dlab.runs import Run, create_run


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


@dataclass(frozen=True)
class Arm:
    name: str
    final: str  # the stage whose model is the arm's student
    block: str  # top (whole labeled pool) | halves (1H / 2H) | reference
    row: str  # the paper's row, in words


ARMS = (
    Arm("bridge_1h_stage3", "student_grpo", "halves", "bridge on 1H + stage 3 on 2H (the four-stage workflow)"),
    Arm("bridge_1h", "opd", "halves", "bridge on 1H only"),
    Arm("bridge_1h_replay", "replay", "halves", "bridge on 1H + replay on 1H"),
    Arm("cold_grpo", "cold_grpo", "top", "cold GRPO on the student"),
    Arm("bridge", "full.opd", "top", "full bridge (1 + 2a + 2b)"),
    Arm("bridge_raw_teacher", "raw_teacher.opd", "top", "- stage 1 (raw teacher)"),
    Arm("bridge_no_warmup", "no_warmup.opd", "top", "- stage 2a (OPD only)"),
    Arm("bridge_no_opd", "no_opd.fkl_warmup", "top", "- stage 2b (teacher-sample SFT only)"),
    Arm("bridge_sft_teacher", "sft_teacher.opd", "top", "SFT'd teacher instead of stage 1"),
    Arm("gold_sft", "gold_sft", "reference", "student SFT on gold worked solutions (reference)"),
)
ARM_ORDER = [a.name for a in ARMS]
DEFAULT_ARMS = ("bridge_1h_stage3", "bridge_1h", "cold_grpo")


def plan(cfg: Config, ablations: bool = False) -> tuple[list[Step], dict[str, Arm]]:
    """The stages in dependency order, and the arms they produce (`s2dlab run` or, with `ablations`, every row)."""
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
        steps = [s for s in steps if s.module != "sft"]
    names = {s.name for s in steps}
    arms = {a.name: a for a in ARMS if a.final in names and (ablations or a.name in DEFAULT_ARMS)}
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
    from s2dlab.stages import lifecycle

    for need in step.needs:
        if need.startswith("base_"):
            importlib.import_module("s2dlab.stages.base").run(cfg, run, roles=(need.removeprefix("base_"),))
        elif not lifecycle.finished(run, need):
            raise ConfigError(f"stage {step.name!r} starts from {need!r}, which has not finished in {run.path}; "
                              f"run it first: s2dlab stage {need} --out {run.path}")
    module = importlib.import_module(f"s2dlab.stages.{step.module}")
    kwargs = dict(step.kwargs)
    if step.module != "base":
        kwargs["out"] = step.name
    return module.run(cfg, run, **kwargs)


def after_stage(cfg: Config, run: Run, name: str, progress: bool = False) -> None:
    """Evaluate a finished stage, take the fixed-rollout C1/C2 measurements it makes possible, rewrite the summary."""
    from s2dlab import summary
    from s2dlab.evaluate import evaluate_stage

    evaluate_stage(cfg, run, name, progress=progress)
    summary.measure_after(cfg, run, name)
    summary.write_summary(cfg, run)


def run_seed(cfg: Config, out_dir: str | Path, ablations: bool = False, progress: bool = True) -> dict:
    """Run every stage of one seed into `out_dir`, evaluated and summarised; returns the summary."""
    from s2dlab import summary
    from s2dlab.distributed import is_main_process, process_state
    from s2dlab.stages.lifecycle import offline_defaults, tokenizer_for

    offline_defaults()
    # Under `accelerate launch` every process runs every stage; only the main one writes the run store (the others
    # return {}), and all of them wait at a barrier for its models and evaluations.
    with process_state(cfg).main_process_first():
        run = create_run(out_dir, cfg.to_dict(), cfg.seed)
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
        from s2dlab.lens import compute_lens

        compute_lens(run, pairs=lens_pairs(run), progress=progress)
    return summary.write_summary(cfg, run) if main else {}


def lens_pairs(run: Run) -> list[tuple[str, str]]:
    """The token lens `s2dlab run` computes: every student checkpoint scored by the teacher it learned from (the
    stage-1 teacher when none) and by the raw base teacher, the pairs that show C1 token by token. `s2dlab lens
    RUN` computes every pair."""
    from s2dlab.lens import checkpoints

    ckpts = checkpoints(run)
    teachers = {c["stage"] for c in ckpts if c["role"] == "teacher"}
    pairs = []
    for c in ckpts:
        if c["role"] == "student":
            pairs += [(t, c["stage"]) for t in dict.fromkeys([c["teacher"] or "teacher_grpo", "base_teacher"])
                      if t in teachers]
    return pairs


def run_pipeline(cfg: Config, out_dir: str | Path, ablations: bool = False, seeds: int = 1,
                 progress: bool = True) -> dict:
    """One seed into `out_dir`, or `seeds` seeds into `out_dir/seed_k` plus their aggregate `results.json`."""
    from s2dlab import summary

    out_dir = Path(out_dir)
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give 1 or more")
    if seeds == 1:
        return run_seed(cfg, out_dir, ablations, progress)
    per_seed = []
    for k in range(seeds):
        c = copy.deepcopy(cfg)
        c.seed = cfg.seed + k
        per_seed.append(run_seed(c, out_dir / f"seed_{k}", ablations, progress))
    if not all(per_seed):  # another process of an `accelerate launch`
        return {}
    return summary.write_aggregate(out_dir)
