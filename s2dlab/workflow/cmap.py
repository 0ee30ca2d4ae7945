"""The C1 x C2 map: for every teacher x student pair of a grid, the bridge (forward-KL warmup, then OPD from that
teacher) against cold GRPO on the same student, beside the two conditions the paper says decide it: C1 (how
reward-shaped the teacher is) and C2 (how far the student starts from it).

    s2dlab map --out runs/map                                  # one seed of the default grid (5 x 3 cells)
    s2dlab map --out runs/map --seeds 3                        # seeds 0-2; a rerun adds seeds and skips what is done
    s2dlab map --out runs/m2 --teachers raw,rl@10,sft --students close,far opd.steps=20

The grid. Teachers of graded reward-shaping: `raw` (the base teacher, no stage 1), `rl@N` (the teacher after N steps
of one `teacher_grpo` run on the whole labeled pool: each checkpoint is a stage, `rl_N.teacher_grpo`, continued
from the previous one's saved trainer state, so the checkpoints are those of one run, bit for bit), `sft` (the
teacher trained by SFT on the pool's gold worked solutions, the `bridge_sft_teacher` arm's), or a save_pretrained
folder used as it is. Students at graded distance: `close`, `middle`, `far` (`base.student`: the shipped base
students pretrained on the same corpus in another layout; s2dlab/workflow/stages/base.py), or a save_pretrained folder.

Every piece is an ordinary run folder, so `s2dlab score`, `s2dlab app` and `s2dlab.workflow.summary` open it:

    DIR/map.json                          the cells, each with C1, C2 and the gain and their 95% intervals
    DIR/seed_<k>/teachers/                base_teacher, base_student, rl_<N>.teacher_grpo ..., teacher_sft (once)
    DIR/seed_<k>/cold_<student>/          base_student (that student), cold_grpo (trained once per student)
    DIR/seed_<k>/<teacher>__<student>/    a cell: copies of base_teacher, the teacher, base_student and cold_grpo,
                                          then <arm>.fkl_warmup and <arm>.opd (the bridge), each evaluated

The bridge's stages are named after the Table 2 arm they are (`full.*` for an RL teacher, `raw_teacher.*`,
`sft_teacher.*`; `ext.*` for a folder teacher), so a cell's own summary.json reads as a two-row Table 2 with its
prediction (`bridge_beats_cold`, P1). The teacher's cached rollouts and next-token distributions for the warmup
depend on the teacher alone, so the first cell of a teacher computes them and the other cells of that teacher in
the seed copy them (the same bytes they would compute).

What a cell records, each from the one place that defines it:
- C1: the AUROC difference of the summed implicit reward, this teacher minus the raw teacher, on the cell's fixed
  base-student rollouts, with its paired bootstrap interval over problems (`summary.c1_summary`, i.e.
  `diagnostics.auroc_difference`); 0 for the raw teacher itself (the reference).
- C2: the per-token reverse KL(student || teacher) on the base student's own rollouts, before the bridge, with its
  bootstrap interval (`summary.c2_summary`'s `start`, i.e. `diagnostics.mean_reverse_kl`).
- the gain: bridge minus cold GRPO on the eval problems, paired by problem (and seed), with its interval
  (`diagnostics.paired_difference`), beside both accuracies and both budgets (`summary.budget`).
With several seeds the gain is paired over problems and seeds; C1 and C2 (one bootstrap interval per seed) take
the mean over seeds with a half-width that adds the seeds' own intervals and the spread over seeds in quadrature,
the rule `diagnostics.accuracy_interval` uses for accuracy (`across_seeds`).

Budgets: `MAP_DEFAULTS` cut the tiny preset's steps so that one seed of the default grid stays under 20 minutes on
a 2-core CPU; cold GRPO always takes the bridge's student steps (`cold_grpo.steps = fkl_warmup.steps + opd.steps`,
the same sequences per step) and the whole labeled pool, the labels an RL or SFT teacher used. `s2dlab map
--print-config` prints the resolved config.

Bad input (an unknown teacher or student, a folder that is not a model, tokenizers that differ, a folder made with
another config) stops with one line before anything is written; an interrupted map resumes where it stopped:
finished stages, teachers, cold runs and cells are skipped.
"""

from __future__ import annotations

import copy
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from s2dlab.core.config import (
    Config,
    ConfigError,
    apply_mapping,
    load_config,
    parse_overrides,
    read_yaml,
    set_key,
)
from s2dlab.core.errors import InputError, MissingError

if TYPE_CHECKING:  # the run store imports pandas and pyarrow: the CLI's parser imports this module, so not here
    from s2dlab.core.runs import Run

MAP_FILE = "map.json"
CELL_FILE = "map_cell.json"  # in a cell's run folder: which teacher and student it pairs, and its stage names
FORMAT = 1
RAW = "base_teacher"
COLD = "cold_grpo"

DEFAULT_TEACHERS = ("raw", "rl@10", "rl@30", "rl@120", "sft")  # rl@120 and sft are Table 2's RL and SFT teachers
DEFAULT_STUDENTS = ("close", "middle", "far")
LEVELS = ("close", "middle", "far")

