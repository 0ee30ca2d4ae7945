"""Token lens: one fixed set of rollouts re-scored by every (teacher, student) checkpoint pair a run saved.

A probe snapshot shows a token's implicit reward `log pT(y_t) - log pS(y_t)` (docs/DESIGN.md, "Sign conventions") under
the models of one moment. The lens holds the rollouts still and changes the models: the student and teacher
samples of the run's first probe snapshot, scored by each pair of saved checkpoints, so a reader can follow one
token across the run, e.g. whether the RL teacher rewards a token the base teacher penalised, or whether
distillation closed a token's reverse KL. Tokens whose implicit reward changes sign between pairs are flagged.

Checkpoints (`checkpoints(run)`): every stage folder with a saved model (`<stage>/model/config.json`, or a
`stage.json` "model_source" that links a hub id or folder). Teachers are the stages another stage's `stage.json`
names as its `teacher`, stages whose `stage.json` says `"role": "teacher"`, and the base teacher (`base_teacher`);
students are all other checkpoints. Default pairs (`default_pairs`): every student checkpoint against every
teacher checkpoint (so against the teacher it was trained with, the base teacher and the RL teacher), the
student's own teacher first.

Scoring goes through `s2dlab.core.scoring.score_rollouts` (the one definition of the per-token scores). The result is
written once per run, atomically (`s2dlab.core.runs.atomic_write_bytes`), parquet first and the index last:

    runs/<name>/lens/lens.parquet    one row per (rollout, pair); schema in `compute_lens`
    runs/<name>/lens/lens.json       the index: pairs, rollouts, checkpoints, source snapshot, created time

    from s2dlab.instruments.lens import compute_lens, read_lens
    compute_lens(run)                      # default pairs, progress bar
    read_lens(run, rollout=3)              # that rollout's rows, one per pair, in pair order
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from s2dlab.core.errors import InputError, MissingError, S2DLabError

LENS_DIR = "lens"
LENS_FILE = "lens.parquet"
INDEX_FILE = "lens.json"
LENS_VERSION = 1
# A token changes sign when one pair gives it an implicit reward above +SIGN_TOLERANCE and another below
# -SIGN_TOLERANCE (nats); smaller values are float noise around 0, not an opinion.
SIGN_TOLERANCE = 1e-4
PER_TOKEN_COLUMNS = ("student_logprob", "teacher_logprob", "implicit_reward", "reverse_kl", "forward_kl")


def _as_run(run):
    from s2dlab.core.runs import Run, open_run

    return run if isinstance(run, Run) else open_run(run)


# --------------------------------------------------------------------------------------------------------------
# Checkpoint discovery


def checkpoints(run) -> list[dict]:
    """Every stage of `run` with a model (saved or linked), in workflow order.

    Each: `{"stage", "role": "teacher" | "student", "source": model folder or hub id, "teacher": the teacher
    stage it was trained with (its own `teacher`, else the nearest one up its `init` chain; None for teachers and
    base models), "init": the stage it started from or None}`. Roles are the stage records' own (`StageRecord.role`),
    and a stage another one distilled from is a teacher whatever it records.
    """
    run = _as_run(run)
    records = {r.name: r for r in run.stage_records() if r.model is not None}
    named = {r.teacher for r in records.values() if r.teacher}
    teachers = {name for name, r in records.items() if name in named or r.role == "teacher"}

    def own_teacher(stage: str) -> str | None:
        seen = set()
        while stage in records and stage not in seen:
            seen.add(stage)
            if records[stage].teacher:
                return records[stage].teacher
            stage = records[stage].init
        return None

    return [{"stage": name, "role": "teacher" if name in teachers else "student", "source": r.model,
             "teacher": None if name in teachers else own_teacher(name), "init": r.init}
            for name, r in records.items()]


def default_pairs(ckpts: Sequence[dict]) -> list[tuple[str, str]]:
    """(teacher, student) for every student checkpoint against every teacher checkpoint, the student's own
    teacher first, then the others in workflow order."""
    teachers = [c["stage"] for c in ckpts if c["role"] == "teacher"]
    pairs = []
    for c in ckpts:
        if c["role"] != "student":
            continue
        order = ([c["teacher"]] if c["teacher"] in teachers else []) + [t for t in teachers if t != c["teacher"]]
        pairs += [(t, c["stage"]) for t in order]
    return pairs


# --------------------------------------------------------------------------------------------------------------
# Rollouts from run-store rows


def prompt_settings(run) -> tuple[str, dict]:
    """The prompt suffix and chat-template arguments the run sampled with (`Run.prompt_settings`)."""
    return _as_run(run).prompt_settings()


def with_prompt_ids(rows, tokenizer, prompt_suffix: str = "", chat_template_kwargs: dict | None = None
                    ) -> list[dict]:
    """Run-store rows (dicts or a DataFrame) with `prompt_text` and `prompt_ids` added, rebuilt as
    `generation.sample` built them (chat template, `add_special_tokens=False`); rows that carry `prompt_ids`
    keep theirs. Needed to re-score or branch a stored rollout: the store keeps only the bare problem text."""
    from s2dlab.core.generation import format_prompt

    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict("records")
    out = []
    for row in rows:
        row = dict(row)
        if row.get("prompt_ids") is None or len(row.get("prompt_ids")) == 0:
            text = format_prompt(tokenizer, row["prompt"], prompt_suffix, chat_template_kwargs)
            row["prompt_text"] = text
            row["prompt_ids"] = tokenizer(text, add_special_tokens=False)["input_ids"]
        out.append(row)
    return out


def to_rollouts(rows: Sequence[dict]) -> list:
    """`generation.Rollout`s from rows that have `prompt_ids` (see `with_prompt_ids`)."""
    from s2dlab.core.generation import Rollout

    return [Rollout(prompt_id=r["prompt_id"], sample_idx=int(r["sample_idx"]), prompt=r["prompt"],
                    prompt_text=r.get("prompt_text") or "", prompt_ids=[int(t) for t in r["prompt_ids"]],
                    completion_ids=[int(t) for t in r["token_ids"]], completion=r.get("completion") or "",
                    sampler_logprobs=[], finished=bool(r.get("finished", True)), policy=r.get("policy") or "student")
            for r in rows]


def first_snapshot(run) -> tuple[str, int]:
    """(stage, step) of the run's first probe snapshot: the earliest step of the first stage, in workflow order,
    that has one. MissingError when there is none."""
    run = _as_run(run)
    for stage in run.stages():
        steps = run.rollout_steps(stage)
        if steps:
            return stage, steps[0]
    raise MissingError(f"{run.path}: no rollout snapshot in any stage; the lens re-scores the first probe snapshot, "
                       f"so run a stage with probes first")


def snapshot_pair(run, stage: str, step: int) -> tuple[str, str, bool]:
    """(teacher_stage, student_stage, exact): the saved checkpoints closest to the models that took the probe
    snapshot `stage`/`step`, and whether they are those very models.

    During a student stage (opd, fkl_warmup, student_grpo, ...) the teacher (`teacher`, else `counterpart` in
    stage.json) is fixed and the student moves: step 0 was sampled by the `init` stage's model, the last step
    (`steps`) by the stage's own saved model, a step in between by neither (the stage's model is returned, exact
    False). A teacher stage (`"role": "teacher"`) is the mirror image with its `counterpart` as the student.
    MissingError when the stage's stage.json does not name the models."""
    run = _as_run(run)
    info = run.stage(stage).fields
    final = info.get("steps")
    moving = info.get("init") if step == 0 and info.get("init") else stage
    exact = step == 0 and bool(info.get("init")) or (final is not None and step == int(final))
    if info.get("role") == "teacher":
        fixed = info.get("counterpart")
        if not fixed:
            raise MissingError(f"{run.path / stage / 'stage.json'}: names no counterpart student, so the models of "
                               f"snapshot {stage}/{step} are unknown")
        return moving, fixed, exact
    fixed = info.get("teacher") or info.get("counterpart")
    if not fixed:
        raise MissingError(f"{run.path / stage / 'stage.json'}: names no teacher or counterpart, so the models of "
                           f"snapshot {stage}/{step} are unknown")
    return fixed, moving, exact


