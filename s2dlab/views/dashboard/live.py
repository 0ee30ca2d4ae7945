"""The dashboard's views that run the saved models on demand: counterfactual branches, the KL estimator panel and
live scoring of a new problem.

The branches and the estimators work on one probe snapshot (stage, step) with the checkpoints that took it
(`s2dlab.instruments.lens.snapshot_pair`):
- `branch_candidates` / `branch_view`: at a clicked position of a student rollout, force the student's token or
  one of the teacher's stored top-k alternatives and let the student finish N times (`s2dlab.instruments.branches
  .branch_values`): each branch's success rate with its Wilson interval beside its implicit reward there.
  `probe_branch_view` asks the same across the snapshot (`probe_branch_values`): does a negative implicit reward
  predict that the student's token lowers the chance of success (AUROC)?
- `estimators_view`: per token the exact reverse / forward KL beside k1, k2, k3 and the top-k truncations with
  their tail masses (k = 1, 8, 64) and the gradient agreement; per snapshot the bias and spread table
  (`s2dlab.instruments.estimators.snapshot_estimators`).
- `live_view`: sample a completion of a typed problem from one stage's model and score it against another's.

All three refuse checkpoints above `models.LARGE_MODEL_BYTES` on a machine without a GPU unless the caller allows
it, and `s2dlab.instruments.branches` bounds samples, tokens and CPU cost itself; every refusal is an `AppError` or an
`s2dlab.core.errors.InputError` with a sentence for the status line. Nothing here imports gradio; the models and
tokenizers are loaded once and cached while their files are unchanged. All numbers come from those modules.
"""

from __future__ import annotations

import math

import pandas as pd

from s2dlab.core.runs import Run
from s2dlab.views import viz
from s2dlab.views.dashboard import models
from s2dlab.views.dashboard.models import (
    location_key,
    model_location,
    one_at_a_time,
    stage_model,
)
from s2dlab.views.dashboard.rows import is_student, missing, pick, rollout_header_html
from s2dlab.views.dashboard.store import LRU, AppError, Store, file_key, whole_number

ESTIMATES = LRU(8)

BRANCH_COLUMNS = ["token", "token id", "branch", "implicit reward", "p student", "p teacher", "n", "successes",
                  "success rate", "Wilson low", "Wilson high", "finished", "mean new tokens"]
PROBE_COLUMNS = ["n_positions", "n_scored", "n_drop", "n_rise", "n_flat", "auroc_drop", "auroc_drop_vs_rise",
                 "pearson_reward_delta", "mean_implicit_reward_drop", "mean_implicit_reward_rise", "n_samples",
                 "max_new_tokens", "seed"]
ESTIMATOR_COLUMNS = ["estimator", "n", "mean_exact", "mean_estimate", "bias", "sd", "se_bias", "rmse",
                     "relative_bias", "frac_negative"]
TAIL_COLUMNS = ["k", "student tail mass", "teacher tail mass"]


# --------------------------------------------------------------------------------------------------------------
# models of a snapshot


def snapshot_models(store: Store, run_id: str, stage: str, step) -> tuple[str, str, bool]:
    """(teacher stage, student stage, exact) of the checkpoints that took snapshot `stage`/`step`, both saved."""
    from s2dlab.core.errors import MissingError
    from s2dlab.instruments.lens import snapshot_pair

    run = store.open(run_id)
    store.stage_path(run, stage)
    try:
        teacher, student, exact = snapshot_pair(run, stage, int(step))
    except MissingError as e:
        raise AppError(str(e)) from e
    missing = [s for s in (student, teacher) if model_location(store, run, s) is None]
    if missing:
        raise AppError(f"Snapshot {stage}/{step} was taken by {student} (student) and {teacher} (teacher), and "
                       f"{' and '.join(missing)} saved no model in this run (no model/ folder), so it cannot be "
                       "re-run here.")
    return teacher, student, exact


def _grade_fn(run):
    from s2dlab.core.config import config_from_dict
    from s2dlab.core.data import grade_fn

    try:
        cfg = config_from_dict(run.info.get("config") or {})
    except Exception as e:  # a run.json from another version: grading is what cannot be done
        raise AppError(f"Cannot read the task from {run.path / 'run.json'} ({e}), so branches cannot be graded.") from e
    return grade_fn(cfg), cfg