# The map's budgets: the tiny preset's, with the bridge cut from 100 + 100 to 50 + 50 student steps (and cold GRPO
# to the same 100), so that one seed of the default grid (5 teachers x 3 students) stays under 20 minutes on a
# 2-core CPU. The teachers keep Table 2's budgets: rl@120 trains like `full.teacher_grpo` (the `bridge` arm's
# teacher: the same seed, labels and steps) and sft like `teacher_sft`. Applied after the preset and before
# --config and key=value overrides.
MAP_DEFAULTS = {
    "fkl_warmup.steps": 50,
    "opd.steps": 50,
    # cold GRPO's lr re-tuned on validation at the map's 100 steps (the preset's 3e-5 was tuned at 300): 3e-5 / 1e-4
    # / 2e-4 give 49.2 / 52.9 / 43.2 (close student) and 52.2 / 53.6 / 55.2 (far), 2 seeds each; README, "The C1 x
    # C2 map". The bridge's stages keep the lrs tuned at 100 steps each.
    "cold_grpo.learning_rate": 1e-4,
    "probe.every": 0,  # probe snapshots at the start and end of each stage only (the dashboard's token views)
}
# Set by the map itself, from the grid and the bridge: the RL run's length is the last checkpoint of the grid, and
# cold GRPO takes the bridge's student steps.
DERIVED = ("teacher_grpo.steps", "cold_grpo.steps")


# --- the grid ---------------------------------------------------------------------------------------------------------

def _folder_key(path: str) -> str:
    return "ext_" + re.sub(r"[^A-Za-z0-9_-]+", "_", Path(path).resolve().name).strip("_")


def _model_folder(flag: str, item: str) -> str:
    folder = Path(item)
    if not folder.is_dir():
        raise MissingError(f"{flag}: {item}: no such model folder; give a save_pretrained folder (config.json and its "
                           f"tokenizer) or one of {_allowed(flag)}")
    if not (folder / "config.json").is_file():
        raise MissingError(f"{flag}: {item} holds no config.json, so it is not a save_pretrained model folder; give "
                           f"one, or one of {_allowed(flag)}")
    if not ((folder / "tokenizer.json").is_file() or (folder / "tokenizer_config.json").is_file()):
        raise MissingError(f"{flag}: {item} holds no tokenizer; save the tokenizer beside the model "
                           f"(tokenizer.save_pretrained('{item}'))")
    return str(folder.resolve())


def _allowed(flag: str) -> str:
    return ("raw, rl@N (the RL teacher after N GRPO steps), sft" if flag == "--teachers"
            else ", ".join(LEVELS))


def _looks_like_path(item: str) -> bool:
    return "/" in item or os.sep in item or item.startswith(".") or Path(item).exists()


@dataclass(frozen=True)
class Teacher:
    """One teacher of the grid: `name` as given (raw | rl@N | sft | a folder)."""

    name: str
    kind: str  # raw | rl | sft | folder
    steps: int | None = None  # rl: the GRPO step of the checkpoint
    path: str | None = None  # folder: the model folder

    @property
    def key(self) -> str:
        """Folder-safe name: raw, rl_30, sft, ext_<folder name>."""
        return {"raw": "raw", "rl": f"rl_{self.steps}", "sft": "sft"}.get(self.kind) or _folder_key(self.path)

    @property
    def stage(self) -> str:
        """The teacher's stage folder, in the teachers run and in every cell."""
        return {"raw": RAW, "rl": f"rl_{self.steps}.teacher_grpo", "sft": "teacher_sft"}.get(self.kind) or self.key

    @property
    def arm(self) -> str:
        """The prefix of the bridge's stages: the Table 2 arm a bridge from this teacher is."""
        return {"raw": "raw_teacher", "rl": "full", "sft": "sft_teacher"}.get(self.kind, "ext")


@dataclass(frozen=True)
class Student:
    """One student of the grid: `name` as given (close | middle | far | a folder)."""

    name: str
    path: str | None = None

    @property
    def level(self) -> str:
        """`base.student` of the student's runs (a folder student's runs keep the default, close)."""
        return self.name if self.path is None else "close"

    @property
    def key(self) -> str:
        return self.name if self.path is None else _folder_key(self.path)


def parse_teachers(text: str | list[str]) -> list[Teacher]:
    """`--teachers raw,rl@10,sft,path/to/model` checked: an unknown name, a step count below 1, a folder that is not a
    model or a repeat is a one-line InputError/MissingError."""
    out = []
    for item in _items("--teachers", text):
        if item in ("raw", "sft"):
            out.append(Teacher(item, item))
        elif m := re.fullmatch(r"rl@(-?\d+)", item):
            n = int(m[1])
            if n < 1:
                raise InputError(f"--teachers: {item}: the RL teacher needs at least one GRPO step (rl@N, N >= 1)")
            out.append(Teacher(item, "rl", steps=n))
        elif _looks_like_path(item):
            out.append(Teacher(item, "folder", path=_model_folder("--teachers", item)))
        else:
            raise InputError(f"--teachers: unknown teacher {item!r}; teachers are {_allowed('--teachers')}, or a "
                             f"save_pretrained folder")
    _no_repeats("--teachers", [t.key for t in out], [t.name for t in out])
    return out


