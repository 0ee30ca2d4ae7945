"""One summary per run: every number a reader shows, computed here once and written after every stage.

`summary.json` holds, for a run folder: each stage's evaluation with its interval and what it spent; each arm's
accuracy with its interval and its budget (labeled problems, student optimizer steps and sequences, teacher steps
and the sequences the teacher sampled or scored for it); the paper's predictions as paired comparisons with
verdicts; C1 and C2 measured on fixed rollouts with intervals; the token quadrants of each stage's last snapshot;
and the metric names each stage logged. `results.json` is its arms table with the C1/C2 verdicts (the same
numbers). `s2dlab score`, `s2dlab check`, the dashboard and the notebooks read it (`read_summary`) and never
recompute; a run written before the summary existed is summarised on first read. The C1 and C2 sentences
(`c1_verdict`, `c2_verdict`) are written here once, and every reader prints them as they are.

The fixed rollouts (`diagnostics/`, sampled and scored by `s2dlab.workflow.measure` as stages finish; this module only reads
them, and loads no model):
- `diagnostics/c1/rollouts.jsonl`: `probe.c1_samples` base-student rollouts of each of the first `probe.c1_prompts`
  eval problems, sampled once per seed;
- `diagnostics/c1/<teacher stage>.parquet`: those rollouts scored by each teacher (the base teacher, the RL
  teachers, the SFT teacher): C1 is how much better the RL teacher's implicit reward ranks them than the raw one's;
- `diagnostics/c2/<student stage>.parquet`: rollouts of a distilled student on the same problems scored by its
  teacher. C2 before a warmup is the base student's rollouts scored by that teacher (the C1 file), so both ends of
  the warmup are measured on samples of the same size.
"""

from __future__ import annotations

from pathlib import Path

from s2dlab.core import diagnostics as dg
from s2dlab.core.config import Config, config_from_dict
from s2dlab.core.runs import Run, atomic_write_json, open_run
from s2dlab.workflow.arms import ARMS, CLAIMS, ordered

SUMMARY_FILE = "summary.json"
C1_ROLLOUTS = "diagnostics/c1/rollouts.jsonl"
FORMAT = 3  # summaries of an older format are computed again on read


def c1_path(teacher: str) -> str:
    return f"diagnostics/c1/{teacher}.parquet"


def c2_path(student: str) -> str:
    return f"diagnostics/c2/{student}.parquet"


# --- accounting --------------------------------------------------------------------------------------------------------

def lineage(run: Run, stage: str) -> list[tuple[str, dict]]:
    """Every stage an arm's model depends on: its own chain of `init`s and, for each distillation stage, its
    teacher's chain (stage 0 included)."""
    seen, out, todo = set(), [], [stage]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        info = run.stage(name).fields
        out.append((name, info))
        todo += [v for v in (info.get("init"), info.get("teacher")) if v]
    return out


def budget(run: Run, stage: str) -> dict:
    """What the arm ending in `stage` spent. Stage 0 (pretraining the base models) is not counted: every arm shares
    it. Labels count distinct labeled problems (the halves are disjoint, the pool holds both)."""
    out = {"labels": 0, "labels_kind": [], "student_steps": 0, "student_sequences": 0, "teacher_steps": 0,
           "teacher_sequences": 0, "teacher_scored_sequences": 0, "stages": []}
    label_sets = {}
    for name, info in lineage(run, stage):
        if name.startswith("base_"):
            continue
        out["stages"].append(name)
        role = info.get("role")
        if role in ("student", "teacher"):
            out[f"{role}_steps"] += int(info.get("steps") or 0)
            out[f"{role}_sequences"] += int(info.get("sequences") or 0)
        if info.get("teacher"):  # distillation: the teacher sampled (warmup cache) or scored (OPD) these
            out["teacher_scored_sequences"] += int(info.get("rollouts_used") or info.get("sequences") or 0)
        if info.get("labels"):
            label_sets[info["labels"]["set"]] = info["labels"]["n"]
            if info["labels"]["kind"] not in out["labels_kind"]:
                out["labels_kind"].append(info["labels"]["kind"])
    out["labels"] = label_sets["pool"] if "pool" in label_sets else sum(label_sets.values())
    out["label_sets"] = sorted(label_sets)
    out["stages"].sort()
    return out


# --- the summary of one run --------------------------------------------------------------------------------------------