def _student_row(store: Store, run_id: str, stage: str, step, prompt_id, sample_idx) -> pd.Series:
    df = store.snapshot(run_id, stage, step)
    if prompt_id is None or sample_idx is None:
        raise AppError("Pick a student rollout first.")
    row = pick(df[is_student(df)], str(prompt_id), "student", int(sample_idx))
    if row is None or int(row.get("sample_idx", -1)) != int(sample_idx):
        raise AppError(f"No student rollout {prompt_id}/#{sample_idx} in snapshot {stage}/{step}.")
    return row


def _position(row, position) -> int:
    """`position` as a token index of `row`, or AppError with a sentence: none yet, not a whole number, before the
    start, past the end."""
    n = len(row["token_ids"])
    if position is None or (isinstance(position, str) and not position.strip()):
        raise AppError("Click a token of the student rollout (or type its position) first.")
    try:
        x = float(position)
    except (TypeError, ValueError):
        raise AppError(f"Position {position!r} is not a number: type a token's position, 0..{n - 1}.") from None
    if not x.is_integer():
        raise AppError(f"Position {x:g} is not a whole number: type a token's position, 0..{n - 1}.")
    t = int(x)
    if t < 0:
        raise AppError(f"Position {t} is before the start of this rollout: positions run 0..{n - 1} ({n} tokens).")
    if t >= n:
        raise AppError(f"Position {t} is past the end of this rollout: it has {n} tokens, positions 0..{n - 1}.")
    return t


def _count(value, what: str, high: int) -> int:
    """A whole number in 1..high (N continuations, max new tokens), else AppError naming `what` and the bound."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AppError(f"{what}={value!r} is not a whole number: pick 1..{high}.") from None
    if not x.is_integer():
        raise AppError(f"{what}={x:g} is not a whole number: pick 1..{high}.")
    return int(x)


# --------------------------------------------------------------------------------------------------------------
# counterfactual branches


def branch_candidates(store: Store, run_id: str, stage: str, step, prompt_id, sample_idx, position
                      ) -> tuple[list[tuple[str, str]], list[str], str]:
    """(choices as (label, token id), the default selection, a note) at `position` of a student rollout: the
    student's own token and the teacher's stored top-k alternatives there, each with both models' probabilities."""
    row = _student_row(store, run_id, stage, step, prompt_id, sample_idx)
    t = _position(row, position)
    run = store.open(run_id)
    vocab = store.vocab(run, store.snapshot(run_id, stage, step))
    y_t = int(row["token_ids"][t])
    name = lambda i: repr(vocab.get(int(i), f"#{i}"))  # noqa: E731
    p_s = math.exp(float(row["student_logprob"][t])) if row.get("student_logprob") is not None else None
    p_t = math.exp(float(row["teacher_logprob"][t])) if row.get("teacher_logprob") is not None else None
    ir = row.get("implicit_reward")
    ir_t = None if ir is None else float(ir[t])
    choices = [(f"{name(y_t)} the student's token (pS {p_s:.2f}, pT {p_t:.2f})" if p_s is not None and p_t is not None
                else f"{name(y_t)} the student's token", str(y_t))]
    ids, lps = row.get("teacher_topk_ids"), row.get("teacher_topk_logprobs")
    if ids is not None and lps is not None and len(ids) > t:
        for rank, (i, lp) in enumerate(zip(ids[t], lps[t])):
            if int(i) < 0 or int(i) == y_t:
                continue
            choices.append((f"{name(i)} teacher's #{rank + 1} (pT {math.exp(float(lp)):.2f})", str(int(i))))
    default = [c[1] for c in choices[:3]]
    note = (f"Position **{t}** of {prompt_id}/#{sample_idx}: the student wrote {name(y_t)}"
            + ("" if ir_t is None else f", implicit reward {ir_t:+.3f}") + ". Pick the branches to sample.")
    return choices, default, note