def load_tokenizer_for(run):
    """The run's tokenizer (`Run.tokenizer`)."""
    return _as_run(run).tokenizer()


# --------------------------------------------------------------------------------------------------------------
# Compute and store


def _sign(x: float) -> int:
    return 1 if x > SIGN_TOLERANCE else -1 if x < -SIGN_TOLERANCE else 0


def _check_pairs(pairs, ckpts) -> list[tuple[str, str]]:
    stages = {c["stage"] for c in ckpts}
    out = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise InputError(f"pair {pair!r}: give (teacher_stage, student_stage)")
        for stage in pair:
            if stage not in stages:
                raise InputError(f"stage {stage!r} has no saved model in this run; checkpoints: {sorted(stages)}")
        out.append((str(pair[0]), str(pair[1])))
    out = list(dict.fromkeys(out))
    if not out:
        raise InputError("pairs=[]: give at least one (teacher_stage, student_stage) pair")
    return out


def _score_pairs(pairs, source_of, tokenizer, rollouts, dtype, device, batch_size, progress) -> dict:
    """`{(rollout, pair): per-token lists}`: each pair's scores of the rollouts, one teacher loaded at a time and its
    students one by one (memory holds two models at most)."""
    from tqdm.auto import tqdm

    from s2dlab.core.models import check_compatible, load_model
    from s2dlab.core.scoring import score_rollouts

    scores: dict[tuple[int, int], dict] = {}
    by_teacher: dict[str, list[int]] = {}
    for p, (t, _) in enumerate(pairs):
        by_teacher.setdefault(t, []).append(p)
    bar = tqdm(total=len(pairs), desc="lens", disable=not progress)
    for t_stage, pair_ids in by_teacher.items():
        teacher = load_model(source_of[t_stage], dtype=dtype, device=device).eval()
        for p in pair_ids:
            s_stage = pairs[p][1]
            student = teacher if s_stage == t_stage else load_model(source_of[s_stage], dtype=dtype,
                                                                    device=device).eval()
            check_compatible(tokenizer, tokenizer, teacher, student)
            scored = score_rollouts(student, teacher, tokenizer, rollouts, top_k=1, batch_size=batch_size)
            for i, row in enumerate(scored):
                scores[(i, p)] = {name: row[name] for name in PER_TOKEN_COLUMNS}
            del student
            bar.update(1)
        del teacher
    bar.close()
    return scores


