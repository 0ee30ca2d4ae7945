"""P3 by problem family: does stage 3's edge over the replay come from labels of families the first half lacks?

The paper's P3 (stage 3 on new labels beats a replay of the first half's) needs labels that carry information
specific to their problems. On the arithmetic task a problem's family (`arithmetic.family_of`) is the slip each
step allows with the number it happens on: what its label can teach. The eval problems fall in three groups by
where their family appears in the labeled pool:

    new in 2H    in 2H and not in 1H: stage 3 trained on labels of the family, the teacher, OPD and the replay never
    in 1H        in 1H (and maybe 2H): every arm of the halves block saw the family
    in neither   in no labeled problem

If labels are specific, `bridge_1h_stage3` - `bridge_1h_replay` is higher on "new in 2H" than on "in 1H". Each
group's differences are `diagnostics.paired_difference` over its problems and the seeds (the same interval as every
comparison of arms). `task.family_tail` draws the pool, val and eval from a long tail over families, where a random
half lacks more of the other's families; `task.halves=by_family` cuts the pool so that no family is in both halves,
the most that new labels can bring.
"""

from __future__ import annotations

from pathlib import Path

from s2dlab.core import diagnostics as dg
from s2dlab.core.config import Config, ConfigError, config_from_dict
from s2dlab.core.runs import open_run
from s2dlab.core.tasks.arithmetic import family_of_prompt

GROUPS = ("new in 2H", "in 1H", "in neither")
ALL = "all"  # every eval problem: the difference the run's summary reports
PAIRS = (("bridge_1h_stage3", "bridge_1h_replay"), ("bridge_1h_stage3", "bridge_1h"),
         ("bridge_1h_replay", "bridge_1h"))


def families(records: list[dict]) -> set[str]:
    return {family_of_prompt(r["prompt"]) for r in records}


def eval_groups(eval_records: list[dict], first_half: list[dict], second_half: list[dict]) -> dict[str, list[str]]:
    """`{group: eval problem ids}` by where each eval problem's family appears in the two halves (`ALL`: every
    one)."""
    f1, f2 = families(first_half), families(second_half)
    out = {g: [] for g in GROUPS}
    for r in eval_records:
        f = family_of_prompt(r["prompt"])
        out["in 1H" if f in f1 else "new in 2H" if f in f2 else "in neither"].append(r["id"])
    out[ALL] = [r["id"] for r in eval_records]
    return out


def differences_by_group(scores: dict[str, list[dict]], groups: dict[str, list[str]]) -> list[dict]:
    """For every pair of `PAIRS` whose arms are in `scores` (`scores[arm][seed]` = `{problem id: avg@k}`) and
    every group: the paired difference on the group's problems, with its interval and verdict."""
    rows = []
    for a, b in PAIRS:
        if a not in scores or b not in scores:
            continue
        for g in (ALL, *GROUPS):
            if g not in groups:
                continue
            ids = set(groups[g])
            pick_a, pick_b = ([{p: v for p, v in seed.items() if p in ids} for seed in scores[x]] for x in (a, b))
            d = dg.paired_difference(pick_a, pick_b) if ids else {"mean": None, "ci": [None, None]}
            rows.append({"a": a, "b": b, "group": g, "n_problems": len(ids), "difference": d["mean"],
                         "ci": d["ci"], "verdict": d.get("verdict")})
    return rows