def parse_students(text: str | list[str]) -> list[Student]:
    """`--students close,far,path/to/model` checked like `parse_teachers`."""
    out = []
    for item in _items("--students", text):
        if item in LEVELS:
            out.append(Student(item))
        elif _looks_like_path(item):
            out.append(Student(item, path=_model_folder("--students", item)))
        else:
            raise InputError(f"--students: unknown student {item!r}; students are {_allowed('--students')} "
                             f"(base.student), or a save_pretrained folder")
    _no_repeats("--students", [s.key for s in out], [s.name for s in out])
    return out


def _items(flag: str, text) -> list[str]:
    items = [x.strip() for x in (text.split(",") if isinstance(text, str) else text) if x and x.strip()]
    if not items:
        example = DEFAULT_TEACHERS if flag == "--teachers" else DEFAULT_STUDENTS
        raise InputError(f"{flag}: no names given; e.g. {flag} {','.join(example)}")
    return items


def _no_repeats(flag: str, keys: list[str], names: list[str]) -> None:
    seen = {}
    for k, n in zip(keys, names):
        if k in seen:
            raise InputError(f"{flag}: {n!r} names the same {flag[2:-1]} as {seen[k]!r}; give each once")
        seen[k] = n


def _tiny_only(cfg: Config) -> None:
    if cfg.preset != "tiny" or not cfg.tiny or cfg.task.name != "arithmetic":
        raise ConfigError("s2dlab map runs on the tiny preset (its students at graded distance are the arithmetic "
                          "corpus in other layouts); drop --preset and the models.* / task.name overrides")


def check_grid(cfg: Config, teachers: list[Teacher], students: list[Student]) -> None:
    """Everything about the grid that can be wrong, before anything is written: the preset, the shipped models of
    every student level, and every cell's tokenizers (TokenizerMismatchError naming the cell)."""
    from s2dlab.core.models import (
        TokenizerMismatchError,
        build_char_tokenizer,
        check_compatible,
        load_tokenizer,
    )
    from s2dlab.workflow.stages.base import SHIPPED, shipped_name

    _tiny_only(cfg)
    if cfg.base.source == "shipped":
        for s in students:
            if s.path is None and not (SHIPPED / shipped_name("student", s.level) / "config.json").is_file():
                raise MissingError(f"--students {s.name}: no shipped base student for base.student={s.level} in this "
                                   f"install ({SHIPPED / shipped_name('student', s.level)}); make it with python "
                                   f"scripts/make_tiny_base.py --students {s.level}, or set base.source=train")
    run_tok = build_char_tokenizer()  # the tiny preset's tokenizer: every shipped and trained model's
    toks = {}
    for who in [*teachers, *students]:
        if who.path is not None and who.path not in toks:
            toks[who.path] = load_tokenizer(who.path)
    for t in teachers:
        for s in students:
            try:
                check_compatible(toks.get(t.path, run_tok), toks.get(s.path, run_tok))
            except TokenizerMismatchError as err:
                raise TokenizerMismatchError(f"map cell {t.name} x {s.name}: {err}") from None


# --- the config -------------------------------------------------------------------------------------------------------

def map_config(teachers: list[Teacher], preset: str = "tiny", config_file: str | Path | None = None,
               overrides: list[str] | dict | None = None) -> Config:
    """The map's config: the preset, then `MAP_DEFAULTS`, then the YAML file, then key=value overrides, then the
    derived keys (`teacher_grpo.steps` = the grid's last RL checkpoint, `cold_grpo.steps` = the bridge's student
    steps). Setting a derived key to another value, or batch sizes that give cold GRPO other sequences per step
    than the bridge, is a one-line ConfigError."""
    cfg = load_config(preset)
    for key, value in MAP_DEFAULTS.items():
        set_key(cfg, key, value)
    given = {}
    if config_file is not None:
        mapping = read_yaml(config_file)
        apply_mapping(cfg, mapping, str(config_file))
        for key, value in (mapping or {}).items():
            for sub in value if isinstance(value, dict) else [None]:
                given[key if sub is None else f"{key}.{sub}"] = 1
    items = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides or []))
    for key, value in items.items():
        set_key(cfg, key, value)
        given[key] = 1
    _tiny_only(cfg)
    rl = [t.steps for t in teachers if t.kind == "rl"]
    derived = {"teacher_grpo.steps": max(rl) if rl else cfg.teacher_grpo.steps,
               "cold_grpo.steps": cfg.fkl_warmup.steps + cfg.opd.steps}
    for key, value in derived.items():
        section, leaf = key.split(".")
        if key in given and getattr(getattr(cfg, section), leaf) != value:
            why = ("the RL run lasts until the grid's last checkpoint; set the checkpoints with --teachers rl@N"
                   if section == "teacher_grpo" else
                   "cold GRPO takes the bridge's student steps (fkl_warmup.steps + opd.steps); change those instead")
            raise ConfigError(f"{key}={getattr(getattr(cfg, section), leaf)} conflicts with the map: {why} "
                              f"(it would be {value})")
        set_key(cfg, key, value)
    cold = cfg.cold_grpo.prompts_per_step * cfg.cold_grpo.num_generations
    for key, value in (("fkl_warmup.batch_size", cfg.fkl_warmup.batch_size), ("opd.batch_size", cfg.opd.batch_size)):
        if value != cold:
            raise ConfigError(f"{key}={value} but cold GRPO trains on cold_grpo.prompts_per_step x num_generations = "
                              f"{cold} sequences per step; the map compares them at equal student steps and "
                              f"sequences, so make them equal")
    return cfg.validate()


