"""Evaluation: avg@k and pass@k with math-verify, the same prompts and sampling for every model compared.

avg@k is the mean correctness over k samples per problem (the paper's "avg@16"); pass@k the share of problems
with at least one correct sample among n (the unbiased estimator of Chen et al. 2021, which with n=k is just
"any correct"). Samples use a fixed seed, so two checkpoints are compared on the same random stream. Greedy
accuracy is reported as well when `eval.greedy` is on.

    s2dlab eval runs/tiny                 # every finished stage of a run
    s2dlab eval runs/tiny --stage opd     # one stage
"""

from __future__ import annotations

from math import comb

from s2dlab.core.config import Config
from s2dlab.core.errors import InputError
from s2dlab.core.generation import sample
from s2dlab.core.runs import Run

EVAL_SEED = 1234  # one sampling stream for every model compared


def pass_at_k(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n, c of them correct, is correct)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise InputError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def summarize(correct_by_problem: dict[str, list[bool]], k: int) -> dict:
    """avg@k and pass@k over problems, each with exactly `k` graded samples."""
    if not correct_by_problem:
        raise ValueError("no graded samples to summarize")
    per = list(correct_by_problem.values())
    if any(len(c) != k for c in per):
        raise ValueError(f"every problem needs {k} samples, got lengths {sorted({len(c) for c in per})}")
    return {f"avg@{k}": sum(sum(c) / k for c in per) / len(per),
            f"pass@{k}": sum(pass_at_k(k, sum(c), k) for c in per) / len(per),
            "k": k, "n_problems": len(per)}


def evaluate_model(cfg: Config, model, tokenizer, sets: dict[str, list[dict]], progress: bool = True) -> dict:
    """`{set: {"avg@k", "pass@k", "greedy", "k", "n_problems", "mean_length", "per_problem", "greedy_per_problem"}}`
    for one model. `per_problem` maps each problem id to its number of correct samples out of k (what intervals over
    problems and paired comparisons between arms are computed from), `greedy_per_problem` to 0/1."""
    from s2dlab.core.data import chat_kwargs, grade_fn

    e, g = cfg.eval, cfg.generation
    grade = grade_fn(cfg)
    out = {}
    for name, records in sets.items():
        answers = {r["id"]: r["answer"] for r in records}
        kw = dict(max_new_tokens=g.max_new_tokens, batch_size=g.batch_size, prompt_suffix=cfg.task.prompt_suffix,
                  chat_template_kwargs=chat_kwargs(cfg), progress=progress, backend=g.backend)
        rollouts = sample(model, tokenizer, records, n=e.n_samples, temperature=e.temperature, top_p=e.top_p,
                          top_k=e.top_k, seed=EVAL_SEED, **kw)
        by_problem: dict[str, list[bool]] = {}
        for r in rollouts:
            by_problem.setdefault(r.prompt_id, []).append(grade(r.completion, answers[r.prompt_id]))
        res = summarize(by_problem, e.n_samples)
        res["mean_length"] = sum(len(r.completion_ids) for r in rollouts) / len(rollouts)
        res["per_problem"] = {pid: int(sum(c)) for pid, c in by_problem.items()}
        if e.greedy:
            greedy = sample(model, tokenizer, records, n=1, temperature=0, seed=EVAL_SEED, **kw)
            res["greedy_per_problem"] = {r.prompt_id: int(grade(r.completion, answers[r.prompt_id])) for r in greedy}
            res["greedy"] = sum(res["greedy_per_problem"].values()) / len(greedy)
        out[name] = res
    return out


def headline(result: dict, cfg: Config) -> float | None:
    """The one number an arm is ranked by: avg@k on the first eval set."""
    first = result.get(cfg.eval.sets[0]) if result else None
    return first.get(f"avg@{cfg.eval.n_samples}") if first else None


def evaluate_stage(cfg: Config, run: Run, stage: str, force: bool = False, progress: bool = True) -> dict:
    """Evaluate a finished stage's model and write `<stage>/eval.json` (reused unless `force`)."""
    from s2dlab.core.data import eval_sets
    from s2dlab.core.distributed import device_of
    from s2dlab.core.runs import RunStoreError
    from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

    sets = eval_sets(cfg)
    if not force:  # --force rewrites eval.json without reading it, so a corrupt one can be repaired
        try:
            prev = run.eval(stage)
        except RunStoreError as err:
            raise RunStoreError(f"{err}; rewrite it with: s2dlab eval {run.path} --stage {stage} --force") from None
        if prev and prev.get("config") == _eval_key(cfg, sets):
            return prev
    tokenizer = tokenizer_for(cfg, run)
    if cfg.generation.backend == "vllm":
        model = run.stage(stage).model or str(run.model_dir(stage))  # vLLM loads it by path or hub id
    else:
        model = load_stage_model(cfg, run, stage, tokenizer, device_of(cfg))
    result = {"stage": stage, "config": _eval_key(cfg, sets),
              "sets": evaluate_model(cfg, model, tokenizer, sets, progress=progress)}
    result["accuracy"] = headline(result["sets"], cfg)
    run.write_eval(stage, result)
    return result


def _eval_key(cfg: Config, sets: dict[str, list[dict]] | None = None) -> dict:
    """What an eval.json is reused for: the eval settings and a digest of the problems themselves (`data`), so an
    evaluation made on other problems (a shipped base model's, under another task.eval_size, task.family_tail or
    data seed) is never reused."""
    from s2dlab.core.data import eval_sets, records_digest

    e = cfg.eval
    sets = eval_sets(cfg) if sets is None else sets
    # "format": eval.json files written before per-problem counts existed are evaluated again
    return {"format": 2, "sets": list(e.sets), "n_samples": e.n_samples, "temperature": e.temperature, "top_p": e.top_p,
            "top_k": e.top_k, "limit": e.limit, "max_new_tokens": cfg.generation.max_new_tokens,
            "data": records_digest(sets)}