def p3_by_family(out_dir: str | Path) -> dict:
    """The halves block's paired differences by family group, for a folder of `seed_<k>` runs (or one run) made
    with the halves arms and `eval.sets` starting with `arithmetic`."""
    from s2dlab.core.data import eval_sets, task_splits
    from s2dlab.workflow.cmap import seed_dirs
    from s2dlab.workflow.summary import per_problem, read_summary

    out_dir = Path(out_dir)
    folders = [p for p in seed_dirs(out_dir) if (p / "run.json").exists()] or [out_dir]
    runs = [open_run(p) for p in folders]
    cfgs = [config_from_dict(r.info["config"]) for r in runs]
    cfg: Config = cfgs[0]
    if cfg.task.name != "arithmetic" or cfg.eval.sets[0] != "arithmetic":
        raise ConfigError(f"{out_dir}: families are the arithmetic task's; this run has task.name={cfg.task.name!r} "
                          f"and eval.sets={cfg.eval.sets}: run the halves arms on task.name=arithmetic")
    summary = read_summary(runs[0])
    scores = {}
    for a in {x for pair in PAIRS for x in pair}:
        if a in summary["arms"]:
            got = [per_problem(c, r, summary["arms"][a]["stage"]) for c, r in zip(cfgs, runs)]
            if all(g is not None for g in got):
                scores[a] = got
    if len(scores) < 2:
        raise ConfigError(f"{out_dir}: needs two of bridge_1h_stage3, bridge_1h_replay, bridge_1h evaluated; run "
                          f"s2dlab run --arms bridge_1h_stage3,bridge_1h_replay,bridge_1h --out {out_dir}")
    splits = task_splits(cfg)
    groups = eval_groups(eval_sets(cfg)["arithmetic"], splits["1h"], splits["2h"])
    return {"run": str(out_dir), "seeds": [r.info.get("seed") for r in runs], "family_tail": cfg.task.family_tail,
            "halves": cfg.task.halves, "labels_per_half": len(splits["1h"]),
            "families": {name: len(families(splits[name])) for name in ("1h", "2h", "eval")},
            "groups": {g: len(ids) for g, ids in groups.items()},
            "differences": differences_by_group(scores, groups)}


def p3_table(results: list[dict]) -> str:
    """One row per run folder: how its pool was drawn and cut, and `bridge_1h_stage3` - `bridge_1h_replay` on every
    eval problem, on those whose family is new in 2H, and on those in 1H (points, 95% interval); then what the
    replay adds over the bridge on the families new in 2H."""
    def cell(r):
        if r["difference"] is None:  # a group with no eval problem
            return "-"
        lo, hi = r["ci"]
        return f"{100 * r['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"

    head = ("| pool, halves | labels per half | eval problems new in 2H | stage 3 − replay, all eval | "
            "stage 3 − replay, new in 2H | stage 3 − replay, in 1H | replay − bridge on 1H, new in 2H |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for res in results:
        rows = {(r["a"], r["b"], r["group"]): r for r in res["differences"]}
        p3 = ("bridge_1h_stage3", "bridge_1h_replay")
        draw = "uniform" if not res["family_tail"] else f"long tail (`task.family_tail={res['family_tail']:g}`)"
        halves = "random halves" if res["halves"] == "random" else "no family in both (`task.halves=by_family`)"
        lines.append(f"| {draw}, {halves} | {res['labels_per_half']} | {res['groups']['new in 2H']} | "
                     f"{cell(rows[(*p3, ALL)])} | {cell(rows[(*p3, 'new in 2H')])} | {cell(rows[(*p3, 'in 1H')])} | "
                     f"{cell(rows[('bridge_1h_replay', 'bridge_1h', 'new in 2H')])} |")
    return "\n".join(lines)


def families_table(result: dict) -> str:
    """The differences as a markdown table (points, with the 95% interval), one row per pair, one column per group."""
    def cell(r):
        if r["difference"] is None:
            return "-"
        lo, hi = r["ci"]
        return f"{100 * r['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"

    cols = (ALL, *GROUPS)
    head = "| difference | " + " | ".join(f"{g} ({result['groups'][g]} problems)" for g in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for a, b in PAIRS:
        rows = {r["group"]: r for r in result["differences"] if r["a"] == a and r["b"] == b}
        if rows:
            lines.append(f"| `{a}` − `{b}` | " + " | ".join(cell(rows[g]) for g in cols) + " |")
    return "\n".join(lines)