def folder_config(cfg: Config, seed: int, student: Student | None = None) -> Config:
    """The config of one run folder of the map: the map's, with the seed and the student level."""
    c = copy.deepcopy(cfg)
    c.seed = seed
    c.base.student = "close" if student is None else student.level
    return c.validate()


# --- copying finished stages between the map's runs -------------------------------------------------------------------

def adopt_stage(src: Run, stage: str, dst: Run) -> None:
    """Copy finished `stage` of `src` into the run `dst` (model, snapshots, stage.json, metrics, eval.json; not its
    training state), built in a hidden folder and renamed into place; stage.json records where it came from. A no-op
    when `dst` already has it finished."""
    from s2dlab.core.runs import copy_stage_folder

    if dst.finished(stage):
        return
    if not src.finished(stage):
        raise MissingError(f"{src.path}: stage {stage!r} is not finished, so the map cannot copy it into {dst.path}")
    target = dst.stage_dir(stage)
    for leftover in dst.path.glob(f".{stage}.*.tmp"):  # a copy a killed map left (the map holds the folder's lock)
        shutil.rmtree(leftover, ignore_errors=True)
    tmp = target.with_name(f".{stage}.{os.getpid()}.tmp")
    copy_stage_folder(src.stage_dir(stage), tmp)  # the copy `s2dlab copy` makes, one stage at a time
    shutil.rmtree(target, ignore_errors=True)  # an unfinished leftover of the same name
    os.replace(tmp, target)
    dst.update_stage(stage, copied_from=str(src.path / stage))


def _share_warmup_cache(donor: Path, stage: str, run: Run) -> None:
    """Copy another cell's cached teacher rollouts and next-token distributions for the same teacher into `stage`
    before it starts (they depend on the teacher, the prompts and the seed only, not on the student)."""
    files = ("teacher_rollouts.jsonl", "teacher_cache.pt")
    if run.stage(stage).status or not all((donor / f).is_file() for f in files):
        return
    target = run.stage_dir(stage)
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        if not (target / name).exists():
            tmp = target / f".{name}.{os.getpid()}.tmp"
            shutil.copy2(donor / name, tmp)
            os.replace(tmp, target / name)


# --- one seed ---------------------------------------------------------------------------------------------------------