@one_at_a_time
def branch_view(store: Store, run_id: str, stage: str, step, prompt_id, sample_idx, position, candidates,
                n_samples=16, max_new_tokens=None, seed=0, allow_large: bool = False):
    """(table, figure, note): `branch_values` at `position` for the chosen candidate token ids, N continuations each
    sampled now from the student checkpoint of the snapshot, scored with its teacher checkpoint."""
    from s2dlab.instruments.branches import (
        MAX_BRANCH_SAMPLES,
        MAX_BRANCH_TOKENS,
        branch_values,
    )
    from s2dlab.instruments.lens import prompt_settings, with_prompt_ids
    from s2dlab.views.viz import branches_figure

    row = _student_row(store, run_id, stage, step, prompt_id, sample_idx)
    t = _position(row, position)
    n = _count(n_samples, "N", MAX_BRANCH_SAMPLES)
    if not 1 <= n <= MAX_BRANCH_SAMPLES:
        raise AppError(f"N={n} continuations per branch is outside 1..{MAX_BRANCH_SAMPLES} (MAX_BRANCH_SAMPLES).")
    run = store.open(run_id)
    grade, cfg = _grade_fn(run)
    max_new = _count(max_new_tokens or cfg.generation.max_new_tokens, "max new tokens", MAX_BRANCH_TOKENS)
    if not 1 <= max_new <= MAX_BRANCH_TOKENS:
        raise AppError(f"max new tokens={max_new} is outside 1..{MAX_BRANCH_TOKENS} (MAX_BRANCH_TOKENS).")
    ids = [int(c) for c in (candidates or [])]
    if not ids:
        raise AppError("Tick at least one branch (the student's token or a teacher alternative).")
    seed = whole_number(0 if seed in (None, "") else seed, "the branch seed", 0, 2 ** 31 - 1)
    teacher_stage, student_stage, exact = snapshot_models(store, run_id, stage, step)
    models.guard_size(store, run, (student_stage, teacher_stage), allow_large)
    tok = models.run_tokenizer(store, run)
    student, teacher = stage_model(store, run, student_stage), stage_model(store, run, teacher_stage)
    rollout = with_prompt_ids([row.to_dict()], tok, *prompt_settings(run))[0]
    result = branch_values(student, tok, rollout, t, grade, candidates=ids, n_samples=n, max_new_tokens=max_new,
                           teacher=teacher, seed=seed)
    table = pd.DataFrame([{
        "token": repr(b["token"]), "token id": b["token_id"],
        "branch": "student's token" if b["is_student_token"] else (
            f"teacher #{b['teacher_rank'] + 1}" if b["teacher_rank"] is not None else "alternative"),
        "implicit reward": _round(b["implicit_reward"], 3), "p student": _exp(b["student_logprob"]),
        "p teacher": _exp(b["teacher_logprob"]), "n": b["n"], "successes": b["successes"],
        # a rate of n <= 64 draws has a Wilson interval wider than 0.1: two decimals say all it supports
        "success rate": _round(b["success_rate"], 2), "Wilson low": _round(b["wilson_low"], 2),
        "Wilson high": _round(b["wilson_high"], 2), "finished": _round(b["finished_rate"], 2),
        "mean new tokens": _round(b["mean_continuation_tokens"], 1)} for b in result["branches"]],
        columns=BRANCH_COLUMNS)
    note = (f"Sampled from **{student_stage}**, implicit rewards from **{teacher_stage}**"
            + ("" if exact else f" (the stage's final checkpoints stand in: step {step} is mid-stage)")
            + f"; seed {result['seed']}, {n} continuations per branch, up to {max_new} new tokens.")
    return table, branches_figure(result), note