def _eval_entry(cfg: Config, ev: dict | None) -> dict:
    if not ev or cfg.eval.sets[0] not in ev["sets"]:  # not evaluated, or on other sets (a stage copied in by hand)
        return {}
    first = ev["sets"][cfg.eval.sets[0]]
    k = first.get("k", cfg.eval.n_samples)
    out = {"accuracy": ev["accuracy"], "greedy": first.get("greedy"), f"pass@{k}": first.get(f"pass@{k}"),
           "sets": {name: res.get(f"avg@{k}") for name, res in ev["sets"].items()}}
    if first.get("per_problem"):
        out["interval"] = dg.accuracy_interval([{p: c / k for p, c in first["per_problem"].items()}])
    return out


def per_problem(cfg: Config, run: Run, stage: str) -> dict | None:
    """`{problem id: avg@k}` of a stage on the first eval set (what intervals and paired comparisons use)."""
    ev = run.eval(stage)
    if not ev or cfg.eval.sets[0] not in ev["sets"]:
        return None
    first = ev["sets"][cfg.eval.sets[0]]
    k = first.get("k", cfg.eval.n_samples)
    return {p: c / k for p, c in first["per_problem"].items()} if first.get("per_problem") else None


def claims(per_seed: dict[str, list[dict]]) -> list[dict]:
    """The paper's predictions as paired differences between arms (`per_seed[arm]` = per-problem scores per seed).

    `status`: "holds" when the interval of the difference sits where the paper says, "reversed" when it sits on the
    other side, "within noise" when it holds 0 (for P1, "not higher" holds unless the raw bridge is significantly
    higher; for the replay, "within noise" is what the paper predicts).
    """
    out = []
    for cid, text, a, b, predicted in CLAIMS:
        if a not in per_seed or b not in per_seed:
            continue
        diff = dg.paired_difference(per_seed[a], per_seed[b])
        v = diff["verdict"]
        if predicted == "not higher":
            status = "reversed" if v == "higher" else "holds"
        elif predicted == "within noise":
            status = "holds" if v == "within noise" else "reversed" if v == "lower" else "does not hold"
        else:
            status = "holds" if v == predicted else "within noise" if v == "within noise" else "reversed"
        out.append({"id": cid, "claim": text, "a": a, "b": b, "predicted": predicted, "difference": diff["mean"],
                    "ci": diff["ci"], "verdict": v, "status": status, "n_seeds": diff["n_seeds"]})
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(ci, signed: bool = True) -> str:
    if not ci or ci[0] is None:
        return ""
    return f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


# the columns of the fixed-rollout files the summary reads (reading every column of every file was most of its time)
DIAG_COLUMNS = ["prompt_id", "sample_idx", "correct", "sum_implicit_reward", "implicit_reward", "reverse_kl",
                "tokens", "first_error_char"]
QUADRANT_COLUMNS = ["policy", "implicit_reward", "student_topk_ids", "student_topk_logprobs", "teacher_topk_ids"]


class _Rows:
    """Each diagnostics file read once per summary (C2 reads the C1 files again as its "before")."""

    def __init__(self, run: Run):
        self.run, self.cache = run, {}

    def __call__(self, relpath: str) -> list[dict] | None:
        if relpath not in self.cache:
            self.cache[relpath] = self.run.read_rows(relpath, DIAG_COLUMNS)
        return self.cache[relpath]


