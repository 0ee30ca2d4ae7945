"""`s2dlab check`: a pre-flight of a teacher/student pair on a few problems, before any GPU hour is spent.

    s2dlab check --teacher Qwen/Qwen3-8B --student Qwen/Qwen3-1.7B --data math500 --n 16 --samples 4
    s2dlab check --teacher model.gguf --student runs/x/student --data problems.jsonl --out runs/check

It samples `samples` student rollouts and `teacher_samples` teacher rollouts of each of the first `n` problems,
scores every token (`s2dlab.core.scoring.score_rollouts`), writes an ordinary run folder and prints one table:

- **tokenizers beyond the vocabulary**: eos / bos / pad tokens and ids, the tokens each adds when encoding, both
  chat templates rendered on the same three-turn conversation and diffed (the first differing line), the
  thinking-mode flag and what it changes, and the template / special tokens in the rollouts (end of turn,
  thinking tags) whose per-token implicit reward is an outlier among the ordinary tokens (`token_outliers`): two
  models that disagree on where a turn ends show up here;
- **the self-check**: the teacher scored against itself must give exactly zero implicit reward and KL at every
  token (the maximum absolute value is printed; anything else is a scoring bug and fails the check);
- **C1 and C2 with intervals**, as `s2dlab.workflow.summary` defines them (this module never recomputes them): the AUROC of
  the summed implicit reward over correct vs wrong student rollouts with its bootstrap interval over problems and
  the length-only AUROC beside it, the per-token reverse KL(student || teacher) with its interval; and teacher and
  student accuracy with intervals, and their paired difference (`diagnostics.accuracy_interval`,
  `diagnostics.paired_difference`);
- **a verdict in words** that reads every comparison through its interval.

The run folder is the workflow's own layout at its starting point, so `s2dlab app` and `s2dlab score` open it:

    <out>/run.json                          a Config naming both models, the sampling and the probe sizes
    <out>/base_teacher/stage.json           the teacher, linked where it lives (`model_source`), not copied
    <out>/base_student/stage.json           the student, likewise
    <out>/check/rollouts/step_000000.parquet  every scored rollout, student's and teacher's (the token view)
    <out>/check/metrics.jsonl, stage.json   the probe metrics of that snapshot (`diagnostics.probe_metrics`)
    <out>/diagnostics/c1/rollouts.jsonl     the student's rollouts, as the workflow's C1 measurement keeps them
    <out>/diagnostics/c1/base_teacher.parquet  them scored by the teacher: what summary.json's C1 and C2 read
    <out>/check.json                        this table's data: alignment, self-check, accuracies, timings, verdict
    <out>/summary.json, results.json        `s2dlab.workflow.summary.write_summary`
    <out>/tokenizer/                        the student's tokenizer (the dashboard names top-k ids with it)

Nothing is half-written: the folder is built in a hidden sibling and renamed into place at the end; a previous
check in the same `--out` is replaced then, any other folder there is refused. Incompatible tokenizers stop with
`TokenizerMismatchError` (after the alignment rows are shown) before anything is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from s2dlab.core.diagnostics import probe_metrics
from s2dlab.core.errors import InputError, MissingError
from s2dlab.instruments.callback import PROBLEM_FIELDS, problem_text

CHECK_FILE = "check.json"
STAGE = "check"
TEACHER_STAGE, STUDENT_STAGE = "base_teacher", "base_student"
# Outliers: a template or special token whose mean implicit reward lies below this share, or above 1 minus it, of
# the ordinary tokens of the same rollouts is flagged (beyond the central 99%).
OUTLIER_TAIL = 0.005
SELF_CHECK_ROLLOUTS = 4  # student rollouts the teacher scores against itself
# A conversation every chat template renders: system, user, assistant, user, then the generation prompt.
PROBE_CONVERSATION = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": "2+3=5, so the answer is \\boxed{5}."},
    {"role": "user", "content": "And 4+4?"},
]


# --- problems -------------------------------------------------------------------------------------------------------

def load_problems(data: str | os.PathLike, n: int) -> tuple[list[dict], dict]:
    """The first `n` problems of `data` (a JSONL file of `{"prompt"|"problem"|"question", "answer"}` objects, or an
    eval set name for `s2dlab.core.tasks.load_task`) as records `{"id", "prompt", "answer"}`, and where they came from."""
    if not isinstance(n, int) or n < 1:
        raise InputError(f"--n {n}: need a positive number of problems")
    path = Path(data).expanduser()
    if path.is_file():
        records = _read_problem_file(path)
        source = {"file": str(path.resolve()), "set": None}
    else:
        from s2dlab.core.tasks.math_datasets import ALIASES, TASKS, load_task

        name = str(data)
        if ALIASES.get(name, name) not in TASKS:
            raise MissingError(f"--data {name}: no such file, and not a known eval set ({', '.join(TASKS)}); pass a "
                               f"JSONL file of {{\"prompt\"|\"problem\"|\"question\", \"answer\"}} lines or a set name")
        records = [{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]} for r in load_task(name)]
        source = {"file": None, "set": ALIASES.get(name, name)}
    if n > len(records):
        raise InputError(f"--n {n} but {data} holds {len(records)} problems; pass --n {len(records)} or fewer")
    return records[:n], {**source, "n": n, "of": len(records), "data": str(data)}


def _read_problem_file(path: Path) -> list[dict]:
    from s2dlab.core.tasks.math_datasets import read_jsonl

    records, seen = [], set()
    for k, (lineno, row) in enumerate(read_jsonl(path)):
        text = problem_text(row)
        if text is None or row.get("answer") is None or not str(row["answer"]).strip():
            missing = "a problem field" if text is None else "'answer'"
            raise InputError(f"{path}:{lineno}: no {missing} (the line has {', '.join(sorted(row)) or 'no fields'}); "
                             f"expected one of {', '.join(repr(f) for f in PROBLEM_FIELDS)} and 'answer'")
        rid = str(row.get("id", row.get("idx", row.get("unique_id", f"{path.stem}-{k:04d}"))))
        if rid in seen:
            rid = f"{path.stem}-{k:04d}"
        seen.add(rid)
        records.append({"id": rid, "prompt": text, "answer": str(row["answer"]).strip()})
    if not records:
        raise InputError(f"{path}: no problems in the file; expected one JSON object per line with one of "
                         f"{', '.join(repr(f) for f in PROBLEM_FIELDS)} and 'answer'")
    return records


# --- tokenizers beyond the vocabulary -----------------------------------------------------------------------------

def _render(tokenizer, messages, **kwargs) -> str | None:
    if not tokenizer.chat_template:
        return None
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - a template that raises is itself a difference worth showing
        return f"<error: {type(err).__name__}: {err}>"


def first_differing_line(a: str | None, b: str | None) -> dict | None:
    """None when the two renderings are equal, else the first line where they differ (1-based) and both lines."""
    if a == b:
        return None
    la, lb = (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True)
    i = next((k for k, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
    return {"line": i + 1, "teacher": la[i] if i < len(la) else None, "student": lb[i] if i < len(lb) else None,
            "teacher_lines": len(la), "student_lines": len(lb)}


def tokenizer_alignment(teacher_tok, student_tok, enable_thinking: bool = False) -> dict:
    """What the vocabulary size does not show: special tokens and ids, encode-time additions, the two templates
    rendered on `PROBE_CONVERSATION` (with the thinking flag as it will be used) and the thinking flag itself."""
    from s2dlab.core.models import added_on_encode

    out = {"vocabulary": {"teacher": len(teacher_tok), "student": len(student_tok),
                          "same": teacher_tok.get_vocab() == student_tok.get_vocab()}}
    for attr in ("eos_token", "bos_token", "pad_token"):
        t, s = getattr(teacher_tok, attr), getattr(student_tok, attr)
        t_id, s_id = getattr(teacher_tok, f"{attr}_id"), getattr(student_tok, f"{attr}_id")
        out[attr.split("_")[0]] = {"teacher": [t, t_id], "student": [s, s_id], "same": (t, t_id) == (s, s_id)}
    t_add, s_add = added_on_encode(teacher_tok), added_on_encode(student_tok)
    out["added_on_encode"] = {"teacher": t_add, "student": s_add, "same": t_add == s_add}
    kw = {"enable_thinking": enable_thinking}
    t_text, s_text = _render(teacher_tok, PROBE_CONVERSATION, **kw), _render(student_tok, PROBE_CONVERSATION, **kw)
    out["chat_template"] = {"same_source": teacher_tok.chat_template == student_tok.chat_template,
                            "lines": len((t_text or "").splitlines()),
                            "difference": first_differing_line(t_text, s_text),
                            "teacher_has": t_text is not None, "student_has": s_text is not None}
    out["thinking"] = _thinking(student_tok, enable_thinking)
    return out


def _thinking(tokenizer, used: bool) -> dict:
    """Whether the template reads `enable_thinking`, and what the generation prompt gains or loses with it."""
    takes = "enable_thinking" in (tokenizer.chat_template or "")
    out = {"takes_flag": takes, "used": used, "changes": None}
    if takes:
        user = PROBE_CONVERSATION[1:2]
        on, off = _render(tokenizer, user, enable_thinking=True), _render(tokenizer, user, enable_thinking=False)
        if on is not None and off is not None and on != off:
            common = 0
            while common < min(len(on), len(off)) and on[common] == off[common]:
                common += 1
            out["changes"] = {"with_true": on[common:], "with_false": off[common:]}
    return out


def token_outliers(groups: dict[tuple, list[float]], rest: dict[str, list[float]], tail: float = OUTLIER_TAIL
                   ) -> dict:
    """Which template / special tokens sit far from the ordinary tokens of the same rollouts.

    `groups[(policy, token)]` holds the implicit rewards of one added or special token in one policy's rollouts,
    `rest[policy]` those of every other token there. A group's mean is placed in that distribution: its
    percentile is the share of ordinary tokens below it (ties count one half); beyond the central `1 - 2 tail`
    (99%) it is an outlier. A percentile needs no scale, so confident models (most ordinary rewards ~0, heavy
    tails) and vague ones are judged alike.
    """
    tokens = []
    for (policy, token), values in groups.items():
        ref = np.asarray(rest.get(policy, []), float)
        mean = float(np.mean(values))
        pct = float(((ref < mean).sum() + 0.5 * (ref == mean).sum()) / len(ref)) if len(ref) else None
        tokens.append({"policy": policy, "token": token, "count": len(values), "mean": mean, "percentile": pct,
                       "median_rest": float(np.median(ref)) if len(ref) else None, "n_rest": int(len(ref)),
                       "outlier": pct is not None and not tail <= pct <= 1 - tail})
    tokens.sort(key=lambda t: -abs(0.5 - t["percentile"]) if t["percentile"] is not None else 0)
    return {"tail": tail, "tokens": tokens, "outliers": [t for t in tokens if t["outlier"]],
            "n_rest": {p: len(v) for p, v in rest.items()}}


def template_token_outliers(rows: list[dict], tokenizer) -> dict:
    """The tokenizer's added and special tokens (end of turn, thinking tags, role markers) in the scored rollouts,
    student's and teacher's, against the ordinary tokens of the same policy's rollouts (`token_outliers`).

    These are the tokens a chat template puts into completions. A student that stops where the teacher would not
    (or never learned the template's end of turn) shows here: its end-of-turn token, or the teacher's, scores far
    outside the ordinary tokens.
    """
    added = set(tokenizer.added_tokens_decoder) | set(tokenizer.all_special_ids)
    groups: dict[tuple, list[float]] = {}
    rest: dict[str, list[float]] = {}
    for row in rows:
        policy = row.get("policy", "student")
        for tid, text, value in zip(row["token_ids"], row["tokens"], row["implicit_reward"]):
            if tid in added:
                groups.setdefault((policy, text), []).append(value)
            else:
                rest.setdefault(policy, []).append(value)
    return token_outliers(groups, rest)


# --- the self-check ---------------------------------------------------------------------------------------------------

def self_check(teacher, tokenizer, rollouts) -> dict:
    """Score rollouts with the teacher as both models: every implicit reward and KL must be exactly 0.

    The two passes see the same weights and the same batch, so any nonzero value is a bug in the scoring path
    (misaligned positions, padding, a head sliced differently), not rounding.
    """
    from s2dlab.core.scoring import score_rollouts

    rows = score_rollouts(teacher, teacher, tokenizer, rollouts)
    out = {"rollouts": len(rows), "tokens": sum(r["length"] for r in rows)}
    for name in ("implicit_reward", "reverse_kl", "forward_kl"):
        values = [abs(v) for r in rows for v in r[name]]
        out[f"max_abs_{name}"] = max(values) if values else 0.0
    out["passed"] = all(out[f"max_abs_{n}"] == 0.0 for n in ("implicit_reward", "reverse_kl", "forward_kl"))
    return out


# --- accuracy with intervals ------------------------------------------------------------------------------------------

def _per_problem(rows: list[dict]) -> dict[str, float]:
    by: dict[str, list[bool]] = {}
    for r in rows:
        if r.get("correct") is not None:
            by.setdefault(str(r["prompt_id"]), []).append(bool(r["correct"]))
    return {p: sum(c) / len(c) for p, c in by.items()}


def accuracies(student_rows: list[dict], teacher_rows: list[dict]) -> dict:
    """Each model's mean accuracy over problems with its 95% interval and the paired teacher - student difference
    (`diagnostics.accuracy_interval`, `diagnostics.paired_difference`: the workflow's definitions)."""
    from s2dlab.core import diagnostics as dg

    s_pp, t_pp = _per_problem(student_rows), _per_problem(teacher_rows)
    out = {"student": dg.accuracy_interval([s_pp]), "student_rollouts": len(student_rows),
           "teacher_rollouts": len(teacher_rows)}
    if t_pp:
        out["teacher"] = dg.accuracy_interval([t_pp])
        out["difference"] = dg.paired_difference([t_pp], [s_pp])
    return out


def reward_vs_length(student_rows: list[dict]) -> dict:
    """The summed implicit reward's AUROC minus minus-length's, paired over the same rollouts, with a bootstrap over
    problems (`diagnostics.auroc_difference`): does the teacher rank rollouts better than their length alone?"""
    from s2dlab.core import diagnostics as dg

    graded = [r for r in student_rows if r.get("correct") is not None]
    return dg.auroc_difference([r["sum_implicit_reward"] for r in graded], [-float(r["length"]) for r in graded],
                               [bool(r["correct"]) for r in graded], [str(r["prompt_id"]) for r in graded])


# --- the check ------------------------------------------------------------------------------------------------------

class _Steps:
    """One progress bar over the check's steps, each timed."""

    def __init__(self, total: int, progress: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc="check", disable=not progress, leave=False, dynamic_ncols=True)
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, label: str):
        self.bar.set_description(label)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 3)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def _source_name(x) -> str:
    path = Path(str(x)).expanduser()
    return str(path.resolve()) if path.exists() else str(x)