@one_at_a_time
def probe_branch_view(store: Store, run_id: str, stage: str, step, positions_per_rollout: int = 2,
                      n_samples: int = 8, max_new_tokens=None, seed: int = 0, allow_large: bool = False,
                      progress: bool = True) -> tuple[pd.DataFrame, str]:
    """(one-row table, note): `probe_branch_values` over the snapshot's student rollouts: the AUROC with which a
    negative implicit reward picks the positions where the student's own token lowers the success rate."""
    from s2dlab.instruments.branches import probe_branch_values
    from s2dlab.instruments.lens import prompt_settings, with_prompt_ids

    seed = whole_number(0 if seed in (None, "") else seed, "the seed", 0, 2 ** 31 - 1)
    df = store.snapshot(run_id, stage, step)
    rows = df[is_student(df)].to_dict("records")
    if not rows:
        raise AppError(f"Snapshot {stage}/{step} has no student rollouts to branch.")
    run = store.open(run_id)
    grade, cfg = _grade_fn(run)
    teacher_stage, student_stage, exact = snapshot_models(store, run_id, stage, step)
    models.guard_size(store, run, (student_stage, teacher_stage), allow_large)
    tok = models.run_tokenizer(store, run)
    student, teacher = stage_model(store, run, student_stage), stage_model(store, run, teacher_stage)
    rollouts = with_prompt_ids(rows, tok, *prompt_settings(run))
    res = probe_branch_values(student, tok, rollouts, grade, positions_per_rollout=int(positions_per_rollout),
                              n_samples=int(n_samples), max_new_tokens=int(max_new_tokens or cfg.generation
                                                                            .max_new_tokens),
                              teacher=teacher, seed=seed, progress=progress)
    s = res["summary"]
    table = pd.DataFrame([{k: _round(v) if isinstance(v, float) else v for k, v in s.items()}], columns=PROBE_COLUMNS)
    note = (f"{s['n_positions']} positions of {len(rows)} student rollouts, {s['n_samples']} continuations per side: "
            f"AUROC of −implicit reward for 'the student's token lowers the success rate' "
            f"{_fmt(s['auroc_drop'])} over all positions, {_fmt(s['auroc_drop_vs_rise'])} over drops against rises "
            f"({s['n_drop']} drops, {s['n_rise']} rises, {s['n_flat']} flat; 0.5 = no signal). Models: "
            f"{student_stage} / {teacher_stage}" + ("" if exact else " (final checkpoints stand in)") + ".")
    return table, note


# --------------------------------------------------------------------------------------------------------------
# the estimator panel


def _estimates(store: Store, run_id: str, stage: str, step, allow_large: bool) -> dict:
    from s2dlab.core.errors import MissingError
    from s2dlab.instruments.estimators import snapshot_estimators

    run = store.open(run_id)
    teacher_stage, student_stage, _ = snapshot_models(store, run_id, stage, step)
    models.guard_size(store, run, (student_stage, teacher_stage), allow_large)
    path = run.rollout_path(stage, int(step))
    key = (str(run.path), stage, int(step), file_key(path),
           *(location_key(model_location(store, run, s)) for s in (student_stage, teacher_stage)))

    def make():
        try:
            return snapshot_estimators(run, stage, int(step), with_rows=True,
                                       dtype="auto" if models.cuda() else "float32")
        except MissingError as e:
            raise AppError(str(e)) from e

    return ESTIMATES.get(key, make)


def estimator_rollouts(store: Store, run_id: str, stage: str, step) -> list[tuple[str, str]]:
    """(label, "prompt_id/sample_idx") of the snapshot's student rollouts (what the estimators re-score)."""
    df = store.snapshot(run_id, stage, step)
    out = []
    for _, r in df[is_student(df)].iterrows():
        key = f"{r['prompt_id']}/{int(r['sample_idx'])}"
        ok = "" if missing(r.get("correct")) else (" ✓" if bool(r["correct"]) else " ✗")
        out.append((f"{key}{ok} · {len(r['token_ids'])} tokens", key))
    return out


@one_at_a_time
def estimators_view(store: Store, run_id: str, stage: str, step, rollout: str | None = None,
                    allow_large: bool = False):
    """(bias table, tail-mass table, gradient line, per-token table, figure, note) for one snapshot, the per-token
    part for `rollout` ("prompt_id/sample_idx", default the first)."""
    from s2dlab.instruments.estimators import TOPK, estimator_names
    from s2dlab.views.viz import estimators_figure

    if step in (None, ""):
        raise AppError("Pick a stage and snapshot step first.")
    est = _estimates(store, run_id, stage, step, allow_large)
    s = est["summary"]
    bias = pd.DataFrame([_bias_row(name, s["estimators"][name]) for name in estimator_names()],
                        columns=ESTIMATOR_COLUMNS)
    tail = pd.DataFrame([{"k": k, "student tail mass": _round(s["tail_mass"][f"top{k}"]["student"], 6),
                          "teacher tail mass": _round(s["tail_mass"][f"top{k}"]["teacher"], 6)} for k in TOPK])
    g = s["gradient"]
    grad = (f"**Gradient agreement** over {g['n_defined']} tokens: mean cosine {_fmt(g['mean_cosine'])}, median "
            f"{_fmt(g['median_cosine'])}; positive cosine on {_fmt_pct(g['frac_positive_cosine'])} of tokens, same "
            f"sign on the sampled token's logit on {_fmt_pct(g['frac_same_sign_at_token'])}.")
    rows = est["rows"]
    keys = [f"{r['prompt_id']}/{int(r['sample_idx'])}" for r in rows]
    if not rows:
        raise AppError(f"Snapshot {stage}/{step} has no student rollouts to estimate on.")
    i = keys.index(rollout) if rollout in keys else 0
    row = rows[i]
    df = store.snapshot(run_id, stage, step)
    srow = pick(df[is_student(df)], str(row["prompt_id"]), "student", int(row["sample_idx"]))
    tokens = list(srow["tokens"]) if srow is not None else [""] * row["length"]
    cols = ["reverse_kl", "forward_kl", "k1", "k2", "k3"] + [f"top{k}_{v}" for k in TOPK for v in ("tail", "renorm",
                                                                                                  "raw")]
    cols += [f"top{k}_tail_mass_{who}" for k in TOPK for who in ("student", "teacher")] + ["grad_cosine"]
    per_token = pd.DataFrame({"position": range(row["length"]), "token": [repr(t) for t in tokens],
                              **{c: [_round(v, 5) for v in row[c]] for c in cols}})
    note = (f"Snapshot **{stage} · step {step}** ({s['n_rollouts']} student rollouts, {s['n_tokens']} tokens) "
            f"re-scored by **{est['student']}** (student) and **{est['teacher']}** (teacher)"
            + ("." if est["models_match_snapshot"] else ": step is mid-stage, so the stage's final checkpoints stand "
               "in and k1 / k3 are no longer unbiased for it."))
    return bias, tail, grad, per_token, estimators_figure(row, tokens), note