class _SeedMap:
    """The run folders of one seed, trained in order: the teachers, cold GRPO per student, then the cells."""

    def __init__(self, cfg: Config, root: Path, teachers: list[Teacher], students: list[Student], progress: bool):
        from s2dlab.core.runs import read_json_file

        self.cfg, self.root, self.teachers, self.students, self.progress = cfg, root, teachers, students, progress
        self.timings = dict(read_json_file(root / "timings.json") or {}) if root.exists() else {}
        self.fresh = not self.timings  # a seed trained in one go records its wall time (seed_total)

    # folders and their configs
    def folders(self) -> list[tuple[Path, Config]]:
        out = [(self.root / "teachers", folder_config(self.cfg, self.cfg.seed))]
        out += [(self.cold_dir(s), folder_config(self.cfg, self.cfg.seed, s)) for s in self.students]
        out += [(self.cell_dir(t, s), folder_config(self.cfg, self.cfg.seed, s))
                for t in self.teachers for s in self.students]
        return out

    def cold_dir(self, s: Student) -> Path:
        return self.root / f"cold_{s.key}"

    def cell_dir(self, t: Teacher, s: Student) -> Path:
        return self.root / f"{t.key}__{s.key}"

    def _open(self, folder: Path, cfg: Config) -> Run:
        from s2dlab.workflow.pipeline import open_for
        from s2dlab.workflow.stages.lifecycle import tokenizer_for

        run = open_for(cfg, folder)
        tokenizer_for(cfg, run)
        return run

    def _timed(self, name: str, fn) -> None:
        from s2dlab.core.runs import atomic_write_json

        t0 = time.time()
        fresh = name not in self.timings
        fn()
        if fresh:
            self.timings[name] = round(time.time() - t0, 1)
            atomic_write_json(self.root / "timings.json", self.timings)

    def _say(self, text: str) -> None:
        if self.progress:
            from tqdm.auto import tqdm

            tqdm.write(text)

    # the pieces
    def teachers_run(self) -> Run:
        from s2dlab.core.runs import run_lock
        from s2dlab.workflow.evaluate import evaluate_stage
        from s2dlab.workflow.stages import base, grpo, lifecycle, sft
        from s2dlab.workflow.summary import stage_line, write_summary

        folder = self.root / "teachers"
        with run_lock(folder):
            cfg = folder_config(self.cfg, self.cfg.seed)
            run = self._open(folder, cfg)
            base.run(cfg, run)
            done = []
            prev = None
            for t in sorted((t for t in self.teachers if t.kind == "rl"), key=lambda t: t.steps):
                if not run.finished(t.stage):
                    c = copy.deepcopy(cfg)
                    c.teacher_grpo.steps = t.steps
                    if prev is not None:
                        self._continue(run, prev, t.stage)
                    self._timed(f"teachers/{t.stage}", lambda c=c, t=t: grpo.run(
                        c, run, out=t.stage, section="teacher_grpo", policy_from="base_teacher", role="teacher",
                        labels="pool", counterpart_from="base_student"))
                    if prev is not None:
                        run.update_stage(t.stage, continued_from=prev)
                prev = t.stage
                done.append(t.stage)
            for t in self.teachers:
                if t.kind == "sft":
                    self._timed("teachers/teacher_sft", lambda: sft.run(
                        cfg, run, out="teacher_sft", section="teacher_sft", init="base_teacher", role="teacher",
                        labels="pool", counterpart_from="base_student"))
                elif t.kind == "folder" and not run.finished(t.stage):
                    lifecycle.link_stage(run, t.stage, t.path, role="teacher")
                if t.kind != "rl":
                    done.append(t.stage)
            for stage in dict.fromkeys(done):
                self._timed(f"teachers/eval/{stage}",
                            lambda stage=stage: evaluate_stage(cfg, run, stage, progress=False))
            write_summary(cfg, run)
            for stage in dict.fromkeys(done):
                self._say(stage_line(run, stage, self.timings.get(f"teachers/{stage}")))
        return run

    @staticmethod
    def _continue(run: Run, prev: str, stage: str) -> None:
        """Start `stage` from the last checkpoint of `prev` (its trainer state: weights, optimizer, learning-rate
        schedule, random state and data position), with prev's metrics and snapshots, so that training on to more
        steps gives the checkpoint of one uninterrupted run. Skipped when `stage` has started already."""
        from s2dlab.workflow.stages.lifecycle import last_checkpoint

        target = run.stage_dir(stage)
        if run.stage(stage).status or last_checkpoint(target):
            return
        ckpt = last_checkpoint(run.stage_dir(prev))
        if ckpt is None:  # prev's training state is gone: train `stage` from the start (the same weights, slower)
            return
        dst = target / "checkpoints" / Path(ckpt).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(ckpt, tmp)
        os.replace(tmp, dst)
        for name in ("metrics.jsonl",):
            if (run.stage_dir(prev) / name).is_file():
                shutil.copy2(run.stage_dir(prev) / name, target / name)
        if (run.stage_dir(prev) / "rollouts").is_dir() and not (target / "rollouts").exists():
            shutil.copytree(run.stage_dir(prev) / "rollouts", target / "rollouts")

    def cold_run(self, s: Student) -> Run:
        from s2dlab.core.runs import run_lock
        from s2dlab.workflow.evaluate import evaluate_stage
        from s2dlab.workflow.pipeline import Step, run_stage
        from s2dlab.workflow.stages import base, lifecycle
        from s2dlab.workflow.summary import stage_line, write_summary

        folder = self.cold_dir(s)
        with run_lock(folder):
            cfg = folder_config(self.cfg, self.cfg.seed, s)
            run = self._open(folder, cfg)
            base.run(cfg, run, roles=("teacher",))
            if s.path is not None and not run.finished("base_student"):
                lifecycle.link_stage(run, "base_student", s.path, role="student")
            base.run(cfg, run, roles=("student",))
            step = Step(COLD, "grpo", dict(section="cold_grpo", policy_from="base_student", role="student",
                                           labels="pool", counterpart_from=RAW))
            self._timed(f"cold_{s.key}/{COLD}", lambda: run_stage(cfg, run, step))
            for stage in ("base_student", COLD):
                self._timed(f"cold_{s.key}/eval/{stage}",
                            lambda stage=stage: evaluate_stage(cfg, run, stage, progress=False))
            write_summary(cfg, run)
            self._say(stage_line(run, COLD, self.timings.get(f"cold_{s.key}/{COLD}")))
        return run

    def cell(self, t: Teacher, s: Student, teachers: Run, cold: Run) -> Run:
        from s2dlab.core.runs import run_lock
        from s2dlab.workflow import measure
        from s2dlab.workflow.pipeline import Step, after_stage, run_stage
        from s2dlab.workflow.summary import stage_line, write_summary

        folder = self.cell_dir(t, s)
        warm, opd = f"{t.arm}.fkl_warmup", f"{t.arm}.opd"
        with run_lock(folder):
            cfg = folder_config(self.cfg, self.cfg.seed, s)
            run = self._open(folder, cfg)
            run.write_json(CELL_FILE, {"teacher": t.name, "student": s.name, "teacher_stage": t.stage,
                                       "bridge": [warm, opd], "cold": COLD, "seed": cfg.seed})
            for stage in dict.fromkeys([RAW, t.stage]):
                adopt_stage(teachers, stage, run)
            for stage in ("base_student", COLD):
                adopt_stage(cold, stage, run)
            if not run.finished(opd):
                # C1 and C2 before the bridge: the cell's fixed base-student rollouts scored by both teachers
                measure.measure_after(cfg, run, t.stage)
                write_summary(cfg, run)
                donors = [self.cell_dir(t, o) / warm for o in self.students if o != s]
                for donor in donors:
                    _share_warmup_cache(donor, warm, run)
            for step in (Step(warm, "fkl_warmup", dict(init="base_student", teacher=t.stage, prompts="pool")),
                         Step(opd, "opd", dict(init=warm, teacher=t.stage, prompts="pool"))):
                name = f"{folder.name}/{step.name}"
                self._timed(name, lambda step=step: run_stage(cfg, run, step))
                self._timed(f"{name}/after", lambda step=step: after_stage(cfg, run, step.name))
            self._say(stage_line(run, opd, self.timings.get(f"{folder.name}/{opd}")))
        return run

    def run(self, on_cell=None) -> None:
        from tqdm.auto import tqdm

        from s2dlab.core.runs import atomic_write_json

        self.root.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        teachers = self.teachers_run()
        colds = {s.key: self.cold_run(s) for s in self.students}
        cells = [(t, s) for t in self.teachers for s in self.students]
        bar = tqdm(cells, desc=f"s2dlab map (seed {self.cfg.seed})", disable=not self.progress, dynamic_ncols=True)
        for t, s in bar:
            bar.set_postfix_str(f"{t.name} x {s.name}")
            self.cell(t, s, teachers, colds[s.key])
            if on_cell is not None:
                on_cell()
        if self.fresh:
            self.timings["seed_total"] = round(time.time() - t0, 1)
            atomic_write_json(self.root / "timings.json", self.timings)