def c1_summary(run: Run, stages: dict, rows: _Rows | None = None) -> dict:
    """C1 on the fixed rollouts: per teacher its AUROC and first-error reward; each trained teacher against the raw
    (base) teacher as an AUROC difference with a paired bootstrap interval."""
    read = rows or _Rows(run)
    teachers = {}
    rows_by = {}
    for name in run.stages():
        scored = read(c1_path(name))
        if scored is None:
            continue
        graded = [r for r in scored if r.get("correct") is not None]
        rows_by[name] = {(r["prompt_id"], int(r["sample_idx"])): r for r in graded}
        entry = {"rollouts": len(graded), "accuracy": stages.get(name, {}).get("accuracy"),
                 **dg.auroc_with_ci([r["sum_implicit_reward"] for r in graded], [r["correct"] for r in graded],
                                    [r["prompt_id"] for r in graded]),
                 "length_auroc": dg.length_auroc(graded),
                 "mean_reverse_kl": dg.mean_reverse_kl(graded)}
        if any(r.get("first_error_char") is not None for r in graded):
            entry["first_error"] = dg.first_error_reward(graded, {
                (r["prompt_id"], int(r["sample_idx"])): r.get("first_error_char") for r in graded})
        teachers[name] = entry
    out = {"teachers": teachers, "comparisons": []}
    raw = "base_teacher"
    if raw in rows_by:
        for name in rows_by:
            if name == raw:
                continue
            keys = sorted(set(rows_by[name]) & set(rows_by[raw]))
            cmp = dg.auroc_difference([rows_by[name][k]["sum_implicit_reward"] for k in keys],
                                      [rows_by[raw][k]["sum_implicit_reward"] for k in keys],
                                      [rows_by[raw][k]["correct"] for k in keys], [k[0] for k in keys])
            out["comparisons"].append({"teacher": name, "raw": raw, **cmp})
    out["verdict"] = c1_verdict(out)
    return out


def c1_verdict(c1: dict) -> str:
    lines = []
    t = c1["teachers"]
    for cmp in c1["comparisons"]:
        name, d = cmp["teacher"], cmp["difference"]
        if d is None:
            lines.append(f"C1 ({name}): cannot judge: the fixed rollouts are all correct or all wrong.")
            continue
        head = {"higher": f"{name} is more reward-shaped than the raw teacher",
                "lower": f"{name} is less reward-shaped than the raw teacher",
                "within noise": f"{name} and the raw teacher rank rollouts alike (within noise)"}[cmp["verdict"]]
        line = (f"C1: {head}: AUROC of the summed implicit reward {cmp['a']:.3f} vs {cmp['b']:.3f}, difference "
                f"{d:+.3f}{_ci(cmp['ci'])}")
        fe_t, fe_r = t.get(name, {}).get("first_error"), t.get(cmp["raw"], {}).get("first_error")
        if fe_t and fe_r and fe_t.get("at_error") is not None and fe_r.get("at_error") is not None:
            line += (f"; at the first wrong character of wrong rollouts its implicit reward is {fe_t['at_error']:+.2f}"
                     f" nats against {fe_t['elsewhere']:+.2f} elsewhere (raw teacher {fe_r['at_error']:+.2f} vs "
                     f"{fe_r['elsewhere']:+.2f})")
        lines.append(line + ".")
    if lines:
        return "\n".join(lines)
    if t:  # one teacher only (before stage 1, or a pre-flight check): what can be said without a comparison
        return "\n".join(c1_single_verdict(name, e) for name, e in t.items())
    return "C1 not measured yet (needs the base student and a teacher)."


def c1_single_verdict(name: str, entry: dict) -> str:
    """C1 of one teacher, with no trained teacher to compare it with: does its summed implicit reward rank the
    student's correct rollouts above its wrong ones better than chance (the AUROC's interval against 0.5)?"""
    auroc, ci = entry.get("auroc"), entry.get("ci") or [None, None]
    if auroc is None:
        nc, ni = entry.get("n_correct", 0), entry.get("n_incorrect", 0)
        return (f"C1 ({name}): cannot judge: the fixed rollouts are all {'correct' if ni == 0 and nc else 'wrong'} "
                f"({nc} correct, {ni} wrong).")
    figure = f"AUROC of the summed implicit reward {auroc:.3f}{_ci(ci, False)}"
    length = f" (length alone {entry['length_auroc']:.3f})" if entry.get("length_auroc") is not None else ""
    if ci[0] is not None and ci[0] > 0.5:
        return (f"C1 ({name}): its implicit reward ranks the student's correct rollouts above its wrong ones better "
                f"than chance: {figure}{length}.")
    if ci[1] is not None and ci[1] < 0.5:
        return (f"C1 ({name}): its implicit reward ranks the student's wrong rollouts above its correct ones: "
                f"{figure}{length}; it is not reward-shaped for this student.")
    return (f"C1 ({name}): no measurable separation: {figure}{length} holds 0.5 (chance); teacher RL (stage 1) "
            f"would have to create it, or more rollouts must show it.")


