"""The models of a run as the dashboard's model-running views use them: where a stage's model is (its stage
record), how big it is, and one cached loader.

A stage's model is what its record says (`s2dlab.core.runs.StageRecord`): its saved `model/` folder inside the runs
folder, else the checkpoint it links (`model_source`: a folder, a `.gguf` file or a hub id, as `s2dlab check` and a
linked `s2dlab stage base` record them; loaded where it lives, since the user named it). Models are loaded once
and cached while their files are unchanged (float32 on a CPU: weights stored in float16 or bfloat16 compute slowly
there). Nothing here imports torch or transformers at import time.

One at a time. Loading a model while another loads or runs breaks in ways that outlast the request
(transformers builds a model on the meta device and then copies the weights in: two loads in two threads gave
"Cannot copy out of meta tensor", and two first imports of transformers raced, "cannot import name
'LogitsProcessor'"). So everything that loads or runs a model holds `MODEL_LOCK` (`one_at_a_time`), and the app
puts those handlers in one Gradio queue of its own (`s2dlab.views.dashboard.ui.MODEL_QUEUE`), where a waiting participant
sees their place instead of an error.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from s2dlab.core.runs import Run, RunStoreError
from s2dlab.views.dashboard.store import LRU, TOKENIZERS, AppError, Store, file_key

# Above this many bytes of weights a model is "large" for live scoring on a CPU (a 0.5B model in float32).
LARGE_MODEL_BYTES = 2 * 1024 ** 3

MODELS = LRU(4)
RUN_TOKENIZERS = LRU(4)
MODEL_LOCK = threading.RLock()  # held while a model is loaded or run (re-entrant: a view calls another)


def one_at_a_time(fn):
    """`fn` run while holding `MODEL_LOCK`: no two model loads or runs overlap, whatever calls them."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with MODEL_LOCK:
            return fn(*args, **kwargs)

    return wrapper


def cuda() -> bool:
    import torch  # here, so the app starts without loading torch

    return torch.cuda.is_available()


# --------------------------------------------------------------------------------------------------------------
# where a stage's model is


def model_location(store: Store, run: Run, stage: str | None) -> Path | str | None:
    """Where `stage`'s model is, from its record: its saved `model/` folder (inside the runs folder), else the
    checkpoint it links (a local path, resolved; a hub id as it is, loaded offline from the local cache), else None
    (not trained yet, a linked checkpoint that has since moved, or a record being written)."""
    if not stage:
        return None
    record = store.record(run, stage)
    if record is None:
        return None
    if record.saved_model is not None:
        return store.inside(record.saved_model)
    source = record.model_source
    if not source:
        return None
    path = Path(str(source)).expanduser()
    if path.is_absolute() or path.exists():
        return path.resolve() if path.exists() else None
    return str(source)


def model_stages(store: Store, run_id: str) -> list[str]:
    """Stages with a model: saved inside the runs folder, or linked by their record."""
    run = store.open(run_id)
    return [s for s in run.stages() if model_location(store, run, s) is not None]


def model_bytes(location: Path | str | None) -> int:
    """Bytes of weights at a model location (a folder's safetensors/bin files, a GGUF file; 0 for a hub id)."""
    if not isinstance(location, Path) or not location.exists():
        return 0
    if location.is_file():
        return location.stat().st_size
    return sum(p.stat().st_size for p in location.glob("*.safetensors")) + sum(
        p.stat().st_size for p in location.glob("*.bin"))


def location_key(location: Path | str) -> tuple:
    """A cache key for the model at `location`: its files' identities, or the hub id."""
    if isinstance(location, Path):
        files = [location] if location.is_file() else [f for f in (location / "config.json",
                                                                   location / "model.safetensors") if f.exists()]
        return ("model", *[file_key(f) for f in files])
    return ("model", location)


def large_warning(store: Store, run: Run, stages) -> str:
    """A sentence when the stages' weights are large and there is no GPU, else ""."""
    total = sum(model_bytes(model_location(store, run, s)) for s in stages if s)
    if total >= LARGE_MODEL_BYTES and not cuda():
        return (f"⚠ These checkpoints hold {total / 1024 ** 3:.1f} GiB of weights and no GPU is available: on the "
                "CPU this may take minutes and tens of GB of memory. Tick the box to run anyway.")
    return ""


def guard_size(store: Store, run: Run, stages, allow_large: bool) -> None:
    """AppError when the checkpoints are large and there is no GPU, unless `allow_large`."""
    warning = large_warning(store, run, stages)
    if warning and not allow_large:
        raise AppError(warning.removeprefix("⚠ "))


# --------------------------------------------------------------------------------------------------------------
# loading