# --- the whole map ----------------------------------------------------------------------------------------------------

def seed_dirs(out: Path) -> list[Path]:
    return sorted((p for p in Path(out).glob("seed_*") if p.is_dir() and p.name[5:].isdigit()),
                  key=lambda p: int(p.name[5:]))


def run_map(cfg: Config, out: str | Path, teachers: list[Teacher], students: list[Student], seeds: int = 1,
            progress: bool = True, command: str | None = None) -> dict:
    """Train and measure every cell of the grid for seeds `cfg.seed .. cfg.seed + seeds - 1` into `out`, and write
    `out/map.json` (after every cell, so a partial map can be read while it runs). Everything that can be wrong
    answers before anything is written; finished pieces are skipped."""
    from s2dlab.core.config import ConfigMismatchError, diff_text
    from s2dlab.core.runs import run_lock
    from s2dlab.workflow.pipeline import open_for, preflight
    from s2dlab.workflow.stages.lifecycle import offline_defaults

    out = Path(out)
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give 1 or more")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the map")
    if (out / "run.json").exists():
        raise InputError(f"--out {out} is a run folder of s2dlab run; give a new folder for the map")
    check_grid(cfg, teachers, students)
    preflight(cfg)
    maps = [_SeedMap(folder_config(cfg, cfg.seed + k), out / f"seed_{k}", teachers, students, progress)
            for k in range(seeds)]
    for m in maps:  # a folder made under other settings stops the map before anything is trained
        for folder, c in m.folders():
            try:
                open_for(c, folder, check_only=True)
            except ConfigMismatchError as err:
                raise ConfigMismatchError(f"{folder} was made with another config ({diff_text(err.diff)}); give the "
                                          f"same settings to resume the map, or use a new --out", err.diff) from None
    offline_defaults()
    grid = {"teachers": [t.name for t in teachers], "students": [s.name for s in students]}
    command = command or "s2dlab " + " ".join(sys.argv[1:])
    with run_lock(out, command=command):
        for m in maps:
            m.run(on_cell=lambda: write_map(out, grid, command=command, seeds=seeds))
        return write_map(out, grid, command=command, seeds=seeds)


# --- reading the map back ---------------------------------------------------------------------------------------------