def c2_summary(run: Run, rows: _Rows | None = None, c1: dict | None = None) -> dict:
    """C2 for every distillation stage: per-token reverse KL on the student's rollouts before and after it; and,
    from C1's fixed rollouts, where the base student starts against each teacher (`start`)."""
    read = rows or _Rows(run)
    pairs = []
    for record in run.stage_records():
        name = record.name
        after = read(c2_path(name))
        if after is None or not record.teacher:
            continue
        init, teacher = record.init, record.teacher
        before_file = c1_path(teacher) if init == "base_student" else c2_path(init)
        before = read(before_file)
        entry = {"stage": name, "init": init, "teacher": teacher, "after": dg.mean_reverse_kl(after),
                 "after_file": c2_path(name), "before_file": before_file if before is not None else None}
        if before is not None:
            entry["before"] = dg.mean_reverse_kl(before)
            entry["change"] = dg.kl_change(before, after)
        pairs.append(entry)
    out = {"pairs": pairs, "start": {name: e["mean_reverse_kl"] for name, e in ((c1 or {}).get("teachers") or {}).items()
                                     if e.get("mean_reverse_kl", {}).get("mean") is not None}}
    out["verdict"] = c2_verdict(out)
    return out


def c2_verdict(c2: dict) -> str:
    lines = []
    for p in c2["pairs"]:
        if "change" not in p or p["change"]["difference"] is None:
            continue
        b, a, ch = p["before"], p["after"], p["change"]
        word = {"lower": "moved the student closer to", "higher": "moved the student away from",
                "within noise": "did not measurably move the student toward"}[ch["verdict"]]
        lines.append(f"C2 ({p['stage']}): {p['stage']} {word} {p['teacher']}: reverse KL {b['mean']:.3f}"
                     f"{_ci(b['ci'], False)} -> {a['mean']:.3f}{_ci(a['ci'], False)} nats/token on the student's own "
                     f"rollouts.")
    if lines:
        return "\n".join(lines)
    if c2.get("start"):  # no distillation yet: where the base student starts against each teacher
        return "\n".join(c2_start_verdict(name, m) for name, m in c2["start"].items())
    return "C2 not measured yet (needs a finished warmup or OPD stage)."


def c2_start_verdict(teacher: str, kl: dict) -> str:
    """Where the base student starts against `teacher` (per-token reverse KL on its own rollouts), read through its
    interval against `diagnostics.C2_MAX_MEAN_REVERSE_KL`: far (a warmup should matter), close, or not settled."""
    m, (lo, hi) = kl["mean"], kl["ci"]
    bound = dg.C2_MAX_MEAN_REVERSE_KL
    figure = (f"reverse KL {m:.3f}{_ci(kl['ci'], False)} nats/token from {teacher} on its own rollouts"
              + (f" ({kl['n_tokens']:,} tokens)" if kl.get("n_tokens") else ""))
    if lo is not None and lo > bound:
        return (f"C2 ({teacher}): the student starts far from the teacher: {figure}, above {bound} across the "
                f"interval: expect a warmup (stage 2a) to matter before on-policy distillation.")
    if hi is not None and hi <= bound:
        return (f"C2 ({teacher}): the student starts close to the teacher: {figure}, at most {bound} across the "
                f"interval: on-policy distillation can start without a warmup.")
    return (f"C2 ({teacher}): the student starts near the edge of the teacher's support: {figure}; the interval "
            f"holds {bound}, so whether a warmup matters is not settled here.")