@one_at_a_time
def load_live_model(location: Path | str):
    """The model at `location`, cached by its files (float32 on a CPU)."""
    from transformers.utils import logging as hf_logging

    from s2dlab.core.models import load_model

    hf_logging.disable_progress_bar()  # the app's status line, not a terminal bar per weight file

    def make():
        on_gpu = cuda()
        model = load_model(location, dtype="auto" if on_gpu else "float32", device="cuda" if on_gpu else "cpu")
        return model.eval()

    return MODELS.get(location_key(location), make)


def stage_model(store: Store, run: Run, stage: str):
    """The loaded model of `stage`; AppError when it has none."""
    location = model_location(store, run, stage)
    if location is None:
        raise AppError(f"Stage {stage!r} saved no model in this run (no model/ folder, no model_source).")
    return load_live_model(location)


def hf_tokenizer(folder: Path | str):
    """A transformers tokenizer from a model folder (offline)."""
    from s2dlab.core.models import load_tokenizer

    return load_tokenizer(folder, local_files_only=True)


def stage_tokenizer(store: Store, run: Run, stage: str, location: Path | str):
    """The tokenizer to sample `stage` with: the run's saved one, else the one beside its model."""
    folder = store.tokenizer_dir(run, stage) or location
    return TOKENIZERS.get(("hf", *location_key(folder)), lambda: hf_tokenizer(folder))


def run_tokenizer(store: Store, run: Run):
    """The run's tokenizer as `s2dlab.instruments.lens` loads it (what the snapshot views re-score with)."""
    from s2dlab.instruments.lens import load_tokenizer_for

    folder = store.tokenizer_dir(run)
    key = file_key(folder / "tokenizer.json") if folder else ("run", str(run.path))
    return RUN_TOKENIZERS.get(key, lambda: load_tokenizer_for(run))


# --------------------------------------------------------------------------------------------------------------
# roles: which stages hold a teacher, which a student (their records say; names say nothing)

# The arm whose student is the workflow's final student (`s2dlab.workflow.arms.ARMS`): the four-stage workflow.
WORKFLOW_ARM = "bridge_1h_stage3"


def role_choices(store: Store, run: Run) -> tuple[list[str], list[str]]:
    """(students, teachers): the stages with a model, by the role their record gives, in workflow order. A stage
    whose record names no role (a run written before roles were recorded) is offered as both."""
    students, teachers = [], []
    for stage in run.stages():
        if model_location(store, run, stage) is None:
            continue
        record = store.record(run, stage)
        role = record.role if record is not None else None
        if role != "teacher":
            students.append(stage)
        if role != "student":
            teachers.append(stage)
    return students, teachers


def workflow_chain(run: Run) -> list[str]:
    """The workflow's final student stage (the stage of the arm `WORKFLOW_ARM`) and the stages it starts from,
    latest first (`student_grpo`, `opd`, `fkl_warmup`, `base_student` on the default plan): from each stage's
    record, else from the plan of the run's config for a stage not written yet."""
    from s2dlab.core.config import config_from_dict
    from s2dlab.workflow.pipeline import ARMS, plan

    final = next(a.final for a in ARMS if a.name == WORKFLOW_ARM)
    planned: dict[str, str | None] = {}
    try:
        steps, _ = plan(config_from_dict(run.info.get("config") or {}))
        planned = {s.name: s.kwargs.get("init") or s.kwargs.get("policy_from") for s in steps}
    except Exception:  # a run.json of another version: the records alone
        pass
    chain, stage = [], final
    while stage and stage not in chain:
        chain.append(stage)
        try:
            record = run.stage(stage) if (run.path / stage).is_dir() else None
        except (RunStoreError, ValueError):  # a record being written: the plan says where the stage starts
            record = None
        stage = (record.init if record is not None and record.init else None) or planned.get(stage)
    return chain


def default_pair(store: Store, run: Run, students: list[str], teachers: list[str]) -> tuple[str | None, str | None]:
    """The workflow's (student, teacher) among the offered stages: the latest finished student along
    `workflow_chain` (else the latest with a model there, else the last student), and the teacher that taught
    that chain (the RL teacher; else the chosen student's own teacher or counterpart, else the last teacher)."""
    chain = workflow_chain(run)
    records = {s: store.record(run, s) for s in chain if (run.path / s).is_dir()}
    along = [s for s in chain if s in students]
    student = next((s for s in along if records.get(s) is not None and records[s].done), None)
    student = student or (along[0] if along else (students[-1] if students else None))
    taught = [r.teacher for r in records.values() if r is not None and r.teacher]
    own = store.record(run, student) if student else None
    if own is not None:
        taught += [own.teacher, own.counterpart]
    teacher = next((t for t in taught if t in teachers), None) or (teachers[-1] if teachers else None)
    return student, teacher