def _lens_rows(rows, pairs, scores) -> tuple[list[dict], list[dict]]:
    """(lens.parquet rows, lens.json's `rollouts`): one row per (rollout, pair), with each token's sign under every
    pair and whether it changes between pairs."""
    table_rows, index_rollouts = [], []
    for i, row in enumerate(rows):
        key = f"{row.get('policy') or 'student'}/{row['prompt_id']}/{int(row['sample_idx'])}"
        length = len(row["token_ids"])
        signs = {p: [_sign(x) for x in scores[(i, p)]["implicit_reward"]] for p in range(len(pairs))}
        change = [any(signs[p][j] > 0 for p in signs) and any(signs[p][j] < 0 for p in signs) for j in range(length)]
        correct = row.get("correct")
        correct = None if correct is None or correct != correct else bool(correct)
        index_rollouts.append({"index": i, "key": key, "policy": row.get("policy") or "student",
                               "prompt_id": row["prompt_id"], "sample_idx": int(row["sample_idx"]), "length": length,
                               "correct": correct, "n_sign_changes": sum(change)})
        for p, (t_stage, s_stage) in enumerate(pairs):
            sc = scores[(i, p)]
            table_rows.append({
                "rollout": i, "rollout_key": key, "policy": row.get("policy") or "student",
                "prompt_id": row["prompt_id"], "sample_idx": int(row["sample_idx"]), "correct": correct,
                "pair": p, "teacher": t_stage, "student": s_stage, "length": length,
                "token_ids": [int(x) for x in row["token_ids"]], "tokens": list(row.get("tokens") or []),
                **sc, "sign": signs[p], "sign_change": change, "n_sign_changes": sum(change),
                "sum_implicit_reward": float(sum(sc["implicit_reward"])),
                "mean_reverse_kl": float(sum(sc["reverse_kl"]) / length) if length else None,
                "mean_forward_kl": float(sum(sc["forward_kl"]) / length) if length else None,
            })
    return table_rows, index_rollouts


