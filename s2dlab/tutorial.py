"""What the tutorial notebooks share: one set-up call, and copying finished stages into a new run folder.

Every notebook (`notebooks/NN_name.py`) starts the same way: offline settings for the tiny preset, PyTorch's thread
count, the config, the one run folder that notebooks 00-05 share, seeds, and then the stages it needs, skipping
those already finished. `setup` does all of it but the last in one call and returns a `Tutorial` holding what
the notebooks use; `Tutorial.build(stage)` makes the calls of `s2dlab run` up to that stage.

    from s2dlab import tutorial

    lab = tutorial.setup("tiny")          # $S2DLAB_RUN, else runs/tutorial_tiny at the repository root
    lab.build("teacher_grpo")             # stages 0-1, each evaluated; instant when they are already done

`copy_stages` starts a new run folder from finished stages of another one, so that an exercise which changes one
stage does not retrain the ones before it, and needs no shell glob (`cp -r a/{b,c}` fails in PowerShell):

    tutorial.copy_stages("runs/tutorial_tiny", "runs/ex_lr",
                         ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd"])

This module imports neither gradio nor IPython, and nothing heavy when it is imported: `setup` sets
HF_HUB_OFFLINE before it imports transformers, because huggingface_hub reads that variable once, at its import.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from s2dlab.errors import InputError, MissingError

if TYPE_CHECKING:
    from s2dlab.config import Config
    from s2dlab.pipeline import Arm, Step
    from s2dlab.runs import Run

__all__ = ["Tutorial", "setup", "default_run_dir", "copy_stages", "COPIED_FOLDERS"]

RUN_ENV = "S2DLAB_RUN"  # the run folder of the notebooks, when set (CI points it at a temporary folder)
# The sub-folders of a stage that `copy_stages` takes along with the stage's own files: the hand-off model and the
# scored rollout snapshots. `checkpoints/` and `best/` are the training state of a stage that is already done.
COPIED_FOLDERS = ("model", "rollouts")


@dataclass
class Tutorial:
    """What `setup` hands the notebooks: the resolved config, the run folder and the plan of `s2dlab run`."""

    preset: str
    cfg: Config
    run: Run
    steps: list[Step]  # the workflow's stages in order (pipeline.plan, without the ablation arms)
    arms: dict[str, Arm]  # arm name -> the arm (its final stage, block and the paper's row)
    k: int  # cfg.eval.n_samples: the k of avg@k and pass@k
    eval_set: str  # cfg.eval.sets[0], the eval set the notebooks show

    def finished(self) -> list[str]:
        """The stages of the run folder that are done, in workflow order."""
        from s2dlab.stages.lifecycle import finished

        return [s for s in self.run.stages() if finished(self.run, s)]

    def build(self, upto: str) -> list[str]:
        """Run and evaluate every stage of the plan up to and including `upto`; returns `finished()`.

        The calls of `s2dlab run`: `pipeline.run_stage`, then `pipeline.after_stage` (evaluation, the fixed-rollout
        C1/C2 measurements, the summary). A finished stage is a no-op and an existing eval.json is reused, so this
        is instant when an earlier notebook (or `s2dlab run`) built them.
        """
        from s2dlab import pipeline

        names = [s.name for s in self.steps]
        if upto not in names:
            raise InputError(f"stage {upto!r} is not in the workflow's plan; choose one of {', '.join(names)}")
        for step in self.steps[: names.index(upto) + 1]:
            pipeline.run_stage(self.cfg, self.run, step)
            pipeline.after_stage(self.cfg, self.run, step.name)
        return self.finished()


def default_run_dir(preset: str) -> Path:
    """The notebooks' run folder: `$S2DLAB_RUN` when set, else `runs/tutorial_<preset>` at the repository root.

    The repository root is the checkout s2dlab is imported from (it holds pyproject.toml), whichever folder the
    notebook runs in; an installed wheel has no checkout, and then the folder is under the current one.
    """
    env = os.environ.get(RUN_ENV)
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        root = Path.cwd()
    return root / "runs" / f"tutorial_{preset}"


def setup(preset: str = "tiny", run_dir: str | os.PathLike | None = None, *,
          overrides: Sequence[str] | Mapping[str, object] = (), threads: int | None = None,
          verbose: bool = True) -> Tutorial:
    """The first cells of every notebook, in one call: environment, threads, config, run folder, seeds.

    In order:
    1. On the tiny preset, `HF_HUB_OFFLINE=1` unless the environment says otherwise (the tiny preset never needs
       the Hugging Face Hub), before transformers is imported: call `setup` before importing anything of s2dlab
       but this module. Then the telemetry-off defaults of `s2dlab run` (`s2dlab.env.offline_defaults`), no
       progress bar per model load, and no "IProgress not found" warning from tqdm (text bars are fine).
    2. `threads`, when given, caps PyTorch's CPU threads (`torch.set_num_threads`); see below.
    3. The config: `preset` plus `overrides` (`["opd.loss=sampled_token"]`, as on the `s2dlab run` command line).
    4. The run folder `run_dir` (None: `default_run_dir(preset)`), created with its run.json, or reused as it is
       when it exists; `create_run` warns when the stored config or seed differ from this one.
    5. Seeds: Python's, NumPy's and torch's global generators from `cfg.seed` (`transformers.set_seed`), so the
       notebook's own sampling repeats; the stages seed themselves.
    With `verbose`, prints the run folder and the stages already finished.

    Threads on a slow or busy laptop. PyTorch runs each operation on `torch.get_num_threads()` threads, by
    default about one per core. The tiny models are small enough that a thread that has to wait for a busy core
    costs more than it adds: on the project's 2-core machine, other training jobs running beside the notebooks
    made them up to ten times slower (notebooks/README.md, "Timings"). So:
    - count physical cores, not logical ones: a hyperthread adds little to matrix arithmetic;
    - leave one core free when a browser, a video call or a second notebook shares the laptop: `threads=1` on a
      dual-core laptop, `threads=3` on a quad-core one;
    - two kernels training at once should split the cores between them, not each take all of them.
    `threads` applies in the running kernel (call `setup` before any model is trained); `OMP_NUM_THREADS`
    does the same for a whole process, but only when set before Python starts.
    """
    if isinstance(overrides, str):
        raise InputError(f"overrides={overrides!r} is one string; give a list of key=value strings, "
                         f"e.g. [{overrides!r}]")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InputError(f"threads={threads!r}: give a whole number of 1 or more, or None for PyTorch's default")
    if preset == "tiny":
        _offline_environment()
    # tqdm's notebook bars need ipywidgets; without them it warns when tqdm.auto is imported (by the imports below)
    # and draws text bars, which are fine here.
    warnings.filterwarnings("ignore", message="IProgress not found")

    import torch
    import transformers

    from s2dlab import pipeline
    from s2dlab.config import load_config
    from s2dlab.runs import create_run
    from s2dlab.stages import lifecycle

    if threads is not None:
        torch.set_num_threads(threads)
    cfg = load_config(preset, overrides=dict(overrides) if isinstance(overrides, Mapping) else list(overrides))
    lifecycle.offline_defaults()
    transformers.logging.disable_progress_bar()  # no bar for every model load
    run = create_run(Path(run_dir) if run_dir is not None else default_run_dir(preset), cfg.to_dict(), cfg.seed)
    transformers.set_seed(cfg.seed)
    steps, arms = pipeline.plan(cfg)
    lab = Tutorial(preset=preset, cfg=cfg, run=run, steps=steps, arms=arms, k=cfg.eval.n_samples,
                   eval_set=cfg.eval.sets[0])
    if verbose:
        print(f"preset {preset}, run folder {run.path.resolve()}")
        print("finished stages:", lab.finished() or "none yet")
    return lab


def _offline_environment() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hub = sys.modules.get("huggingface_hub.constants")
    wanted = os.environ["HF_HUB_OFFLINE"].upper() in ("1", "ON", "YES", "TRUE")  # huggingface_hub's reading
    if hub is not None and wanted and not hub.HF_HUB_OFFLINE:
        warnings.warn("huggingface_hub was imported before tutorial.setup(), so HF_HUB_OFFLINE=1 holds only from "
                      "the next kernel start; call setup before importing transformers or s2dlab's modules",
                      stacklevel=3)


def copy_stages(src_run: str | os.PathLike | Run, dst_run: str | os.PathLike,
                stages: Iterable[str] | None = None, *, config: dict | None = None, seed: int | None = None) -> Run:
    """Copy finished stages of the run folder `src_run` into a new run folder `dst_run`; returns the new run.

    For each stage (default: every finished stage of `src_run`) the stage folder's own files (stage.json,
    metrics.jsonl, eval.json, and caches such as fkl_warmup's teacher_rollouts.jsonl) and its `model/` and
    `rollouts/` folders are copied; `checkpoints/` and `best/` (training state) are not. The run's `tokenizer/`
    folder comes along when it has one. `dst_run` gets a new run.json: the config and seed of `src_run` unless
    `config` / `seed` say otherwise, this machine's package versions, and `copied_from` naming the source run and
    the stages. Whole-run outputs (results.json, timings.json) are not copied: they describe the source run.

    Nothing is written into `src_run`. `dst_run` must not exist yet (or be an empty folder): the copy is made in a
    hidden folder beside it and renamed into place at the end, so an interrupted copy leaves no half a run.
    MissingError for a stage that is not finished in `src_run`; InputError when `dst_run` already holds files;
    RunStoreError when `src_run` is not a run folder.
    """
    from s2dlab.runs import Run, atomic_write_json, create_run, open_run, validate_stage
    from s2dlab.stages.lifecycle import finished as stage_done

    src = src_run if isinstance(src_run, Run) else open_run(src_run)
    dst = Path(dst_run)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise InputError(f"{dst}: already exists and is not empty; copy_stages writes a new run folder, so name "
                         "a new one (or delete this one first)")
    finished = [s for s in src.stages() if stage_done(src, s)]
    names = list(dict.fromkeys(stages)) if stages is not None else finished
    if not names:
        raise InputError(f"{src.path}: no stages to copy (finished stages: {', '.join(finished) or 'none'})")
    for stage in names:
        try:
            validate_stage(stage)
        except ValueError as e:
            raise InputError(str(e)) from None
        if not stage_done(src, stage):
            raise MissingError(f"{src.path}: stage {stage!r} is not finished, so it cannot be copied; finished "
                               f"stages: {', '.join(finished) or 'none'}")

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    try:
        for stage in names:
            _copy_stage_folder(src.stage_dir(stage), tmp / stage)
        if (src.path / "tokenizer").is_dir():
            shutil.copytree(src.path / "tokenizer", tmp / "tokenizer")
        made = create_run(tmp, src.info.get("config", {}) if config is None else config,
                          src.info.get("seed") if seed is None else seed)
        atomic_write_json(tmp / "run.json", {
            **made.info,
            "name": dst.resolve().name,
            "copied_from": {"run": str(src.path.resolve()), "stages": names,
                            "git_revision": src.info.get("git_revision")},
        })
        if dst.exists():
            dst.rmdir()  # empty (checked above); os.replace cannot move a folder onto one on Windows
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_run(dst)


def _copy_stage_folder(src: Path, dst: Path) -> None:
    dst.mkdir()
    for entry in sorted(src.iterdir()):
        if entry.name.startswith("."):  # a writer's hidden temporary file
            continue
        if entry.is_file():
            shutil.copy2(entry, dst / entry.name)
        elif entry.is_dir() and entry.name in COPIED_FOLDERS:
            shutil.copytree(entry, dst / entry.name)


def recording_reward(reward_fn):
    """`reward_fn` (a TRL reward function of `completions, answer`) that also keeps what TRL passed it: each call
    appends `{"completion_ids", "prompt_id", "rewards"}` to the returned function's `.calls`, so a notebook can
    redo one GRPO step by hand from the very completions TRL sampled and graded."""
    calls: list[dict] = []

    def reward(completions, answer, completion_ids, prompt_id, **kwargs):
        rewards = reward_fn(completions, answer, **kwargs)
        calls.append({"completion_ids": [list(c) for c in completion_ids], "prompt_id": list(prompt_id),
                      "rewards": list(rewards)})
        return rewards

    reward.__name__ = getattr(reward_fn, "__name__", "reward")  # TRL logs a reward under its function's name
    reward.calls = calls
    return reward