def _check_out(out: Path) -> None:
    if out.exists() and not (out / CHECK_FILE).is_file():
        raise InputError(f"--out {out} exists and is not a folder an earlier check wrote; pass a new --out folder "
                         f"(a previous check's folder is replaced)")


def _config(name: str, teacher: str, student: str, source: dict, n: int, samples: int, teacher_samples: int,
            max_new_tokens: int, temperature: float, top_p: float, top_k: int, enable_thinking: bool,
            prompt_suffix: str, dtype: str, batch_size: int, seed: int):
    """The check as a workflow Config (run.json): both models, the sampling, the probe and C1 sizes."""
    from s2dlab.core.config import Config

    cfg = Config()
    cfg.name, cfg.seed = name, seed
    cfg.models.teacher, cfg.models.student, cfg.models.dtype = teacher, student, dtype
    cfg.task.name, cfg.task.prompt_suffix = "math", prompt_suffix  # math-verify grading, any answer form
    g = cfg.generation
    g.max_new_tokens, g.temperature, g.top_p, g.top_k = max_new_tokens, temperature, top_p, top_k
    g.enable_thinking, g.batch_size = enable_thinking, batch_size
    p = cfg.probe
    p.num_prompts, p.num_samples, p.teacher_samples, p.every = n, samples, teacher_samples, 0
    p.c1_prompts, p.c1_samples = n, samples
    cfg.eval.n_samples = samples
    if source.get("set"):
        cfg.eval.sets, cfg.eval.limit = [source["set"]], n
    return cfg.validate()