def compute_lens(run, pairs: Sequence[tuple[str, str]] | None = None, progress: bool = True,
                 source: tuple[str, int] | None = None, device: str | None = None, dtype: str = "auto",
                 batch_size: int = 16, replace: bool = False) -> dict:
    """Re-score the rollouts of the first probe snapshot (or `source` = (stage, step)) with each (teacher,
    student) pair of checkpoints; write `lens/lens.parquet` and `lens/lens.json`; return the index.

    `pairs`: (teacher_stage, student_stage) tuples, any checkpoint stages in either role; default
    `default_pairs(checkpoints(run))`. MissingError when the run saved no model or has no snapshot; InputError
    for a pair naming a stage without a model, and when an existing lens holds pairs the new one would drop (their
    checkpoints are gone) unless `replace`. Models load on `device` (default cuda when present) one teacher
    at a time, its students one by one.

    `lens.parquet`, one row per (rollout, pair), rollout-major then pair order:
      rollout int64 (index into the index's `rollouts`), rollout_key str ("<policy>/<prompt_id>/<sample_idx>"),
      policy str, prompt_id str, sample_idx int64, correct bool|null (from the snapshot), pair int64 (index
      into `pairs`), teacher str, student str (stage names), length int64, token_ids list<int64>,
      tokens list<str>, student_logprob / teacher_logprob / implicit_reward / reverse_kl / forward_kl
      list<double> (`length` entries, as scoring.score_rollouts), sign list<int64> (+1, -1, or 0 within
      SIGN_TOLERANCE of 0, per token under this pair), sign_change list<bool> (per token: the implicit reward is
      positive under one pair and negative under another; the same in every row of a rollout), n_sign_changes
      int64, sum_implicit_reward double, mean_reverse_kl double|null, mean_forward_kl double|null.
    `lens.json`: {"version", "created" (UTC ISO), "run", "source": {"stage", "step"}, "sign_tolerance",
      "pairs": [{"index", "teacher", "student", "teacher_source", "student_source"}], "rollouts": [{"index",
      "key", "policy", "prompt_id", "sample_idx", "length", "correct", "n_sign_changes"}], "checkpoints":
      [as `checkpoints`], "n_rows", "file": "lens.parquet", "columns": [...]}.
    """
    import torch

    from s2dlab.core.runs import atomic_write_bytes, atomic_write_json

    run = _as_run(run)
    ckpts = checkpoints(run)
    if not ckpts:
        raise MissingError(f"{run.path}: no stage of this run saved a model (no <stage>/model/config.json or "
                           f"stage.json model_source); the lens needs checkpoints, so run the stages first")
    chosen = pairs is not None
    pairs = _check_pairs(default_pairs(ckpts) if pairs is None else pairs, ckpts)
    old = _read_index_quietly(run)
    have = {c["stage"] for c in ckpts}
    # the default pairs of a run whose checkpoints were deleted since: say what would go (pairs asked for by name
    # replace the lens as asked)
    dropped = [] if chosen else [f"{p['teacher']}->{p['student']}" for p in (old or {}).get("pairs", [])
                                 if (p["teacher"], p["student"]) not in set(pairs)
                                 and not {p["teacher"], p["student"]} <= have]
    if dropped and not replace:
        raise InputError(f"{run.path / LENS_DIR}: the lens there has {len(old['pairs'])} pairs and the new one would "
                         f"have {len(pairs)}, dropping {len(dropped)} ({', '.join(dropped[:4])}"
                         f"{', ...' if len(dropped) > 4 else ''}) whose checkpoints are gone; keep it, or replace it "
                         "with: s2dlab lens RUN --replace")
    stage, step = first_snapshot(run) if source is None else (source[0], int(source[1]))
    snapshot = run.rollouts(stage, step)
    if snapshot.empty:
        raise MissingError(f"{run.rollout_path(stage, step)}: the snapshot holds no rollouts")
    source_of = {c["stage"]: c["source"] for c in ckpts}
    tokenizer = run.tokenizer()
    suffix, chat = prompt_settings(run)
    rows = with_prompt_ids(snapshot, tokenizer, suffix, chat)
    rollouts = to_rollouts(rows)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    scores = _score_pairs(pairs, source_of, tokenizer, rollouts, dtype, device, batch_size, progress)
    table_rows, index_rollouts = _lens_rows(rows, pairs, scores)
    # lens.parquet and lens.json carry one id, so a reader can tell a pair written together from a parquet whose
    # index a kill cut off (written second, the index is then the old one)
    lens_id = uuid.uuid4().hex
    table = pa.Table.from_pylist(table_rows, schema=_SCHEMA.with_metadata({LENS_ID_KEY: lens_id}))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    folder = run.path / LENS_DIR
    atomic_write_bytes(folder / LENS_FILE, sink.getvalue().to_pybytes())

    def portable(source: str) -> str:
        """A model folder inside the run as a path relative to it (the run folder may move); hub ids as they are."""
        try:
            return Path(source).resolve().relative_to(run.path.resolve()).as_posix()
        except ValueError:
            return source

    ckpts = [{**c, "source": portable(c["source"])} for c in ckpts]
    source_of = {k: portable(v) for k, v in source_of.items()}
    index = {
        "version": LENS_VERSION, "run": run.name, "lens_id": lens_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"stage": stage, "step": step}, "sign_tolerance": SIGN_TOLERANCE,
        "pairs": [{"index": p, "teacher": t, "student": s, "teacher_source": source_of[t],
                   "student_source": source_of[s]} for p, (t, s) in enumerate(pairs)],
        "rollouts": index_rollouts, "checkpoints": ckpts, "n_rows": len(table_rows), "file": LENS_FILE,
        "columns": table.column_names,
    }
    atomic_write_json(folder / INDEX_FILE, index)
    return index