def cell_values(run: Run | str | Path) -> dict | None:
    """One seed of one cell, read from its run folder: C1, C2 and the gain (each with its 95% interval), the
    accuracies and both arms' budgets. None when the cell's bridge has not been evaluated yet."""
    from s2dlab.core import diagnostics as dg
    from s2dlab.core.runs import Run, open_run
    from s2dlab.workflow.summary import budget, per_problem, read_summary

    run = run if isinstance(run, Run) else open_run(run)
    info = run.read_json(CELL_FILE)
    if not info:
        return None
    warm, final = info["bridge"]
    if not (run.finished(final) and run.eval(final) and run.eval(COLD)):
        return None
    cfg = run.config()
    summary = read_summary(run)
    t_stage = info["teacher_stage"]
    c1_teachers = summary["c1"]["teachers"]
    if t_stage == RAW:  # the reference: the raw teacher against itself
        auc = c1_teachers.get(RAW, {}).get("auroc")
        c1 = {"mean": 0.0 if auc is not None else None, "ci": [0.0, 0.0] if auc is not None else [None, None],
              "teacher_auroc": auc, "raw_auroc": auc, "reference": True}
    else:
        cmp = next((c for c in summary["c1"]["comparisons"] if c["teacher"] == t_stage), None) or {}
        c1 = {"mean": cmp.get("difference"), "ci": cmp.get("ci") or [None, None], "teacher_auroc": cmp.get("a"),
              "raw_auroc": cmp.get("b"), "verdict": cmp.get("verdict")}
    c1["length_auroc"] = c1_teachers.get(t_stage, {}).get("length_auroc")
    start = summary["c2"]["start"].get(t_stage) or {}
    c2 = {k: start.get(k) for k in ("mean", "ci", "n_tokens", "n_rollouts")}
    after = {p["stage"]: p.get("after") for p in summary["c2"]["pairs"]}
    bridge_pp, cold_pp = per_problem(cfg, run, final), per_problem(cfg, run, COLD)
    stages = summary["stages"]

    def acc(stage):
        s = stages.get(stage) or {}
        return {"mean": s.get("accuracy"), "ci": (s.get("interval") or {}).get("ci"), "greedy": s.get("greedy")}

    return {"teacher": info["teacher"], "student": info["student"], "seed": cfg.seed, "run": str(run.path),
            "teacher_stage": t_stage, "bridge_stage": final, "c1": c1, "c2": c2,
            "gain": dg.paired_difference([bridge_pp], [cold_pp]),
            "c2_after_warmup": after.get(warm), "c2_after_opd": after.get(final),
            "accuracy": {"bridge": acc(final), "warmup": acc(warm), "cold_grpo": acc(COLD),
                         "base_student": acc("base_student"), "teacher": acc(t_stage)},
            "budget": {"bridge": budget(run, final), "cold_grpo": budget(run, COLD)},
            "per_problem": {"bridge": bridge_pp, "cold_grpo": cold_pp}}


def across_seeds(per_seed: list[dict]) -> dict:
    """Mean over seeds of a per-seed estimate `{"mean", "ci"}` (C1, C2: one bootstrap interval per seed), with a 95%
    interval by `diagnostics.accuracy_interval`'s rule: the half-width of the mean of the seeds' own intervals (the
    seeds' half-widths in quadrature over S) and the t-scaled standard error over seeds, added in quadrature. One seed
    keeps its own interval."""
    from s2dlab.core import diagnostics as dg

    vals = [p for p in per_seed if p and p.get("mean") is not None]
    if not vals:
        return {"mean": None, "ci": [None, None], "n_seeds": 0, "per_seed": []}
    means = [float(p["mean"]) for p in vals]
    S = len(vals)
    if S == 1:
        return {"mean": means[0], "ci": list(vals[0]["ci"]), "n_seeds": 1, "per_seed": means}
    mean = sum(means) / S
    halves = [(p["ci"][1] - p["ci"][0]) / 2 for p in vals if p.get("ci") and p["ci"][0] is not None]
    half_within = math.sqrt(sum(h * h for h in halves)) / S if halves else 0.0
    sd = math.sqrt(sum((m - mean) ** 2 for m in means) / (S - 1))
    half = math.sqrt(half_within ** 2 + (dg.t975(S - 1) * sd / math.sqrt(S)) ** 2)
    return {"mean": mean, "ci": [mean - half, mean + half], "n_seeds": S, "per_seed": means,
            "sd_seeds": sd, "half_within": half_within}


def aggregate_cell(records: list[dict]) -> dict:
    """One cell over its seeds: the gain and the accuracies paired over problems and seeds
    (`diagnostics.paired_difference` / `accuracy_interval`), C1 and C2 by `across_seeds`."""
    from s2dlab.core import diagnostics as dg

    first = records[0]
    bridge = [r["per_problem"]["bridge"] for r in records]
    cold = [r["per_problem"]["cold_grpo"] for r in records]
    c1 = across_seeds([r["c1"] for r in records])
    c1.update({k: _mean([r["c1"].get(k) for r in records]) for k in ("teacher_auroc", "raw_auroc", "length_auroc")})
    c1["reference"] = bool(first["c1"].get("reference"))
    c2 = across_seeds([r["c2"] for r in records])
    c2["n_tokens"] = sum(r["c2"].get("n_tokens") or 0 for r in records)

    def per_seed_acc(key):
        return [r["accuracy"][key]["mean"] for r in records]

    return {
        "teacher": first["teacher"], "student": first["student"], "seeds": [r["seed"] for r in records],
        "c1": c1, "c2": c2,
        "gain": _interval(dg.paired_difference(bridge, cold)),
        "bridge": _interval(dg.accuracy_interval(bridge)),
        "cold_grpo": _interval(dg.accuracy_interval(cold)),
        "accuracy_per_seed": {k: per_seed_acc(k) for k in ("bridge", "warmup", "cold_grpo", "base_student",
                                                           "teacher")},
        "teacher_accuracy": _mean(per_seed_acc("teacher")),
        "base_student_accuracy": _mean(per_seed_acc("base_student")),
        "warmup_accuracy": _mean(per_seed_acc("warmup")),
        "c2_after_opd": across_seeds([r["c2_after_opd"] for r in records]),
        "budget": {k: {f: first["budget"][k][f] for f in ("labels", "labels_kind", "student_steps",
                                                          "student_sequences", "teacher_steps",
                                                          "teacher_scored_sequences")}
                   for k in ("bridge", "cold_grpo")},
        "runs": [r["run"] for r in records],
    }


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _interval(d: dict) -> dict:
    keep = ("mean", "ci", "verdict", "n_problems", "n_seeds", "se_problems", "se_seeds", "per_seed")
    return {k: d[k] for k in keep if k in d}