def run_check(teacher, student, data, *, n: int = 16, samples: int = 4, teacher_samples: int = 1,
              max_new_tokens: int = 256, out: str | os.PathLike = "runs/check", seed: int = 0,
              temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, enable_thinking: bool = False,
              prompt_suffix: str = "", dtype: str = "float32", batch_size: int = 16, progress: bool = True,
              echo: Callable[[str], None] | None = None) -> dict:
    """Run the pre-flight (see the module docstring) and write its run folder; returns check.json's content.

    `echo` receives the tokenizer rows as soon as they are known, so a `TokenizerMismatchError` that stops the
    check comes after the rows that show the difference. Bad input raises an `s2dlab.core.errors` type (one line)
    before any model is loaded where it can be known then: the output folder, the problems, the tokenizers.
    """
    from s2dlab.core.models import (
        TokenizerMismatchError,
        check_compatible,
        load_model,
        load_tokenizer,
    )

    for name, value, low in (("samples", samples, 1), ("teacher_samples", teacher_samples, 0),
                             ("max_new_tokens", max_new_tokens, 1), ("batch_size", batch_size, 1)):
        if not isinstance(value, int) or value < low:
            raise InputError(f"--{name.replace('_', '-')} {value}: need an integer >= {low}")
    out = Path(out).expanduser()
    _check_out(out)
    records, source = load_problems(data, n)
    steps = _Steps(total=8, progress=progress)
    try:
        with steps.step("load_tokenizers", "loading tokenizers"):
            t_tok, s_tok = load_tokenizer(teacher), load_tokenizer(student)
        alignment = tokenizer_alignment(t_tok, s_tok, enable_thinking)
        try:
            check_compatible(t_tok, s_tok)
        except TokenizerMismatchError:
            if echo is not None:
                steps.close()
                echo(alignment_text(alignment))
            raise
        tok = s_tok
        tok.padding_side = "left"
        with steps.step("load_teacher", "loading the teacher"):
            t_model = load_model(teacher, dtype=dtype).eval()
        with steps.step("load_student", "loading the student"):
            s_model = load_model(student, dtype=dtype).eval()
        check_compatible(t_tok, s_tok, t_model, s_model)
        alignment["heads"] = {"teacher": t_model.get_output_embeddings().weight.shape[0],
                              "student": s_model.get_output_embeddings().weight.shape[0]}
        cfg = _config(out.name, _source_name(teacher), _source_name(student), source, n, samples, teacher_samples,
                      max_new_tokens, temperature, top_p, top_k, enable_thinking, prompt_suffix, dtype, batch_size,
                      seed)
        result = _measure(cfg, t_model, s_model, tok, records, steps, alignment, samples=samples,
                          teacher_samples=teacher_samples, max_new_tokens=max_new_tokens, seed=seed,
                          temperature=temperature, top_p=top_p, top_k=top_k, enable_thinking=enable_thinking,
                          prompt_suffix=prompt_suffix, batch_size=batch_size, progress=progress)
        with steps.step("write", "writing the run folder"):
            check = _write(out, cfg, tok, result, source)
    finally:
        steps.close()
    return check