_SCHEMA = pa.schema([
    ("rollout", pa.int64()), ("rollout_key", pa.string()), ("policy", pa.string()), ("prompt_id", pa.string()),
    ("sample_idx", pa.int64()), ("correct", pa.bool_()), ("pair", pa.int64()), ("teacher", pa.string()),
    ("student", pa.string()), ("length", pa.int64()), ("token_ids", pa.list_(pa.int64())),
    ("tokens", pa.list_(pa.string())),
    *[(name, pa.list_(pa.float64())) for name in PER_TOKEN_COLUMNS],
    ("sign", pa.list_(pa.int64())), ("sign_change", pa.list_(pa.bool_())), ("n_sign_changes", pa.int64()),
    ("sum_implicit_reward", pa.float64()), ("mean_reverse_kl", pa.float64()), ("mean_forward_kl", pa.float64()),
])


# --------------------------------------------------------------------------------------------------------------
# Readers


LENS_ID_KEY = b"s2dlab_lens_id"


def _read_index_quietly(run) -> dict | None:
    try:
        return read_lens_index(run)
    except S2DLabError:
        return None


def check_lens(run) -> None:
    """RunStoreError when lens.parquet and lens.json are not one pair (a `s2dlab lens` killed between the two
    writes, or one file replaced by hand); the fix is to compute the lens again."""
    from s2dlab.core.runs import RunStoreError

    index, path = read_lens_index(run), lens_path(run)
    if index is None or not path.is_file():
        if index is not None or path.is_file():
            raise RunStoreError(f"{path.parent}: lens.json and lens.parquet are not both there; compute it again: "
                                f"s2dlab lens {_as_run(run).path}")
        return
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as e:
        raise RunStoreError(f"{path}: not a readable parquet file ({e})") from e
    if index.get("lens_id") and meta.get(LENS_ID_KEY, b"").decode() != index["lens_id"]:
        raise RunStoreError(f"{path.parent}: lens.parquet and lens.json come from different computations (one was "
                            f"cut short); compute it again: s2dlab lens {_as_run(run).path} --replace")


def lens_path(run) -> Path:
    return _as_run(run).path / LENS_DIR / LENS_FILE


def read_lens_index(run) -> dict | None:
    """`lens/lens.json`, or None when the run has no lens yet."""
    from s2dlab.core.runs import read_json_file

    return read_json_file(_as_run(run).path / LENS_DIR / INDEX_FILE)


def read_lens(run, rollout: int | str | None = None):
    """The lens rows as a DataFrame (list columns as Python lists), rollout then pair order; only one rollout's
    rows (one per pair) when `rollout` is given, as its index (int) or its `rollout_key` (str). An empty
    DataFrame when the run has no lens yet; RunStoreError when the file cannot be read."""
    import pandas as pd

    from s2dlab.core.runs import RunStoreError

    path = lens_path(run)
    if not path.is_file():
        return pd.DataFrame()
    check_lens(run)
    filters = None
    if rollout is not None:
        filters = [("rollout_key", "=", rollout)] if isinstance(rollout, str) else [("rollout", "=", int(rollout))]
    try:
        table = pq.read_table(path, filters=filters)
    except (pa.ArrowException, OSError) as e:
        raise RunStoreError(f"{path}: not a readable parquet file ({e})") from e
    columns = {}
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        if pa.types.is_list(t) or pa.types.is_string(t):
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        else:
            columns[name] = column.to_pandas()
    df = pd.DataFrame(columns)
    return df.sort_values(["rollout", "pair"], kind="stable").reset_index(drop=True) if len(df) else df


__all__ = ["checkpoints", "default_pairs", "compute_lens", "read_lens", "read_lens_index", "with_prompt_ids",
           "to_rollouts", "first_snapshot", "prompt_settings", "snapshot_pair", "load_tokenizer_for", "lens_path",
           "SIGN_TOLERANCE"]