def summarize(cfg: Config, run: Run) -> dict:
    """The summary of one run folder (does not write it)."""
    stages = {}
    for record in run.stage_records():
        name, info = record.name, record.fields
        metrics = run.metrics(name)
        entry = {"status": info.get("status"), "role": info.get("role"), "init": info.get("init"),
                 "teacher": info.get("teacher"), "steps": info.get("steps"), "sequences": info.get("sequences"),
                 "labels": info.get("labels"), "prompts": info.get("prompts"),
                 "metric_names": sorted({k for m in metrics for k in m if k != "step"}),
                 "snapshots": run.rollout_steps(name), **_eval_entry(cfg, run.eval(name))}
        if info.get("truncation"):
            entry["truncation"] = info["truncation"]
        if entry["snapshots"]:
            from s2dlab.core.runs import read_rollout_file

            snap = read_rollout_file(run.rollout_path(name, entry["snapshots"][-1]), QUADRANT_COLUMNS)
            if len(snap) and "student_topk_ids" in snap.columns:
                entry["quadrants"] = dg.signal_quadrants(snap.to_dict("records"))
        stages[name] = entry
    arms, scores = {}, {}
    for arm in ARMS:
        if stages.get(arm.final, {}).get("accuracy") is None:
            continue
        arms[arm.name] = {"block": arm.block, "row": arm.row, "stage": arm.final,
                          **{k: stages[arm.final].get(k) for k in ("accuracy", "greedy", "interval",
                                                                   f"pass@{cfg.eval.n_samples}")},
                          **budget(run, arm.final)}
        if (pp := per_problem(cfg, run, arm.final)) is not None:
            scores[arm.name] = [pp]
    base = {"student": stages.get("base_student", {}).get("accuracy"),
            "teacher": stages.get("base_teacher", {}).get("accuracy")}
    if (pp := per_problem(cfg, run, "base_student")) is not None:
        for arm in arms:
            if arm in scores:
                arms[arm]["vs_base_student"] = dg.paired_difference(scores[arm], [pp])
    rows = _Rows(run)
    c1 = c1_summary(run, stages, rows)
    c2 = c2_summary(run, rows, c1)
    return {"format": FORMAT, "name": run.name, "seed": cfg.seed, "eval": {"sets": cfg.eval.sets,
                                                                          "k": cfg.eval.n_samples},
            "base": base, "stages": stages, "arms": arms, "claims": claims(scores), "c1": c1, "c2": c2}


def write_summary(cfg: Config, run: Run, required: bool = True) -> dict:
    """Summarise `run` and write summary.json and results.json. `required=False` (a reader summarising an old
    run folder) returns the summary unwritten when the folder cannot be written (read-only, another user's)."""
    out = summarize(cfg, run)
    try:
        run.write_json(SUMMARY_FILE, out)
        run.write_results(results_view(out))
    except OSError:
        if required:
            raise
    return out


def results_view(summary: dict) -> dict:
    """`results.json`: the arms table of a summary, its C1/C2 verdicts and the numbers they rest on (the same
    values, not recomputed; the rollout-level detail stays in summary.json)."""
    out = {k: summary.get(k) for k in ("format", "name", "seed", "seeds", "eval", "base", "arms", "claims", "per_seed")
           if k in summary}
    c1, c2 = summary.get("c1") or {}, summary.get("c2") or {}
    if c1:
        out["c1"] = {"verdict": c1.get("verdict"), "comparisons": c1.get("comparisons")}
    if c2:
        out["c2"] = {"verdict": c2.get("verdict"),
                     "pairs": [{k: p.get(k) for k in ("stage", "init", "teacher", "before", "after", "change")}
                               for p in c2.get("pairs") or []]}
    return out


def read_summary(run: Run | str | Path) -> dict:
    """A run's summary; a run folder written before summaries existed is summarised (and written) now. A folder of
    `seed_<k>` runs reads as their aggregate."""
    path = run.path if isinstance(run, Run) else Path(run)
    if not (path / "run.json").exists() and any(path.glob("seed_*/run.json")):  # a folder of seeds
        from s2dlab.core.runs import read_json_file

        got = read_json_file(path / SUMMARY_FILE)
        return got if got and got.get("format") == FORMAT else write_aggregate(path)
    run = run if isinstance(run, Run) else open_run(run)
    got = run.read_json(SUMMARY_FILE)
    if got and got.get("format") == FORMAT:
        return got
    return write_summary(config_from_dict(run.info["config"]), run, required=False)


# --- several seeds -------------------------------------------------------------------------------------------------------

