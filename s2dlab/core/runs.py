"""The run store: one folder per run, written atomically, read by notebooks, the app and the benchmarks.

Layout (the contract in docs/DESIGN.md):

    runs/<name>/run.json                  config, seed, package versions, git revision
    runs/<name>/<stage>/model/            save_pretrained output
    runs/<name>/<stage>/metrics.jsonl     one JSON object per logged step
    runs/<name>/<stage>/rollouts/step_000100.parquet   scored rollout snapshots
    runs/<name>/<stage>/eval.json         accuracy avg@k / pass@k per eval set
    runs/<name>/results.json              arms x metrics with intervals and each arm's budget
    runs/<name>/summary.json              C1, C2, verdicts and everything a reader shows (s2dlab.workflow.summary)
    runs/<name>/diagnostics/              the fixed rollouts C1 and C2 are measured on (parquet)

    run = create_run("runs/demo", config={"preset": "tiny"}, seed=0)   # reuses run.json when it exists
    run.append_metrics("opd", {"step": 10, "loss": 0.3})
    run.write_rollouts("opd", 10, rows)
    open_run("runs/demo").rollouts("opd")                              # latest snapshot as a DataFrame

Crash safety. Whole files (JSON, parquet) go to a hidden temporary name in the same folder (`.<name>.<random>.tmp`),
are fsynced and then `os.replace`d into place, so a reader sees the old file or the new one, never half of one.
A writer killed between the two leaves at most a hidden `.tmp` file, which every reader here ignores.

`metrics.jsonl` is append-only instead of rewritten (rewriting would make logging quadratic): each record is
one `os.write` of one complete line on an `O_APPEND` descriptor. Readers take only lines that end in a newline,
so a torn last line is invisible, and the next append first truncates such a torn tail back to the last
complete line, so it can never glue onto a later record. Metrics lines are not fsynced: a killed process
loses nothing the kernel already holds; a power cut may lose the last few lines.

Missing things read as "nothing" (`None`, `[]`, an empty DataFrame, as each docstring says); a file that exists
but cannot be parsed raises `RunStoreError` naming its path.

JSON is written with `indent=2, sort_keys=True`; NaN and infinities become `null` (strict JSON), numpy and
torch scalars/arrays become plain numbers/lists.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from s2dlab.core.errors import S2DLabError

__all__ = [
    "RunStoreError",
    "RunBusyError",
    "Run",
    "StageRecord",
    "STAGE_ORDER",
    "STAGE_PREFIX_ORDER",
    "atomic_write_bytes",
    "atomic_write_json",
    "create_run",
    "run_lock",
    "open_run",
    "list_runs",
]

# Workflow order of stage folders; arm-prefixed folders (`raw_teacher.opd`) come after, by arm then stage.
STAGE_ORDER = ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd", "student_grpo", "replay",
               "cold_grpo", "teacher_sft", "gold_sft"]
# the prefixes of the ablation arms' stage folders (`full.opd`, `raw_teacher.fkl_warmup`), in the order they sort
STAGE_PREFIX_ORDER = ["full", "raw_teacher", "no_warmup", "no_opd", "sft_teacher"]

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
RESULTS_FILE = "results.json"
ROLLOUTS_DIR = "rollouts"
_STEP_FILE = re.compile(r"^step_(\d+)\.parquet$")
_STAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_VERSIONED_PACKAGES = ["python", "torch", "transformers", "trl", "s2dlab", "accelerate", "datasets", "tokenizers",
                       "math-verify", "pyarrow", "pandas", "plotly", "gradio", "vllm"]


# The process umask, read once at import (reading it means setting it, which is not thread-safe later).
UMASK = os.umask(0o022)
os.umask(UMASK)


class RunStoreError(S2DLabError):
    """A run-store file is missing where it must exist, or cannot be parsed. The message names the path."""


# --------------------------------------------------------------------------------------------------------------
# atomic writes and JSON


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` so that readers see either the old file or the new one, never a partial file.

    The bytes go to a hidden temporary file in the same folder, are fsynced, and `os.replace` moves the file into
    place (atomic on POSIX within one filesystem). The folder is created if needed. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the mode open() would
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder, which is fine.
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: non-finite floats -> None, numpy/torch scalars and arrays -> numbers/lists, paths -> str."""
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return to_jsonable(dataclasses.asdict(obj))
    return str(obj)