def write_map(out: str | Path, grid: dict | None = None, command: str | None = None,
              seeds: int | None = None) -> dict:
    """Read every cell of every seed folder under `out` and write `out/map.json`; returns it. `grid` (teacher and
    student names) and `command` default to those of the map.json already there; `seeds` to every seed folder."""
    from s2dlab.core.runs import (
        RunStoreError,
        atomic_write_json,
        open_run,
        read_json_file,
    )

    out = Path(out)
    old = read_json_file(out / MAP_FILE) or {}
    grid = grid or old.get("grid")
    if not grid:
        raise MissingError(f"{out}: no {MAP_FILE} to take the grid from; run s2dlab map --out {out} first")
    dirs = seed_dirs(out)[: seeds] if seeds else seed_dirs(out)
    by_cell: dict[tuple, list] = {}
    pending = []
    timings = {}
    for d in dirs:
        timings[d.name] = (read_json_file(d / "timings.json") or {}).get("seed_total")
        for folder in sorted(d.iterdir()):
            if not (folder / CELL_FILE).is_file():
                continue
            try:
                rec = cell_values(folder)
            except RunStoreError:
                rec = None
            info = read_json_file(folder / CELL_FILE)
            if rec is None:
                pending.append(f"{d.name}/{folder.name}")
            elif info["teacher"] in grid["teachers"] and info["student"] in grid["students"]:
                rec["run"] = str(Path(rec["run"]).relative_to(out)) if Path(rec["run"]).is_relative_to(out) \
                    else rec["run"]
                by_cell.setdefault((info["teacher"], info["student"]), []).append(rec)
    cells = []
    for t in grid["teachers"]:
        for s in grid["students"]:
            if (t, s) in by_cell:
                cells.append(aggregate_cell(by_cell[(t, s)]))
    n_cells = len(grid["teachers"]) * len(grid["students"])
    result = {"format": FORMAT, "command": command or old.get("command"), "grid": grid,
              "seeds": [int(d.name[5:]) for d in dirs], "complete": len(cells) == n_cells and not pending
              and all(len(c["seeds"]) == len(dirs) for c in cells),
              "pending": pending, "map_defaults": MAP_DEFAULTS, "wall_seconds_per_seed": timings,
              "cells": cells}
    if dirs and (dirs[0] / "teachers" / "run.json").exists():
        from s2dlab.core.config import flatten

        result["config"] = flatten(open_run(dirs[0] / "teachers").config())
    atomic_write_json(out / MAP_FILE, result)
    return result


def read_map(path: str | Path) -> dict:
    """A map.json (or the map.json in a folder); MissingError when there is none."""
    from s2dlab.core.runs import read_json_file

    path = Path(path)
    got = read_json_file(path / MAP_FILE if path.is_dir() else path)
    if got is None:
        raise MissingError(f"{path}: no {MAP_FILE}; make one with s2dlab map --out {path}")
    return got


def map_table(m: dict) -> str:
    """The cells as plain text: C1, C2 and the gain with their 95% intervals."""
    def fmt(v, scale=1.0, signed=True, digits=3):
        if not v or v.get("mean") is None:
            return "-"
        ci = v.get("ci") or [None, None]
        f = f"{{:{'+' if signed else ''}.{digits}f}}"
        body = f.format(scale * v["mean"])
        return body + (f" [{f.format(scale * ci[0])}, {f.format(scale * ci[1])}]" if ci[0] is not None else "")

    seeds = m.get("seeds") or []
    lines = [f"{'teacher':<10} {'student':<8} {'C1 (AUROC diff vs raw)':>26} {'C2 (nats/token)':>24} "
             f"{'gain (points, bridge - cold GRPO)':>36}"]
    for c in m.get("cells", []):
        lines.append(f"{c['teacher']:<10} {c['student']:<8} {fmt(c['c1']):>26} {fmt(c['c2'], signed=False):>24} "
                     f"{fmt(c['gain'], 100, digits=1):>36}")
    lines.append(f"({len(seeds)} seed{'s' if len(seeds) != 1 else ''}; 95% intervals"
                 f"{'' if m.get('complete') else '; incomplete: ' + str(len(m.get('pending') or [])) + ' pending'})")
    return "\n".join(lines)