def _measure(cfg, t_model, s_model, tok, records, steps: _Steps, alignment: dict, *, samples, teacher_samples,
             max_new_tokens, seed, temperature, top_p, top_k, enable_thinking, prompt_suffix, batch_size,
             progress) -> dict:
    from s2dlab.core.data import chat_kwargs, grade_fn
    from s2dlab.core.generation import sample
    from s2dlab.core.scoring import score_rollouts

    kw = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
              batch_size=batch_size, prompt_suffix=prompt_suffix,
              chat_template_kwargs=chat_kwargs(cfg), progress=progress)
    with steps.step("sample_student", f"sampling {len(records)} x {samples} student rollouts"):
        s_rollouts = sample(s_model, tok, records, n=samples, seed=seed, policy="student", **kw)
    t_rollouts = []
    with steps.step("sample_teacher", f"sampling {len(records)} x {teacher_samples} teacher rollouts"):
        if teacher_samples:
            t_rollouts = sample(t_model, tok, records, n=teacher_samples, seed=seed + 1, policy="teacher", **kw)
    answers = {r["id"]: r["answer"] for r in records}
    with steps.step("score", "scoring every token"):
        rows = score_rollouts(s_model, t_model, tok, s_rollouts + t_rollouts, grade_fn=grade_fn(cfg), answers=answers,
                              stage=STAGE, step=0, batch_size=batch_size)
    s_rows = [r for r in rows if r["policy"] == "student"]
    t_rows = [r for r in rows if r["policy"] == "teacher"]
    with steps.step("self_check", "self-check: the teacher against itself"):
        selfc = self_check(t_model, tok, s_rollouts[:SELF_CHECK_ROLLOUTS])
    alignment["template_tokens"] = template_token_outliers(rows, tok)
    sampled = {who: {"rollouts": len(rs), "tokens": sum(len(r.completion_ids) for r in rs),
                     "unfinished": sum(not r.finished for r in rs)} for who, rs in (("student", s_rollouts),
                                                                                    ("teacher", t_rollouts))}
    return {"rows": rows, "s_rows": s_rows, "t_rows": t_rows, "s_rollouts": s_rollouts, "alignment": alignment,
            "self_check": selfc, "accuracy": accuracies(s_rows, t_rows), "reward_vs_length": reward_vs_length(s_rows),
            "sampled": sampled, "seconds": steps.seconds,
            "sizes": {"samples": samples, "teacher_samples": teacher_samples, "max_new_tokens": max_new_tokens,
                      "enable_thinking": enable_thinking, "temperature": temperature, "top_p": top_p,
                      "top_k": top_k, "seed": seed, "prompt_suffix": prompt_suffix},
            "models": {"teacher": _model_info(t_model), "student": _model_info(s_model)}}