def log_record(logs: dict) -> dict:
    """A trainer's log dict as a metrics.jsonl record: numbers, strings, flags and lists as they are, tensors as
    numbers (one element) or lists, anything else left out. The one sanitiser of trainer logs (the workflow's
    stages and DenseRewardCallback both append through it)."""
    out = {}
    for k, v in logs.items():
        if hasattr(v, "numel") and hasattr(v, "tolist"):  # a torch tensor
            v = v.item() if v.numel() == 1 else v.tolist()
        if isinstance(v, (int, float, str, bool, list)) or v is None:
            out[k] = v
    return out


def dumps_json(obj: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text (`sort_keys`, NaN -> null) as every file in the store is written."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=True, allow_nan=False, ensure_ascii=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """`obj` as JSON (indent 2, sorted keys, NaN -> null) written with `atomic_write_bytes`."""
    return atomic_write_bytes(path, (dumps_json(obj) + "\n").encode("utf-8"))


def read_json_file(path: str | os.PathLike) -> Any | None:
    """The parsed JSON at `path`; None when the file does not exist; RunStoreError when it cannot be parsed."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise RunStoreError(f"{path}: expected a JSON file, found a folder") from None
    except OSError as e:
        raise RunStoreError(f"{path}: cannot read ({e})") from e
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunStoreError(f"{path}: corrupt JSON ({e})") from e


# --------------------------------------------------------------------------------------------------------------
# runs


def _package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _VERSIONED_PACKAGES:
        if name == "python":
            versions[name] = sys.version.split()[0]
            continue
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_revision() -> str | None:
    """The commit the s2dlab sources come from (with `-dirty` when they have local changes), or None."""
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


# The sub-folders of a stage that a copy takes along with the stage's own files (`s2dlab copy`, the map's shared
# stages): the hand-off model and the scored rollout snapshots. `checkpoints/` and `best/` are the training state of
# a stage that is already done.
COPIED_FOLDERS = ("model", "rollouts")


def copy_stage_folder(src: Path, dst: Path) -> None:
    """Copy a finished stage folder `src` to the new folder `dst`: its files and COPIED_FOLDERS, not a writer's
    hidden temporary files or its training state."""
    dst.mkdir()
    for entry in sorted(src.iterdir()):
        if entry.name.startswith("."):  # a writer's hidden temporary file
            continue
        if entry.is_file():
            shutil.copy2(entry, dst / entry.name)
        elif entry.is_dir() and entry.name in COPIED_FOLDERS:
            shutil.copytree(entry, dst / entry.name)


def create_run(out_dir: str | os.PathLike, config: dict, seed: int, overwrite: bool = False,
               check_config: bool = True) -> "Run":
    """Start a run in `out_dir` (its folder name is the run's name) and write `run.json`.

    When `out_dir/run.json` already exists the existing run is reused (returned as `open_run` would), so an
    interrupted pipeline resumes in place; if `config` or `seed` differ from the stored ones it raises
    `ConfigMismatchError` naming the keys that differ (`.diff`), and writes nothing: a run folder is never silently
    rewritten under another config (`s2dlab.workflow.pipeline.open_for` retrains what a change touches when asked to).
    `check_config=False` reuses the folder whatever its config (a folder of one's own trainings, `DenseRewardCallback`).
    With `overwrite=True` an existing run folder (one holding run.json) is deleted first. A folder without run.json
    is never deleted, only written into.
    """
    from s2dlab.core.config import ConfigMismatchError, config_diff, diff_text

    out_dir = Path(out_dir)
    run_file = out_dir / RUN_FILE
    if out_dir.exists() and not out_dir.is_dir():
        raise RunStoreError(f"{out_dir}: is a file, not a folder; give a folder path for the run")
    if run_file.exists():
        if not overwrite:
            run = open_run(out_dir)
            diff = config_diff({**run.info.get("config", {}), "seed": run.info.get("seed")},
                               {**to_jsonable(config), "seed": seed})
            if check_config and diff:
                raise ConfigMismatchError(f"{out_dir} was made with another config ({diff_text(diff)}); use a new "
                                          "folder for the new config", diff)
            return run
        shutil.rmtree(out_dir)
    info = {
        "name": out_dir.resolve().name,
        "config": to_jsonable(config),
        "seed": seed,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": _package_versions(),
        "git_revision": _git_revision(),
    }
    atomic_write_json(run_file, info)
    return Run(out_dir, info)


# --------------------------------------------------------------------------------------------------------------
# one writer per run folder

LOCK_FILE = ".lock"


class RunBusyError(S2DLabError):
    """Another process is writing this run folder (its holder, command and start time are in the message)."""


_held: dict[str, list] = {}  # resolved run folder -> [open lock file, depth] held by this process
_held_guard = threading.Lock()


def _try_lock(f) -> bool:
    try:
        if os.name == "nt":
            import msvcrt

            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def run_lock(path: str | os.PathLike, command: str | None = None):
    """Hold the run folder `path` for writing while the block runs; RunBusyError at once when another process holds it.

    The lock is the operating system's lock on `path/.lock` (flock; msvcrt on Windows), so it goes away with the
    process that holds it, however that process ends: a killed run never leaves a folder stuck (a killed holder
    leaves the file itself, which is harmless: nobody holds its lock). A holder that ends normally removes it. The file also says
    who holds it (pid, host, command, since), which is what the second process reports. Re-entrant within a
    process (the pipeline takes it, then the stages it calls take it again). Readers (the dashboard, `s2dlab
    score`) never take it: a run can be watched while it trains.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    with _held_guard:
        if key in _held:
            _held[key][1] += 1
            held = True
        else:
            held = False
    if held:
        try:
            yield
        finally:
            with _held_guard:
                _held[key][1] -= 1
        return
    path = folder / LOCK_FILE
    while True:
        f = open(path, "a+", encoding="utf-8")
        if not _try_lock(f):
            f.seek(0)
            try:
                who = json.loads(f.read() or "{}")
            except (OSError, json.JSONDecodeError):  # Windows' locks keep others from reading the locked byte
                who = {}
            f.close()
            raise RunBusyError(f"{folder} is in use by process {who.get('pid', '?')} on {who.get('host', '?')} "
                               f"({who.get('command', 'another s2dlab process')}, since {who.get('since', '?')}); "
                               "wait for it to finish, or write to another folder")
        # The holder removes the file when it lets go; a file locked just after that removal is a stale name, so
        # lock whatever the path names now instead.
        try:
            same = os.name == "nt" or os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        f.close()
    try:
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "command": command or " ".join(["s2dlab", *sys.argv[1:]])[:200],
                            "since": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}))
        f.flush()
        with _held_guard:
            _held[key] = [f, 1]
        yield
    finally:
        with _held_guard:
            entry = _held.get(key)
            if entry is not None and entry[0] is f:
                entry[1] -= 1
                if entry[1] <= 0:
                    del _held[key]
        if os.name != "nt":  # removed while still locked, so the folder holds no lock file between writers
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        f.close()  # closing the descriptor releases the lock


def lock_holder(path: str | os.PathLike) -> dict | None:
    """Who holds the run folder's lock now (`{"pid", "host", "command", "since"}`), or None when nobody does."""
    folder = Path(path)
    if not (folder / LOCK_FILE).is_file():
        return None
    key = str(folder.resolve())
    with _held_guard:
        if key in _held:
            return {"pid": os.getpid(), "host": socket.gethostname(), "command": "this process"}
    with open(folder / LOCK_FILE, "a+", encoding="utf-8") as f:
        if _try_lock(f):
            return None  # nobody holds it (closing releases ours)
        f.seek(0)
        try:
            return json.loads(f.read() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}


def open_run(path: str | os.PathLike) -> "Run":
    """Open the run in folder `path` (or the folder of `path` when it names run.json itself).

    RunStoreError when run.json is missing, corrupt, or not a JSON object.
    """
    path = Path(path)
    if path.name == RUN_FILE and path.is_file():
        path = path.parent
    run_file = path / RUN_FILE
    if not path.is_dir():
        raise RunStoreError(f"{path}: no such run folder")
    info = read_json_file(run_file)
    if info is None:
        raise RunStoreError(f"{run_file}: missing; {path} is not a run folder")
    if not isinstance(info, dict):
        raise RunStoreError(f"{run_file}: expected a JSON object, found {type(info).__name__}")
    return Run(path, info)


def list_runs(root: str | os.PathLike, max_depth: int = 3) -> list[Path]:
    """Folders at `root` or up to `max_depth` levels below it that hold a run.json, sorted. Missing root -> [].

    Hidden folders and symlinked folders are not entered (so a listing never leaves `root`).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if (folder / RUN_FILE).is_file():
            found.append(folder)
        if depth >= max_depth:
            return
        for sub in subfolders(folder):
            walk(sub, depth + 1)

    walk(root, 0)
    return sorted(found)


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in `folder` that a walk of the run store enters: not hidden, not symlinked (so a walk
    never leaves its root); [] when `folder` cannot be read."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    return [Path(e.path) for e in entries
            if not e.name.startswith(".") and not e.is_symlink() and e.is_dir(follow_symlinks=False)]


def validate_stage(stage: str) -> str:
    """`stage` if it is a plain folder name (`opd`, `raw_teacher.opd`); ValueError for paths, `..`, absolute."""
    if not isinstance(stage, str) or not stage:
        raise ValueError(f"stage name must be a non-empty string, got {stage!r}")
    if os.path.isabs(stage) or "/" in stage or "\\" in stage or ".." in stage or not _STAGE_NAME.match(stage):
        raise ValueError(f"invalid stage name {stage!r}: use a plain folder name such as 'opd' or 'raw_teacher.opd'")
    return stage


def stage_sort_key(stage: str) -> tuple:
    """Workflow order: plain stages in STAGE_ORDER, then `<prefix>.<stage>` by STAGE_PREFIX_ORDER and stage, then the
    rest."""

    def stage_rank(name: str) -> tuple:
        return (0, STAGE_ORDER.index(name), "") if name in STAGE_ORDER else (1, 0, name)

    if stage in STAGE_ORDER:
        return (0, STAGE_ORDER.index(stage), "", ())
    if "." in stage:
        arm, sub = stage.split(".", 1)
        arm_rank = STAGE_PREFIX_ORDER.index(arm) if arm in STAGE_PREFIX_ORDER else len(STAGE_PREFIX_ORDER)
        return (1, arm_rank, arm, stage_rank(sub))
    return (2, 0, stage, ())


def _validate_relpath(relpath: str | os.PathLike) -> Path:
    rel = Path(relpath)
    if not str(relpath) or rel.is_absolute() or any(part in ("..", "") for part in rel.parts):
        raise ValueError(f"invalid path {str(relpath)!r}: must be relative to the run folder, without '..'")
    return rel


STAGE_FILE = "stage.json"


@dataclass(frozen=True)
class StageRecord:
    """What one stage of a run is: `<stage>/stage.json` as every reader sees it (`Run.stage(name)`), with where the
    stage's model is. stage.json has one writer, `Run.update_stage`.

    The fields every stage records (None when it does not apply): `status` ("running" | "done"), `role` ("teacher" |
    "student": which model the stage holds), `init` (the stage it started from), `teacher` (distillation: the stage
    whose model taught it), `counterpart` (the fixed model its probe snapshots score against), `model_source` (a
    checkpoint it links where it lives, a folder, a .gguf file or a hub id, instead of a saved `model/`), `steps`,
    `sequences` (sequences the trained model saw), `labels` (`{"set", "n", "kind"}`), `prompts` (`{"set", "n"}`).
    Whatever else a stage writes (its loss, truncation, selection history, timings) is in `fields`.
    """

    name: str
    run_path: Path
    fields: dict

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    status = property(lambda self: self.fields.get("status"))
    role = property(lambda self: self.fields.get("role"))
    init = property(lambda self: self.fields.get("init"))
    teacher = property(lambda self: self.fields.get("teacher"))
    counterpart = property(lambda self: self.fields.get("counterpart"))
    model_source = property(lambda self: self.fields.get("model_source"))
    steps = property(lambda self: self.fields.get("steps"))
    sequences = property(lambda self: self.fields.get("sequences"))
    labels = property(lambda self: self.fields.get("labels"))
    prompts = property(lambda self: self.fields.get("prompts"))

    @property
    def saved_model(self) -> Path | None:
        """The stage's own saved model folder (`<stage>/model/` holding a config.json), or None."""
        folder = self.run_path / self.name / "model"
        return folder if (folder / "config.json").is_file() else None

    @property
    def model(self) -> str | None:
        """Where the stage's model is: its saved `model/` folder, else the checkpoint it links (`model_source`), else
        None (not trained yet)."""
        saved = self.saved_model
        return str(saved) if saved is not None else (self.model_source or None)

    @property
    def done(self) -> bool:
        """Finished: stage.json says done and the model it hands off is there (saved or linked)."""
        return self.status == "done" and self.model is not None


class Run:
    """A run folder. Cheap to create; every read goes to disk, so a reader sees a live run's latest files."""

    def __init__(self, path: str | os.PathLike, info: dict):
        self.path = Path(path)
        self.info = info
        self.name = str(info.get("name") or self.path.name)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ---- folders

    def stage_dir(self, stage: str) -> Path:
        """`path / stage`; ValueError when `stage` is not a plain folder name."""
        return self.path / validate_stage(stage)

    def model_dir(self, stage: str) -> Path:
        return self.stage_dir(stage) / "model"

    def has_model(self, stage: str) -> bool:
        """True when the stage saved a model (a config.json in its model folder)."""
        return (self.model_dir(stage) / "config.json").is_file()

    # ---- the stage record (stage.json)

    def stage(self, stage: str) -> StageRecord:
        """The record of `stage` (its stage.json; empty fields when it has none yet). RunStoreError names a
        stage.json that cannot be parsed."""
        info = read_json_file(self.stage_dir(stage) / STAGE_FILE)
        if info is not None and not isinstance(info, dict):
            raise RunStoreError(f"{self.stage_dir(stage) / STAGE_FILE}: expected a JSON object")
        return StageRecord(stage, self.path, dict(info or {}))

    def stage_records(self) -> list[StageRecord]:
        """The record of every stage folder, in workflow order."""
        return [self.stage(name) for name in self.stages()]

    def finished(self, stage: str) -> StageRecord | None:
        """The record of `stage` when it is done (its model saved or linked), else None."""
        record = self.stage(stage)
        return record if record.done else None

    def update_stage(self, stage: str, replace: bool = False, **fields) -> StageRecord:
        """The one writer of stage.json: merge `fields` into the stage's record (or, with `replace`, write `fields`
        as the whole record), atomically, and return it."""
        merged = dict(fields) if replace else {**self.stage(stage).fields, **fields}
        self.write_json(f"{stage}/{STAGE_FILE}", merged)
        return StageRecord(stage, self.path, merged)

    def config(self):
        """The run's config (`s2dlab.core.config.Config`) rebuilt from run.json."""
        from s2dlab.core.config import config_from_dict

        return config_from_dict(self.info.get("config") or {})

    def prompt_settings(self) -> tuple[str, dict]:
        """(prompt suffix, chat-template keyword arguments) the run samples with: how every reader renders a prompt
        the way the run's stages did."""
        cfg = self.config()
        return cfg.task.prompt_suffix, cfg.chat_template_kwargs()

    def tokenizer(self):
        """The run's tokenizer: its `tokenizer/` folder (tiny runs save the character tokenizer there), else the one
        saved beside the first stage model that has one, else the first linked checkpoint's. MissingError when the
        run has neither."""
        from s2dlab.core.errors import MissingError
        from s2dlab.core.models import load_tokenizer

        if (self.path / "tokenizer" / "tokenizer.json").is_file():
            return load_tokenizer(self.path / "tokenizer")
        sources = [r.model for r in self.stage_records() if r.model is not None]
        for source in sources:  # a saved model folder holds its tokenizer (finish_stage saves both)
            folder = Path(source)
            if folder.is_dir() and ((folder / "tokenizer.json").is_file()
                                    or (folder / "tokenizer_config.json").is_file()):
                return load_tokenizer(folder)
        if not sources:
            raise MissingError(f"{self.path}: no tokenizer folder and no saved model to take one from")
        return load_tokenizer(sources[0])

    def load_model(self, stage: str, dtype: str = "auto", device: str | None = None):
        """The model `stage` hands off (saved or linked), loaded with `s2dlab.core.models.load_model`; MissingError with
        the command to run when the stage has no model yet."""
        from s2dlab.core.errors import MissingError
        from s2dlab.core.models import load_model

        where = self.stage(stage).model
        if where is None:
            raise MissingError(f"{self.model_dir(stage)}: stage {stage!r} has no saved model yet; run it first "
                               f"(s2dlab stage {stage} --out {self.path})")
        return load_model(where, dtype=dtype, device=device)

    def stages(self) -> list[str]:
        """Stage folders present, in workflow order.

        A folder counts when its name is a workflow stage (`opd`, `raw_teacher.opd`, ...) or when it holds stage
        output (metrics.jsonl, eval.json, stage.json, model/ or rollouts/); so `seed_<k>` sub-runs, a saved
        `tokenizer/` and hidden folders are not stages.
        """
        names = []
        try:
            entries = list(os.scandir(self.path))
        except OSError:
            return []
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or not _STAGE_NAME.match(entry.name) or ".." in entry.name:
                continue
            if _is_stage_folder(Path(entry.path)):
                names.append(entry.name)
        return sorted(names, key=stage_sort_key)

    # ---- metrics.jsonl

    def append_metrics(self, stage: str, record: dict) -> None:
        """Append one JSON object as one line of `stage/metrics.jsonl` (a single O_APPEND write; see module doc)."""
        path = self.stage_dir(stage) / METRICS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (dumps_json(record, indent=None) + "\n").encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _truncate_torn_tail(fd)
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        finally:
            os.close(fd)

    def metrics(self, stage: str) -> list[dict]:
        """Every complete record of `stage/metrics.jsonl` in order; [] when the file does not exist.

        A trailing line without its newline (a write in progress or torn) is skipped; any other unparsable line
        raises RunStoreError with the path and line number.
        """
        path = self.stage_dir(stage) / METRICS_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise RunStoreError(f"{path}: cannot read ({e})") from e
        lines = raw.split(b"\n")[:-1]  # the last piece is "" or an incomplete line
        records = []
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise RunStoreError(f"{path}: line {i} is not valid JSON ({e})") from e
            if not isinstance(rec, dict):
                raise RunStoreError(f"{path}: line {i} is not a JSON object")
            records.append(rec)
        return records

    # ---- rollout snapshots

    def write_rollouts(self, stage: str, step: int, rows: list[dict]) -> Path:
        """Write `rows` as `stage/rollouts/step_{step:06d}.parquet` (atomic); returns the path."""
        if int(step) < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        path = self.stage_dir(stage) / ROLLOUTS_DIR / f"step_{int(step):06d}.parquet"
        table = pa.Table.from_pylist([_plain_row(r) for r in rows])
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        atomic_write_bytes(path, sink.getvalue().to_pybytes())
        return path

    def rollout_steps(self, stage: str) -> list[int]:
        """Steps that have a rollout snapshot, ascending; [] when there are none."""
        folder = self.stage_dir(stage) / ROLLOUTS_DIR
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(int(m.group(1)) for m in map(_STEP_FILE.match, names) if m)

    def rollout_path(self, stage: str, step: int) -> Path:
        return self.stage_dir(stage) / ROLLOUTS_DIR / f"step_{int(step):06d}.parquet"

    def rollouts(self, stage: str, step: int | None = None) -> pd.DataFrame:
        """One snapshot as a DataFrame (list columns come back as Python lists, string columns as str or None).

        `step=None` reads the latest snapshot, or returns an empty DataFrame when the stage has none. A given
        `step` without a snapshot, or a file that is not valid parquet, raises RunStoreError naming the path.
        """
        if step is None:
            steps = self.rollout_steps(stage)
            if not steps:
                return pd.DataFrame()
            step = steps[-1]
        return read_rollout_file(self.rollout_path(stage, step))

    # ---- eval / results / any JSON

    def write_eval(self, stage: str, result: dict) -> Path:
        return atomic_write_json(self.stage_dir(stage) / EVAL_FILE, result)

    def eval(self, stage: str) -> dict | None:
        """`stage/eval.json`, or None when it does not exist."""
        return read_json_file(self.stage_dir(stage) / EVAL_FILE)

    def write_results(self, results: dict) -> Path:
        return atomic_write_json(self.path / RESULTS_FILE, results)

    def results(self) -> dict | None:
        """`results.json`, or None when it does not exist."""
        return read_json_file(self.path / RESULTS_FILE)

    def write_rows(self, relpath: str | os.PathLike, rows: list[dict]) -> Path:
        """Write rows (dicts of plain values and lists) as one parquet file inside the run folder (atomic)."""
        table = pa.Table.from_pylist([_plain_row(r) for r in rows])
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        return atomic_write_bytes(self.path / _validate_relpath(relpath), sink.getvalue().to_pybytes())

    def read_rows(self, relpath: str | os.PathLike, columns: list[str] | None = None) -> list[dict] | None:
        """A parquet file inside the run folder as a list of dicts (only `columns`, when given), or None when it
        does not exist."""
        path = self.path / _validate_relpath(relpath)
        return read_rollout_file(path, columns).to_dict("records") if path.is_file() else None

    def write_json(self, relpath: str | os.PathLike, obj: Any) -> Path:
        """Write any JSON file inside the run folder (atomic); ValueError for absolute paths or `..`."""
        return atomic_write_json(self.path / _validate_relpath(relpath), obj)

    def read_json(self, relpath: str | os.PathLike) -> Any | None:
        """A JSON file inside the run folder, or None when it does not exist."""
        return read_json_file(self.path / _validate_relpath(relpath))


def read_rollout_file(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """A rollout parquet file as a DataFrame (list columns as Python lists, strings as str/None); RunStoreError
    naming the path when it is missing or unreadable. `columns` reads only those (the ones the file has)."""
    path = Path(path)
    if not path.is_file():
        raise RunStoreError(f"{path}: no such rollout snapshot")
    try:
        if columns is not None:
            present = set(pq.read_schema(path).names)
            columns = [c for c in columns if c in present]
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise RunStoreError(f"{path}: not a readable parquet file ({e})") from e
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            # Python lists, and str-or-None (pandas would turn a missing string into NaN)
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns)


_STAGE_ARTIFACTS = (METRICS_FILE, EVAL_FILE, STAGE_FILE, "model", ROLLOUTS_DIR)


def _is_stage_folder(folder: Path) -> bool:
    if (folder / RUN_FILE).exists():
        return False
    name = folder.name
    if name in STAGE_ORDER or ("." in name and name.split(".", 1)[1] in STAGE_ORDER):
        return True
    return any((folder / a).exists() for a in _STAGE_ARTIFACTS)


def _truncate_torn_tail(fd: int) -> None:
    """If the file does not end in a newline (an earlier write was cut), cut it back to its last complete line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    end = size
    chunk = 1 << 16
    while end > 0:
        start = max(0, end - chunk)
        piece = os.pread(fd, end - start, start)
        idx = piece.rfind(b"\n")
        if idx >= 0:
            os.ftruncate(fd, start + idx + 1)
            return
        end = start
    os.ftruncate(fd, 0)


def _plain_row(row: dict) -> dict:
    # numpy arrays / torch tensors -> lists so pyarrow infers list<double> and list<list<...>> columns.
    out = {}
    for k, v in row.items():
        if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
            v = v.tolist()
        out[k] = v
    return out