# --------------------------------------------------------------------------------------------------------------
# live scoring: a typed problem, sampled and scored now


def live_warning(store: Store, run_id: str, student_stage: str | None, teacher_stage: str | None) -> str:
    """A warning when the chosen models are large and there is no GPU, else ""."""
    if not student_stage or not teacher_stage:
        return ""
    return models.large_warning(store, store.open(run_id), (student_stage, teacher_stage))


@one_at_a_time
def live_score(run: Run, student_stage: str, teacher_stage: str, problem: str, *, answer: str | None = None,
               max_new_tokens: int | None = None, temperature: float = 1.0, seed: int = 0,
               store: Store | None = None) -> dict:
    """Sample one completion of `problem` from `student_stage`'s checkpoint and score it against
    `teacher_stage`'s on the spot; returns one run-store rollout row (see docs/DESIGN.md).

    Uses `s2dlab.core.generation.sample` and `s2dlab.core.scoring.score_rollouts` (imported here, so the app starts without
    loading torch). The checkpoints are the stages' models as their records say (`models.model_location`). The
    prompt is formatted as in the run's config (suffix, chat-template options); grading needs `answer`.
    """
    from s2dlab.core.generation import sample
    from s2dlab.core.models import set_generation_defaults
    from s2dlab.core.rewards import grade as _grade
    from s2dlab.core.scoring import score_rollouts

    problem = (problem or "").strip()
    if not problem:
        raise AppError("Type a problem first.")
    store = store or Store(run.path.parent)
    locations = {s: model_location(store, run, s) for s in (student_stage, teacher_stage)}
    for stage, location in locations.items():
        if location is None:
            raise AppError(f"Stage {stage!r} has no model in this run ({run.path}): no model/ folder and no "
                           "model_source in its stage record; live scoring needs a checkpoint.")
    cfg_info = run.info.get("config") or {}
    task = cfg_info.get("task") or {}
    gen = cfg_info.get("generation") or {}
    tiny = (cfg_info.get("models") or {}).get("student", "tiny") == "tiny"
    chat_kwargs = {} if tiny else {"enable_thinking": bool(gen.get("enable_thinking", False))}
    tokenizer = models.stage_tokenizer(store, run, student_stage, locations[student_stage])
    loaded = {}
    for stage, location in locations.items():
        loaded[stage] = models.load_live_model(location)
        set_generation_defaults(loaded[stage], tokenizer)
    record = {"id": "live", "prompt": problem, "answer": answer}
    rollouts = sample(loaded[student_stage], tokenizer, [record], n=1,
                      max_new_tokens=int(max_new_tokens or gen.get("max_new_tokens", 64)), temperature=temperature,
                      top_p=1.0, top_k=0, seed=seed, prompt_suffix=task.get("prompt_suffix", "") or "",
                      chat_template_kwargs=chat_kwargs, progress=False)
    grade = None
    if answer:
        integer_only = task.get("name", "arithmetic") == "arithmetic"
        grade = lambda completion, gold: _grade(completion, gold, integer_only=integer_only)  # noqa: E731
    rows = score_rollouts(loaded[student_stage], loaded[teacher_stage], tokenizer, rollouts, grade_fn=grade,
                          answers={"live": answer} if answer else None, stage=student_stage, step=0)
    return rows[0]