def _model_info(model) -> dict:
    from s2dlab.core.models import count_parameters

    return {"class": type(model).__name__, "parameters": count_parameters(model),
            "layers": getattr(model.config, "num_hidden_layers", None), "dtype": str(next(model.parameters()).dtype)}


def _write(out: Path, cfg, tok, result: dict, source: dict) -> dict:
    """Build the run folder in a hidden sibling, summarise it there, then rename it into place."""
    from s2dlab.core.runs import (
        atomic_write_bytes,
        atomic_write_json,
        create_run,
        dumps_json,
    )
    from s2dlab.workflow import summary as sm

    out.parent.mkdir(parents=True, exist_ok=True)
    _check_out(out)  # again: the folder may have appeared while the check ran
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        run = create_run(tmp / "run", cfg.to_dict(), cfg.seed)
        run.info["name"] = out.name  # create_run named it after the temporary folder
        atomic_write_json(run.path / "run.json", run.info)
        run.name = out.name
        for stage, role, src in ((TEACHER_STAGE, "teacher", cfg.models.teacher),
                                 (STUDENT_STAGE, "student", cfg.models.student)):
            # as `s2dlab stage base` links a pretrained checkpoint (stages.lifecycle.link_stage)
            run.update_stage(stage, replace=True, status="done", finished=time.time(), model_source=src, role=role)
        run.write_rollouts(STAGE, 0, result["rows"])
        run.append_metrics(STAGE, {"step": 0, **probe_metrics(result["rows"])})
        run.update_stage(STAGE, replace=True, status="done", kind="check", student=STUDENT_STAGE,
                         counterpart=TEACHER_STAGE, steps=0, prompts={"set": source["data"], "n": source["n"]})
        atomic_write_bytes(run.path / sm.C1_ROLLOUTS, "".join(dumps_json(r.to_dict(), indent=None) + "\n"
                                                             for r in result["s_rollouts"]).encode())
        run.write_rows(sm.c1_path(TEACHER_STAGE), [{**r, "stage": TEACHER_STAGE} for r in result["s_rows"]])
        tok.save_pretrained(run.path / "tokenizer")
        summary = sm.write_summary(cfg, run)
        check = {"format": 1, "teacher": cfg.models.teacher, "student": cfg.models.student, "data": source,
                 "models": result["models"], "sizes": result["sizes"], "sampled": result["sampled"],
                 "alignment": result["alignment"], "self_check": result["self_check"],
                 "accuracy": result["accuracy"], "reward_vs_length": result["reward_vs_length"],
                 "seconds": result["seconds"]}
        check["verdict"] = verdict(check, summary)
        run.write_json(CHECK_FILE, check)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "run")
        os.replace(run.path, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return check


# --- words ------------------------------------------------------------------------------------------------------------

def c1_c2(summary: dict) -> dict:
    """The teacher's C1 / C2 entry of a check's summary (`summary["c1"]["teachers"]["base_teacher"]`)."""
    return (summary.get("c1") or {}).get("teachers", {}).get(TEACHER_STAGE, {})


def _iv(ci, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    if not ci or ci[0] is None:
        return "[-]"
    return "[" + fmt.format(ci[0] * scale) + ", " + fmt.format(ci[1] * scale) + "]"


def verdict(check: dict, summary: dict) -> list[str]:
    """The check in sentences; every comparison is read through its interval, never a point value alone."""
    lines = []
    al = check["alignment"]
    differing = [k for k in ("eos", "bos", "pad", "added_on_encode") if not al[k]["same"]]
    if al["chat_template"]["difference"]:
        differing.append("chat template rendering")
    outliers = al["template_tokens"]["outliers"]
    if differing:
        lines.append(f"Tokenizers differ beyond the vocabulary ({', '.join(differing)}): dense rewards would compare "
                     f"different tokens.")
    elif outliers:
        names = ", ".join(f"{t['token']!r} in {t['policy']} rollouts ({t['mean']:+.2f} nats, at percentile "
                          f"{_pct_rank(t['percentile'])} of the ordinary tokens)" for t in outliers[:4])
        lines.append(f"Tokenizers agree, but template/special tokens score far from ordinary tokens: {names}. The "
                     f"two models disagree on the template's tokens (where a turn ends, thinking tags): the dense "
                     f"reward there rewards formatting, not reasoning; a warmup on teacher rollouts teaches it.")
    else:
        lines.append("Tokenizers agree beyond the vocabulary (special tokens, encode-time additions, the rendered "
                     "chat template), and no template or special token scores as an outlier.")
    sc = check["self_check"]
    if sc["passed"]:
        lines.append(f"Scoring self-check passed: the teacher against itself gives exactly 0 implicit reward and KL "
                     f"on {sc['tokens']:,} tokens.")
    else:
        lines.append(f"Scoring self-check FAILED: the teacher against itself gives |implicit reward| up to "
                     f"{sc['max_abs_implicit_reward']:.3g} (must be exactly 0); every score below is suspect.")
    acc = check["accuracy"]
    diff = acc.get("difference")
    n_prob = acc["student"].get("n_problems", 0)
    t_mean, s_mean = (acc.get("teacher") or {}).get("mean"), acc["student"].get("mean")
    if diff and t_mean == s_mean and t_mean in (0.0, 1.0):
        lines.append(f"Teacher and student {'solved none' if t_mean == 0 else 'solved all'} of the {n_prob} problems: "
                     f"the sample says nothing about which is more accurate; pick "
                     f"{'easier problems or a longer --max-new-tokens' if t_mean == 0 else 'harder problems'}.")
    elif diff and diff.get("mean") is not None:
        d, ci = 100 * diff["mean"], diff["ci"]
        between = f"{abs(d):.1f} points {_iv(ci, 100, '{:+.1f}')}"
        lines.append({"higher": f"The teacher is more accurate than the student by {between} on {n_prob} problems.",
                      "lower": f"The student is more accurate than the teacher by {between}: a teacher below its "
                               f"student has little to teach.",
                      "within noise": f"Teacher and student accuracy cannot be told apart on {n_prob} problems: "
                                      f"difference {d:+.1f} points {_iv(ci, 100, '{:+.1f}')}; more problems (--n) "
                                      f"narrow it."}[diff["verdict"]])
    # C1 and C2 in the summary's own words (`s2dlab score` and the dashboard print the same sentences)
    lines += [line for key in ("c1", "c2") for line in ((summary.get(key) or {}).get("verdict") or "").splitlines()
              if line]
    entry, rvl = c1_c2(summary), check.get("reward_vs_length") or {}
    if entry.get("auroc") is not None and entry.get("length_auroc") is not None and rvl.get("difference") is not None:
        gap = f"{rvl['difference']:+.3f} {_iv(rvl['ci'], 1, '{:+.3f}')}"
        lines.append(f"The reward ranks better than length alone by {gap}." if rvl.get("verdict") == "higher" else
                     f"The reward does not rank measurably better than length alone ({gap}): length may explain "
                     f"the separation.")
    cut = check["sampled"]["student"]["unfinished"]
    if cut:
        lines.append(f"{cut} of {check['sampled']['student']['rollouts']} student rollouts hit the "
                     f"{check['sizes']['max_new_tokens']}-token limit unfinished (graded wrong); raise "
                     f"--max-new-tokens for a truer accuracy.")
    return lines


def _tok(value) -> str:
    token, tid = value
    return "none" if token is None else f"{token!r} {tid}"


def alignment_text(al: dict) -> str:
    """The tokenizer rows of the table."""
    rows = ["Tokenizers (teacher | student)"]
    v = al["vocabulary"]
    heads = al.get("heads")
    head_text = f"; heads {heads['teacher']:,} | {heads['student']:,} rows" if heads else ""
    rows.append(f"  {'vocabulary':<18} {v['teacher']:,} | {v['student']:,} tokens, "
                f"{'identical' if v['same'] else 'DIFFERENT'}{head_text}")
    for key in ("eos", "bos", "pad"):
        e = al[key]
        rows.append(f"  {key:<18} {_tok(e['teacher']):<26} {_tok(e['student']):<26} "
                    f"{'same' if e['same'] else 'DIFFERENT'}")
    a = al["added_on_encode"]
    rows.append(f"  {'added on encode':<18} {str(a['teacher']):<26} {str(a['student']):<26} "
                f"{'same' if a['same'] else 'DIFFERENT'}")
    ct = al["chat_template"]
    if not ct["teacher_has"] or not ct["student_has"]:
        text = (f"teacher {'has one' if ct['teacher_has'] else 'has NONE'}, student "
                f"{'has one' if ct['student_has'] else 'has NONE'}")
    elif ct["difference"] is None:
        text = (f"{'identical source' if ct['same_source'] else 'different sources'}; a {len(PROBE_CONVERSATION)}-turn "
                f"conversation renders the same ({ct['lines']} lines)")
    else:
        d = ct["difference"]
        text = (f"renders DIFFERENTLY from line {d['line']}: teacher {d['teacher']!r}, student {d['student']!r}")
    rows.append(f"  {'chat template':<18} {text}")
    th = al["thinking"]
    if th["takes_flag"]:
        ch = th["changes"]
        what = (f"; enable_thinking=False renders {ch['with_false']!r} where True renders {ch['with_true']!r}"
                if ch else "; the flag changes nothing in the generation prompt")
        rows.append(f"  {'thinking mode':<18} the template reads enable_thinking, used {th['used']}{what}")
    else:
        rows.append(f"  {'thinking mode':<18} the template has no enable_thinking flag")
    t = al.get("template_tokens")
    if t is not None:
        if not t["tokens"]:
            rows.append(f"  {'template tokens':<18} none of the tokenizer's added or special tokens in the rollouts")
        for k, o in enumerate(t["tokens"][:6]):
            label = "template tokens" if k == 0 else ""
            flag = "OUTLIER" if o["outlier"] else "ok"
            rows.append(f"  {label:<18} {o['token']!r:<14} in {o['policy']} rollouts x{o['count']:<4} mean "
                        f"{o['mean']:+.2f} nats, percentile {_pct_rank(o['percentile'])} of {o['n_rest']:,} "
                        f"ordinary tokens (median {o['median_rest']:+.2f})   {flag}")
    return "\n".join(rows)


def _pct_rank(p: float | None) -> str:
    return "-" if p is None else f"{100 * p:.1f}"


def _pct_iv(iv: dict | None) -> str:
    if not iv or iv.get("mean") is None:
        return "-"
    return f"{100 * iv['mean']:.1f}% {_iv(iv['ci'], 100, '{:.1f}')}"


def _speed(tokens: int, seconds: float | None) -> str:
    return f"{seconds:.1f} s" + (f" ({tokens / seconds:,.0f} tokens/s)" if seconds and tokens else "")


def check_table(check: dict, summary: dict, out: str | os.PathLike | None = None) -> str:
    """The whole table: alignment, self-check, estimates with intervals, verdict, time. Renders check.json and
    summary.json; computes nothing."""
    d, sz, m = check["data"], check["sizes"], check["models"]
    lines = [f"s2dlab check   teacher {check['teacher']} ({m['teacher']['parameters'] / 1e6:,.1f}M, "
             f"{m['teacher']['layers']} layers)",
             f"               student {check['student']} ({m['student']['parameters'] / 1e6:,.1f}M, "
             f"{m['student']['layers']} layers)",
             f"               {d['n']} of {d['of']} problems from {d['data']}; {sz['samples']} student + "
             f"{sz['teacher_samples']} teacher samples each at T={sz['temperature']}, at most "
             f"{sz['max_new_tokens']} new tokens", "", alignment_text(check["alignment"]), ""]
    sc = check["self_check"]
    lines.append(f"Self-check (the teacher scored against itself, {sc['rollouts']} rollouts, {sc['tokens']:,} tokens)")
    lines.append(f"  max |implicit reward| {sc['max_abs_implicit_reward']:.3g}, max reverse KL "
                 f"{sc['max_abs_reverse_kl']:.3g}, max forward KL {sc['max_abs_forward_kl']:.3g}   "
                 f"{'passed (exactly 0)' if sc['passed'] else 'FAILED (must be exactly 0)'}")
    lines += ["", "Estimates (95% intervals; C1 and C2 as summary.json defines them)"]
    acc = check["accuracy"]
    sa, ta = check["sampled"]["student"], check["sampled"]["teacher"]
    lines.append(f"  {'accuracy':<26} teacher {_pct_iv(acc.get('teacher'))} ({acc['teacher_rollouts']} rollouts)   "
                 f"student {_pct_iv(acc['student'])} ({acc['student_rollouts']} rollouts)")
    diff = acc.get("difference")
    if diff and diff.get("mean") is not None:
        lines.append(f"  {'teacher - student':<26} {100 * diff['mean']:+.1f} points {_iv(diff['ci'], 100, '{:+.1f}')}"
                     f", paired over {diff['n_problems']} problems: {diff['verdict']}")
    e = c1_c2(summary)
    if e:
        la = "-" if e.get("length_auroc") is None else f"{e['length_auroc']:.3f}"
        auroc = "-" if e.get("auroc") is None else f"{e['auroc']:.3f} {_iv(e.get('ci'))}"
        lines.append(f"  {'C1 AUROC (summed reward)':<26} {auroc}   length alone {la}   ({e.get('n_correct', 0)} "
                     f"correct / {e.get('n_incorrect', 0)} wrong student rollouts)")
        kl = e.get("mean_reverse_kl") or {}
        if kl.get("mean") is not None:
            lines.append(f"  {'C2 reverse KL(S || T)':<26} {kl['mean']:.3f} {_iv(kl['ci'])} nats/token over "
                         f"{kl['n_tokens']:,} tokens of {kl['n_rollouts']} student rollouts")
    lines.append(f"  {'unfinished':<26} student {sa['unfinished']} of {sa['rollouts']}, teacher {ta['unfinished']} of "
                 f"{ta['rollouts']} (cut at {sz['max_new_tokens']} tokens)")
    lines += ["", "Verdict"] + [f"  - {v}" for v in check["verdict"]]
    s = check["seconds"]
    scored = sa["tokens"] + ta["tokens"]
    lines += ["", "Time on this machine"]
    lines.append(f"  load: tokenizers {s.get('load_tokenizers', 0):.1f} s, teacher {s.get('load_teacher', 0):.1f} s, "
                 f"student {s.get('load_student', 0):.1f} s")
    lines.append(f"  sample: student {_speed(sa['tokens'], s.get('sample_student'))}, teacher "
                 f"{_speed(ta['tokens'], s.get('sample_teacher'))}")
    lines.append(f"  score: both models {_speed(scored, s.get('score'))}; self-check {s.get('self_check', 0):.1f} s; "
                 f"total {sum(s.values()):.1f} s")
    if out is not None:
        lines += ["", f"Written to {out}   (s2dlab app {Path(out).parent}   |   s2dlab score {out} --stage {STAGE})"]
    return "\n".join(lines)


def read_check(out: str | os.PathLike) -> tuple[dict, dict]:
    """check.json and the summary of a check's run folder."""
    from s2dlab.core.runs import open_run, read_json_file
    from s2dlab.workflow.summary import read_summary

    run = open_run(out)
    check = read_json_file(run.path / CHECK_FILE)
    if check is None:
        raise MissingError(f"{run.path}: no {CHECK_FILE}; this folder was not written by s2dlab check")
    return check, read_summary(run)


__all__ = ["run_check", "check_table", "read_check", "load_problems", "tokenizer_alignment", "token_outliers",
           "template_token_outliers", "self_check", "accuracies", "verdict",
           "first_differing_line", "alignment_text"]