def write_aggregate(out_dir: str | Path) -> dict:
    """Aggregate `out_dir/seed_*` runs: every arm's accuracy with an interval over problems and seeds, the paper's
    predictions with paired intervals over both, and each seed's C1/C2 verdicts. Writes summary.json and
    results.json at the top of `out_dir`."""
    out_dir = Path(out_dir)
    seed_dirs = sorted(out_dir.glob("seed_*"), key=lambda p: int(p.name.split("_")[1]))
    runs = [open_run(p) for p in seed_dirs if (p / "run.json").exists()]
    sums = [read_summary(r) for r in runs]
    cfgs = [config_from_dict(r.info["config"]) for r in runs]
    arm_names = [a for a in (sums[0]["arms"] if sums else {}) if all(a in s["arms"] for s in sums)]
    scores = {a: [per_problem(c, r, sums[0]["arms"][a]["stage"]) for c, r in zip(cfgs, runs)] for a in arm_names}
    scores = {a: v for a, v in scores.items() if all(x is not None for x in v)}
    arms = {}
    for a in arm_names:
        first = sums[0]["arms"][a]
        arms[a] = {k: first[k] for k in ("block", "row", "stage", "labels", "labels_kind", "student_steps",
                                         "student_sequences", "teacher_steps", "teacher_sequences",
                                         "teacher_scored_sequences")}
        if a in scores:
            iv = dg.accuracy_interval(scores[a])
            arms[a].update(accuracy=iv["mean"], interval=iv)
        greedy = [s["arms"][a].get("greedy") for s in sums]
        if all(g is not None for g in greedy):
            arms[a]["greedy"] = sum(greedy) / len(greedy)
            arms[a]["greedy_per_seed"] = greedy
    base_scores = [per_problem(c, r, "base_student") for c, r in zip(cfgs, runs)]
    base = {}
    if all(b is not None for b in base_scores):
        base["student_interval"] = dg.accuracy_interval(base_scores)
        base["student"] = base["student_interval"]["mean"]
        for a in scores:
            arms[a]["vs_base_student"] = dg.paired_difference(scores[a], base_scores)
    teacher = [s["base"].get("teacher") for s in sums]
    if teacher and all(t is not None for t in teacher):
        base["teacher"] = sum(teacher) / len(teacher)
    out = {"format": FORMAT, "name": out_dir.name, "seeds": [s["seed"] for s in sums],
           "eval": sums[0]["eval"] if sums else {}, "base": base, "arms": arms, "claims": claims(scores),
           "per_seed": [{"seed": s["seed"], "c1": {"verdict": s["c1"]["verdict"],
                                                     "comparisons": s["c1"]["comparisons"]},
                         "c2": {"verdict": s["c2"]["verdict"]},
                         "arms": {a: s["arms"][a].get("accuracy") for a in arm_names}} for s in sums]}
    atomic_write_json(out_dir / SUMMARY_FILE, out)
    atomic_write_json(out_dir / "results.json", results_view(out))
    return out


# --- words ---------------------------------------------------------------------------------------------------------------

def stage_line(run: Run, name: str, seconds: float | None = None) -> str:
    """One line for a finished stage: its accuracy with interval, and the time it took."""
    ev = run.eval(name)
    acc = ""
    if ev and ev.get("accuracy") is not None:
        first = next(iter(ev["sets"].values()))
        k = first.get("k")
        greedy = f", greedy {_pct(first['greedy'])}%" if first.get("greedy") is not None else ""
        acc = f"avg@{k} {_pct(ev['accuracy'])}%{greedy}"
    took = f"  ({seconds:.0f} s)" if seconds is not None else ""
    return f"  done  {name:<24} {acc}{took}"


def arms_table(summary: dict) -> str:
    """The arms as plain text: accuracy with its 95% interval, and each arm's budget."""
    arms = summary.get("arms", {})
    k = summary.get("eval", {}).get("k", "k")
    seeds = summary.get("seeds")
    head = f"avg@{k} (95% CI{', ' + str(len(seeds)) + ' seeds' if seeds else ''})"
    lines = [f"{'arm':<20} {head:>28} {'greedy':>7} {'labels':>7} {'student steps':>14} {'teacher steps':>14}"]
    for name in ordered(arms):
        m = arms[name]
        iv = m.get("interval") or {}
        ci = iv.get("ci") or [None, None]
        acc = f"{_pct(m.get('accuracy'))} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci[0] is not None else _pct(
            m.get("accuracy"))
        lines.append(f"{name:<20} {acc:>28} {_pct(m.get('greedy')):>7} {m.get('labels', '-'):>7} "
                     f"{m.get('student_steps', '-'):>14} {m.get('teacher_steps', '-'):>14}")
    base = summary.get("base", {})
    if base.get("student") is not None:
        lines.append(f"{'(base student)':<20} {_pct(base['student']):>28}")
    return "\n".join(lines)


def claims_text(summary: dict) -> str:
    lines = []
    for c in summary.get("claims", []):
        ci = c["ci"]
        lines.append(f"  [{c['status']:^12}] {c['claim']}: {c['a']} - {c['b']} = {100 * c['difference']:+.1f} "
                     f"points [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]")
    return "\n".join(lines)