def live_setup(store: Store, run_id: str) -> dict:
    """What the Live tab offers for a run: `students` and `teachers` (the stages with a model, by their recorded
    role), the default pair `student` / `teacher` (the workflow's final student and its RL teacher,
    `models.default_pair`), `examples` (label, index) of `problems` from the run's eval set (the problems its probe
    snapshots sample: `s2dlab.core.data.probe_records`) with the first as `problem` / `answer`, and a `note`."""
    run = store.open(run_id)
    students, teachers = models.role_choices(store, run)
    student, teacher = models.default_pair(store, run, students, teachers)
    problems = eval_problems(store, run_id)
    note = "" if students and teachers else ("This run has no checkpoints (no `model/` folders, no linked models), "
                                             "so live scoring is off for it.")
    warn = live_warning(store, run_id, student, teacher)
    return {"students": students, "teachers": teachers, "student": student, "teacher": teacher,
            "problems": problems, "examples": [(f"{p['prompt']}  (gold {p['answer']})", i)
                                               for i, p in enumerate(problems)],
            "problem": problems[0]["prompt"] if problems else "", "answer": problems[0]["answer"] if problems else "",
            "note": "\n\n".join(x for x in (note, warn) if x)}


def eval_problems(store: Store, run_id: str, limit: int = 32) -> list[dict]:
    """`{"prompt", "answer"}` of the run's eval problems its probe snapshots hold (every probe samples the first
    problems of the first eval set), first seen first, at most `limit`."""
    seen: dict[str, dict] = {}
    for stage in store.snapshot_stages(run_id):
        try:
            df = store.snapshot(run_id, stage)
        except AppError:  # a damaged snapshot: the others still name problems
            continue
        for _, row in df[is_student(df)].iterrows():
            prompt = str(row.get("prompt") or "").strip()
            if prompt and prompt not in seen:
                seen[prompt] = {"prompt": prompt, "answer": "" if missing(row.get("answer")) else str(row["answer"])}
        if len(seen) >= limit:
            break
    return list(seen.values())[:limit]


def live_view(store: Store, run_id: str, student_stage: str, teacher_stage: str, problem: str,
              answer: str | None = None, allow_large: bool = False, seed: int = 0):
    """(html, figure, note) for the Live tab, the sample drawn with `seed` (named in the header); refuses large
    models on a CPU unless `allow_large`."""
    run = store.open(run_id)
    warning = live_warning(store, run_id, student_stage, teacher_stage)
    if warning and not allow_large:
        raise AppError(warning)
    row = live_score(run, student_stage, teacher_stage, problem, answer=(answer or "").strip() or None, seed=seed,
                     store=store)
    vocab = store.vocab(run, pd.DataFrame([row]))
    page = rollout_header_html(pd.Series(row), f"{student_stage} (scored by {teacher_stage}, seed {seed})")
    page += viz.rollout_heatmap_html(row, id_to_text=vocab, max_height=420)
    return page, viz.per_token_figure(row), warning or "Sampled and scored."


# --------------------------------------------------------------------------------------------------------------
# formats


def _round(v, digits: int = 4):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return round(float(v), digits)


def _exp(lp):
    return None if lp is None else round(math.exp(float(lp)), 3)


def _bias_row(name: str, est: dict) -> dict:
    """One estimator's row, each mean and the bias to two significant digits of its 95% interval's width
    (4 standard errors of the bias), the spreads and shares to as many decimals and at least three."""
    se = est.get("se_bias")
    width = 4 * se if isinstance(se, float) and math.isfinite(se) and se > 0 else None
    digits = 4 if width is None else max(0, 1 - math.floor(math.log10(width)))
    means = ("mean_exact", "mean_estimate", "bias", "se_bias")
    return {"estimator": name, **{k: (_round(v, digits if k in means else max(3, digits)) if isinstance(v, float)
                                      else v) for k, v in est.items()}}


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt_pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.0f}%"
