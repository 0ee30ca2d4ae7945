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
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING

from s2dlab.core.errors import InputError, MissingError
from s2dlab.core.runs import COPIED_FOLDERS, copy_stage_folder

if TYPE_CHECKING:
    from s2dlab.core.config import Config
    from s2dlab.core.runs import Run
    from s2dlab.workflow.pipeline import Arm, Step

__all__ = ["Tutorial", "setup", "default_run_dir", "copy_stages", "COPIED_FOLDERS", "recording_reward", "trl_reward",
           "rollout_batch", "slip_steps", "slip_table", "fit_gaussian", "arithmetic_only", "REAL_DATA_SKIP",
           "cache_outcomes", "vocab_slice"]

RUN_ENV = "S2DLAB_RUN"  # the run folder of the notebooks, when set (CI points it at a temporary folder)
# key=value overrides applied after a notebook's own, when set (CI's rehearsal of the qwen3_paper preset swaps the hub
# models and datasets for local ones this way: tests/test_rehearsal.py); shell quoting, see `env_overrides`
OVERRIDES_ENV = "S2DLAB_OVERRIDES"


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
        from s2dlab.workflow.stages.lifecycle import finished

        return [s for s in self.run.stages() if finished(self.run, s)]

    def build(self, upto: str) -> list[str]:
        """Run and evaluate every stage of the plan up to and including `upto`; returns `finished()`.

        The calls of `s2dlab run`: `pipeline.run_stage`, then `pipeline.after_stage` (evaluation, the fixed-rollout
        C1/C2 measurements, the summary). A finished stage is a no-op and an existing eval.json is reused, so this
        is instant when an earlier notebook (or `s2dlab run`) built them.
        """

        names = [s.name for s in self.steps]
        if upto not in names:
            raise InputError(f"stage {upto!r} is not in the workflow's plan; choose one of {', '.join(names)}")
        self._train(self.steps[: names.index(upto) + 1])
        return self.finished()

    def _train(self, steps) -> None:
        """The stages in order, holding the run folder's lock: a terminal `s2dlab run` on the same folder (or a
        second notebook) stops with RunBusyError naming the process, instead of training the same stage at once."""
        from s2dlab.core.runs import run_lock
        from s2dlab.workflow import pipeline

        with run_lock(self.run.path, command=f"a notebook ({sys.argv[0] or 'python'})"):
            for step in steps:
                pipeline.run_stage(self.cfg, self.run, step)
                pipeline.after_stage(self.cfg, self.run, step.name)

    def build_arm(self, arm: str) -> list[str]:
        """Run and evaluate the stages one arm of `s2dlab run --ablations` needs, and no others; returns `finished()`.

        The arm's final stage and every stage it starts from or distils from (`Step.needs`),
        in the order of the ablation plan, with the calls of `s2dlab run` (a finished stage is a no-op). So
        `lab.build_arm("bridge_raw_teacher")` trains the raw-teacher bridge (its warmup and OPD, about a minute on
        the tiny preset) beside the workflow, without the other ablation rows.
        """
        from s2dlab.workflow import pipeline

        steps, arms = pipeline.plan(self.cfg, ablations=True)
        if arm not in arms:
            raise InputError(f"arm {arm!r} is not in the ablation plan; choose one of {', '.join(arms)}")
        by_name = {s.name: s for s in steps}
        needed, todo = set(), [arms[arm].final]
        while todo:
            name = todo.pop()
            if name in needed or name not in by_name:
                continue
            needed.add(name)
            todo += by_name[name].needs
        self._train([step for step in steps if step.name in needed])
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
          verbose: bool = True, retrain: bool = False) -> Tutorial:
    """The first cells of every notebook, in one call: environment, threads, config, run folder, seeds.

    In order:
    1. On the tiny preset, `HF_HUB_OFFLINE=1` unless the environment says otherwise (the tiny preset never needs
       the Hugging Face Hub), before transformers is imported: call `setup` before importing anything of s2dlab
       but this module. Then the telemetry-off defaults of `s2dlab run` (`s2dlab.core.env.offline_defaults`), no
       progress bar per model load, and no "IProgress not found" warning from tqdm (text bars are fine).
    2. `threads`, when given, caps PyTorch's CPU threads (`torch.set_num_threads`); see below.
    3. The config: `preset` plus `overrides` (`["opd.loss=sampled_token"]`, as on the `s2dlab run` command line).
    4. The run folder `run_dir` (None: `default_run_dir(preset)`), created with its run.json, or reused as it is
       when it exists; a folder made under another config or seed stops with the keys that differ
       (`pipeline.open_for`), unless `retrain=True`, which retrains the stages those keys touch.
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

    from s2dlab.core.config import load_config
    from s2dlab.workflow import pipeline
    from s2dlab.workflow.stages import lifecycle

    if threads is not None:
        torch.set_num_threads(threads)
    overrides = dict(overrides) if isinstance(overrides, Mapping) else list(overrides)
    if env_overrides():
        from s2dlab.core.config import parse_overrides

        mine = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
        overrides = {**mine, **parse_overrides(env_overrides())}
    cfg = load_config(preset, overrides=overrides)
    lifecycle.offline_defaults()
    transformers.logging.disable_progress_bar()  # no bar for every model load
    # one config per run folder: a folder made under other settings stops with the keys that differ
    run = pipeline.open_for(cfg, Path(run_dir) if run_dir is not None else default_run_dir(preset),
                            retrain=retrain, new_place="a new RUN_DIR",
                            retrain_flag="retrain=True to tutorial.setup (it retrains what they touch)")
    transformers.set_seed(cfg.seed)
    steps, arms = pipeline.plan(cfg)
    lab = Tutorial(preset=preset, cfg=cfg, run=run, steps=steps, arms=arms, k=cfg.eval.n_samples,
                   eval_set=cfg.eval.sets[0])
    if verbose:
        print(f"preset {preset}, run folder {run.path.resolve()}")
        if env_overrides():
            print(f"overrides from ${OVERRIDES_ENV}: {' '.join(env_overrides())}")
        print("finished stages:", lab.finished() or "none yet")
    return lab


def env_overrides() -> list[str]:
    """The `key=value` items of `$S2DLAB_OVERRIDES` (split as a shell would, so a value with spaces is quoted:
    `S2DLAB_OVERRIDES='models.device=cpu "eval.sources={math500: m.jsonl}"'`); [] when unset."""
    import shlex

    return shlex.split(os.environ.get(OVERRIDES_ENV, ""))


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
    from s2dlab.core.runs import (
        UMASK,
        Run,
        atomic_write_json,
        create_run,
        open_run,
        validate_stage,
    )
    from s2dlab.workflow.stages.lifecycle import finished as stage_done

    src = src_run if isinstance(src_run, Run) else open_run(src_run)
    dst = Path(dst_run)
    if dst.exists() and not dst.is_dir():
        raise InputError(f"{dst}: is a file; a copy of finished stages goes into a new run folder, so name a new "
                         "folder")
    if dst.exists() and any(dst.iterdir()):
        raise InputError(f"{dst}: already exists and is not empty; a copy of finished stages goes into a new run "
                         "folder, so name a new one (or delete this one first)")
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
    _remove_stale_copies(dst)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.{os.getpid()}.", suffix=".tmp", dir=dst.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; the run folder gets the mode mkdir would give it
    try:
        for stage in names:
            copy_stage_folder(src.stage_dir(stage), tmp / stage)
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


def _remove_stale_copies(dst: Path) -> None:
    """Remove the hidden `.<dst>.<pid>.<random>.tmp` folders that a killed copy into `dst` left (its process is
    gone); a copy still running in another process keeps its folder."""
    for folder in dst.parent.glob(f".{glob_escape(dst.name)}.*.tmp"):
        parts = folder.name[len(dst.name) + 2:].split(".")
        if not folder.is_dir() or not parts[0].isdigit():
            continue
        try:
            os.kill(int(parts[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # alive, or not ours to ask about


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


def trl_reward(grade) -> callable:
    """A TRL reward function (`completions, answer, **kw -> list[float]`) from `grade(completion, answer)`.

    Notebook 01 has the learner write the task's reward as a plain function of one completion's text; this turns it
    into what `GRPOTrainer` calls (TRL passes chat completions as lists of messages; the text is the last one's
    content). A `grade` that returns True/False gives 1.0/0.0.
    """

    def reward(completions, answer, **kwargs):
        answers = [answer] * len(completions) if isinstance(answer, (str, int)) else list(answer)
        out = []
        for completion, gold in zip(completions, answers):
            if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
                completion = completion[-1].get("content", "")
            out.append(float(grade(completion, str(gold))))
        return out

    reward.__name__ = getattr(grade, "__name__", "reward")
    return reward


def rollout_batch(rollouts, pad_token_id: int):
    """Sampled rollouts as one batch, laid out as TRL lays it out: `(ids_BL, attention_BL, P, mask_BC)`.

    Prompts padded on the left to the longest prompt `P`, completions on the right; `mask_BC` is 1 on each
    completion's real tokens (its end token included). The logits at position `P - 1 + t` predict completion
    token `t`, so `model(ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1]` lines up with the completions.
    """
    import torch

    B = len(rollouts)
    P = max(len(r.prompt_ids) for r in rollouts)
    C = max(max(len(r.completion_ids) for r in rollouts), 1)
    ids_BL = torch.full((B, P + C), pad_token_id, dtype=torch.long)
    attention_BL = torch.zeros(B, P + C, dtype=torch.long)
    mask_BC = torch.zeros(B, C)
    for b, r in enumerate(rollouts):
        p, c = r.prompt_ids, r.completion_ids
        ids_BL[b, P - len(p):P] = torch.tensor(p)
        attention_BL[b, P - len(p):P] = 1
        if c:
            ids_BL[b, P:P + len(c)] = torch.tensor(c)
            attention_BL[b, P:P + len(c)] = 1
            mask_BC[b, :len(c)] = 1
    return ids_BL, attention_BL, P, mask_BC


def slip_steps(cfg: Config, tokenizer, records) -> dict:
    """Every slip-possible step of the gold solutions of `records`, as next-character questions.

    At each step `v op b=` of a gold worked solution where a slip is possible (`tasks.arithmetic.slip_of`) and the
    right result and the slip's start with different characters, the prompt and the solution up to the `=` as
    token ids, the kind of slip, and the token ids of the right result's and of the slip's first character.
    Returns `{"prefixes", "kinds", "right_ids", "slip_ids"}` (lists of equal length).
    """
    import re

    from s2dlab.core import data
    from s2dlab.core.generation import format_prompt
    from s2dlab.core.tasks.arithmetic import slip_of

    step_re = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)")
    out = {"prefixes": [], "kinds": [], "right_ids": [], "slip_ids": []}
    for rec in records:
        head, done = format_prompt(tokenizer, rec["prompt"], cfg.task.prompt_suffix, data.chat_kwargs(cfg)), ""
        for line in rec["solution"].splitlines():
            m = step_re.fullmatch(line)
            slip = slip_of(int(m[1]), m[2], int(m[3])) if m else None
            if slip is not None and m[4][0] != str(slip[1])[0]:
                out["prefixes"].append(tokenizer(head + done + line[: line.index("=") + 1],
                                                 add_special_tokens=False)["input_ids"])
                out["kinds"].append(slip[0])
                out["right_ids"].append(tokenizer.convert_tokens_to_ids(m[4][0]))
                out["slip_ids"].append(tokenizer.convert_tokens_to_ids(str(slip[1])[0]))
            done += line + "\n"
    return out


def slip_table(cfg: Config, run: Run, stages: Sequence[str], records=None):
    """How much probability each stage's model puts on the slip at the slip-possible steps of gold solutions.

    For every step of `slip_steps` (default records: the first eval set's problems), each model of `stages` reads
    the prefix and gives its next-character distribution; the table has one row per stage: the mean probability of
    the right result's first character, of the slip's, the slip's share `p(slip) / (p(right) + p(slip))` (about
    `task.slip_rate` for a model that copied the corpus), and the mean p(slip) per kind of slip. A pandas
    DataFrame; `.attrs["steps"]` is the number of steps.
    """
    import pandas as pd
    import torch

    from s2dlab.core import data
    from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

    tok = tokenizer_for(cfg, run)
    if records is None:
        records = data.eval_sets(cfg)[cfg.eval.sets[0]]
    steps = slip_steps(cfg, tok, records)
    prefixes, kinds = steps["prefixes"], steps["kinds"]
    if not prefixes:
        raise InputError("no slip-possible steps in these records' gold solutions")
    L = max(map(len, prefixes))
    ids_NL = torch.tensor([p + [tok.pad_token_id] * (L - len(p)) for p in prefixes])
    attn_NL = (torch.arange(L)[None, :] < torch.tensor([len(p) for p in prefixes])[:, None]).long()
    last_N, rows_N = torch.tensor([len(p) - 1 for p in prefixes]), torch.arange(len(prefixes))
    table = {}
    for stage in stages:
        model = load_stage_model(cfg, run, stage, tok).eval()
        with torch.no_grad():
            logits_NLV = model(input_ids=ids_NL, attention_mask=attn_NL).logits[..., :len(tok)]
        p_NV = torch.softmax(logits_NLV[rows_N, last_N].float(), dim=-1)
        p_right, p_slip = p_NV[rows_N, steps["right_ids"]], p_NV[rows_N, steps["slip_ids"]]
        table[stage] = {"p(right)": p_right.mean().item(), "p(slip)": p_slip.mean().item(),
                        "p(slip) / (p(right) + p(slip))": (p_slip.sum() / (p_right + p_slip).sum()).item(),
                        **{f"p(slip) at {k} steps": p_slip[torch.tensor([x == k for x in kinds])].mean().item()
                           for k in sorted(set(kinds))}}
    frame = pd.DataFrame(table).T
    frame.attrs["steps"] = len(prefixes)
    return frame


# Why the cells built on the arithmetic task have nothing to show on real data (DAPO, MATH-500, AIME).
REAL_DATA_SKIP = ("real data has no pretraining corpus with planted slips, and its worked solutions are one right way "
                  "among many, so the first character where a completion departs from one is no error")


def arithmetic_only(cfg: Config, what: str, why: str = REAL_DATA_SKIP) -> bool:
    """True on the arithmetic task (the tiny preset's). On any other task, prints that `what` needs it and why,
    and returns False, so that a notebook run with `PRESET = "qwen3_paper"` skips those cells with a sentence
    instead of stopping on a split or a field that real data does not have."""
    if cfg.task.name == "arithmetic":
        return True
    print(f"{what}: needs the arithmetic task (task.name=arithmetic, the tiny preset), so on this preset "
          f"(task.name={cfg.task.name}) it is skipped: {why}.")
    return False


def cache_outcomes(entry: Mapping, student_logp_CV, token_ids_C=None):
    """One cached warmup rollout's teacher distribution and the student's, over the outcomes the cache keeps.

    `entry` is one item of `<warmup stage>/teacher_cache.pt` (`fkl_warmup.teacher_distributions`);
    `student_logp_CV` the student's log-probs at the same completion positions over the tokenizer's V tokens.
    - A full cache (`fkl_warmup.top_k=0`, the tiny preset) keeps all V tokens: both are returned as they are.
    - A top-k cache (`fkl_warmup.top_k=64` on `qwen3_paper`) keeps the teacher's K likeliest tokens at each position
      and one tail bucket holding the rest of its mass. The student's distribution is lumped the same way: its
      log-probs at those K tokens, then the log of its mass outside them (computed here in float64 from `1 - sum`,
      not with the stage's code), `[C, K + 1]` each.
    Either way `sum(pT * (log pT - log pS))` over the returned outcomes is the stage's per-position loss
    (`fkl_warmup.forward_kl_terms`). With `token_ids_C` (the tokens the teacher sampled) the third value is the
    index of each among the outcomes (the tail bucket's, K, for a token outside its position's top K); else None.
    Returns `(teacher_logp, student_logp, outcome_C)`.
    """
    import torch

    teacher = entry["logp"].float()
    tokens = None if token_ids_C is None else torch.as_tensor(token_ids_C, dtype=torch.long)
    if entry.get("ids") is None:
        if teacher.shape != student_logp_CV.shape:
            raise InputError(f"a full-vocabulary cache entry of shape {tuple(teacher.shape)} against student "
                             f"log-probs of shape {tuple(student_logp_CV.shape)}: pass the student's log-probs at "
                             "the same completion positions over the same vocabulary")
        return teacher, student_logp_CV, tokens
    ids_CK = entry["ids"].long()
    K = ids_CK.shape[-1]
    student_CK = student_logp_CV.gather(-1, ids_CK)
    rest_C = (1.0 - student_CK.double().exp().sum(-1)).clamp_min(1e-300)  # the student's mass outside the K tokens
    student = torch.cat([student_CK, rest_C.log().to(student_CK.dtype)[:, None]], dim=-1)
    teacher = torch.cat([teacher, entry["tail"].float()[:, None]], dim=-1)
    outcome = None
    if tokens is not None:
        hit_CK = ids_CK == tokens[:, None]
        outcome = torch.where(hit_CK.any(-1), hit_CK.long().argmax(-1), torch.full_like(tokens, K))
    return teacher, student, outcome


def vocab_slice(student_logp_V, teacher_logp_V, token: int, width: int = 1024):
    """Two next-token distributions cut to at most `width` tokens, for demonstrations that cost V x V.

    When the vocabulary has at most `width` tokens (the tiny preset's), everything is returned as it is. Otherwise
    the `width` tokens the student finds likeliest (with `token` among them, replacing the last if needed) are
    kept and both distributions renormalised over them: a `width`-token distribution on which an identity of the
    full one holds just as exactly (Qwen3's 151,669 tokens would need a 92 GB table and as many backward passes).
    Returns `(kept_ids, student_logp, teacher_logp, index of token among kept_ids, mass)`, `mass` the student's and
    the teacher's probability on the kept tokens before renormalising (1.0 each when nothing was cut).
    """
    import torch

    V = student_logp_V.shape[-1]
    if not 0 <= token < V:
        raise InputError(f"token={token} is outside the vocabulary of {V} tokens")
    if V <= width:
        return torch.arange(V), student_logp_V, teacher_logp_V, token, (1.0, 1.0)
    kept = student_logp_V.topk(width).indices
    if not (kept == token).any():
        kept[-1] = token
    kept = kept.sort().values
    s, t = student_logp_V[kept], teacher_logp_V[kept]
    mass = (s.exp().sum().item(), t.exp().sum().item())
    return kept, s.log_softmax(-1), t.log_softmax(-1), int((kept == token).nonzero()[0, 0]), mass


def fit_gaussian(grid, target, direction: str, mu: float = 0.5, log_sd: float = 0.0, steps: int = 1500,
                 lr: float = 0.05) -> dict:
    """Fit one Gaussian `q` to the density `target` on `grid` by a KL, with Adam from `(mu, log_sd)`.

    `direction`: "forward" minimises `KL(target || q)` (the warmup's direction: the target's own mass weighs each
    point), "reverse" minimises `KL(q || target)` (OPD's: the model's mass weighs it). Both integrals are sums over
    the grid. Returns `{"q", "mean", "sd", "spread", "kl"}`: q as a tensor on the grid, the Gaussian's parameters,
    and the standard deviation of q as normalised on the grid (below `sd` when the grid cuts its tails: the
    forward fit's spread is the target's, the moment match).
    """
    import torch

    if direction not in ("forward", "reverse"):
        raise InputError(f"direction={direction!r}: choose 'forward' or 'reverse'")
    dx = grid[1] - grid[0]
    mu_t = torch.tensor(float(mu), requires_grad=True)
    log_sd_t = torch.tensor(float(log_sd), requires_grad=True)
    opt = torch.optim.Adam([mu_t, log_sd_t], lr=lr)
    log_p = target.clamp_min(1e-30).log()
    for _ in range(steps):
        q = torch.exp(-0.5 * ((grid - mu_t) / log_sd_t.exp()) ** 2)
        q = q / (q.sum() * dx)
        log_q = q.clamp_min(1e-30).log()
        kl = ((target * (log_p - log_q)) if direction == "forward" else (q * (log_q - log_p))).sum() * dx
        opt.zero_grad()
        kl.backward()
        opt.step()
    q = q.detach()
    spread = (((grid - (grid * q).sum() * dx) ** 2 * q).sum() * dx).sqrt().item()
    return {"q": q, "mean": mu_t.item(), "sd": log_sd_t.exp().item(), "spread": spread, "kl": kl.item()}
