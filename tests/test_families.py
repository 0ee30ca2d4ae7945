"""Problem families and the long tail (task.family_tail), and P3 by family (s2dlab.workflow.families)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from s2dlab.core.config import ConfigError, load_config
from s2dlab.core.tasks.arithmetic import (
    arithmetic_splits,
    family_halves,
    family_of,
    family_of_prompt,
)
from s2dlab.workflow.families import (
    GROUPS,
    differences_by_group,
    eval_groups,
    p3_by_family,
)

FIXTURE = Path(__file__).parent / "data" / "fixture_run"
SIZES = {"corpus": 2000, "select": 100, "pool": 600, "val": 100, "eval": 100}
TAIL = ("pool", "val", "eval")


def test_family_names_each_steps_slip_and_its_number():
    # 7+8=15 drops a carry adding 8; 15-9=6 borrows subtracting 9; 6+3=9 allows no slip
    assert family_of([7, 8, 9, 3], ["+", "-", "+"]) == "+carry8 -borrow9 +none"
    # 3-5 goes below 0 (a sign slip subtracting 5); from -2 on no slip is possible
    assert family_of([3, 5, 2], ["-", "+"]) == "-sign5 +none"
    assert family_of_prompt("7+8-9+3=?") == "+carry8 -borrow9 +none"
    with pytest.raises(ValueError, match="not an arithmetic prompt"):
        family_of_prompt("seven plus eight")


def test_no_tail_is_the_uniform_draw_and_the_tail_keeps_corpus_and_select():
    uniform = arithmetic_splits(SIZES, 0, 4, 1, "+-", slip_rate=0.4, slip_splits=("corpus",))
    assert arithmetic_splits(SIZES, 0, 4, 1, "+-", slip_rate=0.4, slip_splits=("corpus",), family_tail=0.0,
                             tail_splits=TAIL) == uniform
    tail = arithmetic_splits(SIZES, 0, 4, 1, "+-", slip_rate=0.4, slip_splits=("corpus",), family_tail=1.0,
                             tail_splits=TAIL)
    assert tail["corpus"] == uniform["corpus"] and tail["select"] == uniform["select"]
    assert tail["pool"] != uniform["pool"]
    prompts = [r["prompt"] for split in tail.values() for r in split]
    assert len(prompts) == len(set(prompts)), "splits must not share a problem"
    assert [len(tail[k]) for k in SIZES] == list(SIZES.values())
    assert tail == arithmetic_splits(SIZES, 0, 4, 1, "+-", slip_rate=0.4, slip_splits=("corpus",), family_tail=1.0,
                                     tail_splits=TAIL), "the draw is fixed by the seed"


def test_the_tail_puts_more_of_the_pool_in_fewer_families():
    def top_share(s):
        pool = arithmetic_splits(SIZES, 0, 4, 1, "+-", family_tail=s, tail_splits=TAIL)["pool"]
        counts = Counter(family_of_prompt(r["prompt"]) for r in pool)
        return sum(c for _, c in counts.most_common(20)) / len(pool), len(counts)

    (share0, n0), (share2, n2) = top_share(0.0), top_share(2.0)
    assert share2 > share0 + 0.2 and n2 < n0


def test_family_tail_is_checked():
    with pytest.raises(ConfigError, match="task.family_tail=-1"):
        load_config(overrides=["task.family_tail=-1"])
    with pytest.raises(ConfigError, match="task.family_tail=1.0 draws the arithmetic task"):
        load_config(overrides=["task.family_tail=1.0", "task.name=math", "eval.sets=math500"])
    with pytest.raises(ValueError, match="at most 1,000,000 problems"):
        arithmetic_splits({"pool": 10}, 0, 4, 2, "+-", family_tail=1.0, tail_splits=("pool",))


def test_family_halves_share_no_family_and_hold_as_many_problems():
    pool = arithmetic_splits(SIZES, 0, 4, 1, "+-")["pool"]
    first, second = family_halves(pool, seed=0)
    f1 = {family_of_prompt(r["prompt"]) for r in first}
    f2 = {family_of_prompt(r["prompt"]) for r in second}
    assert not f1 & f2
    assert len(first) == len(second) > 0.45 * len(pool)
    ids = [r["id"] for r in pool]
    assert [r["id"] for r in first] == sorted((r["id"] for r in first), key=ids.index), "pool order is kept"
    assert family_halves(pool, seed=0) == (first, second) != family_halves(pool, seed=1)


def test_the_config_cuts_the_halves_by_family():
    from s2dlab.core.data import task_splits

    cfg = load_config(overrides=["task.halves=by_family", "task.pool_size=200", "task.corpus_size=100",
                                 "task.val_size=10", "task.eval_size=10", "base.select_size=10"])
    splits = task_splits(cfg)
    assert not {family_of_prompt(r["prompt"]) for r in splits["1h"]} & {family_of_prompt(r["prompt"])
                                                                        for r in splits["2h"]}
    # the default pool's family-disjoint halves hold 993 problems each, under the nominal 1,000 the config checks
    greedy = load_config(overrides=["task.halves=by_family", "teacher_grpo.prompts_per_step=1000"])
    with pytest.raises(ConfigError, match="task.halves=by_family cut the labeled pool into halves of 993 problems, "
                                          "fewer than the 1000 prompts a GRPO step draws"):
        task_splits(greedy)
    with pytest.raises(ConfigError, match="task.halves='by_family' cuts the pool by the arithmetic task"):
        load_config(overrides=["task.halves=by_family", "task.name=math", "eval.sets=math500"])
    with pytest.raises(ConfigError, match="task.halves='alternate' is not allowed; choose one of random, by_family"):
        load_config(overrides=["task.halves=alternate"])


def test_eval_groups_follow_the_halves():
    rec = lambda i, p: {"id": i, "prompt": p}
    first = [rec("a", "7+8-9+3=?")]  # +carry8 -borrow9 +none
    second = [rec("b", "3-5+2=?"), rec("c", "6+8-9+3=?")]  # -sign5 +none; +carry8 -borrow9 +none (also in 1H)
    ev = [rec("e1", "4-5+7=?"), rec("e2", "5+8-9+1=?"), rec("e3", "1+1=?")]
    assert eval_groups(ev, first, second) == {"new in 2H": ["e1"], "in 1H": ["e2"], "in neither": ["e3"],
                                              "all": ["e1", "e2", "e3"]}


def test_differences_by_group_are_the_paired_means_of_each_group():
    groups = {"new in 2H": ["p1", "p2"], "in 1H": ["p3"], "in neither": [], "all": ["p1", "p2", "p3"]}
    stage3 = [{"p1": 1.0, "p2": 0.5, "p3": 0.25}, {"p1": 0.75, "p2": 0.5, "p3": 0.5}]
    replay = [{"p1": 0.5, "p2": 0.5, "p3": 0.5}, {"p1": 0.25, "p2": 0.0, "p3": 0.5}]
    rows = differences_by_group({"bridge_1h_stage3": stage3, "bridge_1h_replay": replay}, groups)
    by = {r["group"]: r for r in rows}
    assert set(by) == {*GROUPS, "all"} and all(r["a"] == "bridge_1h_stage3" for r in rows)
    # all: seed 0 (0.5 + 0.0 - 0.25) / 3, seed 1 (0.5 + 0.5 + 0.0) / 3
    assert by["all"]["difference"] == pytest.approx((0.25 / 3 + 1.0 / 3) / 2)
    # new in 2H: seed 0 (0.5 + 0.0) / 2 = 0.25, seed 1 (0.5 + 0.5) / 2 = 0.5 -> mean 0.375
    assert by["new in 2H"]["difference"] == pytest.approx(0.375)
    assert by["new in 2H"]["n_problems"] == 2
    assert by["in 1H"]["difference"] == pytest.approx((-0.25 + 0.0) / 2)
    assert by["in neither"]["difference"] is None


def test_the_tables_show_an_empty_group_as_a_dash():
    from s2dlab.workflow.families import families_table, p3_table

    empty = {"difference": None, "ci": [None, None]}
    full = {"difference": 0.012, "ci": [-0.01, 0.034]}
    diffs = [{"a": a, "b": b, "group": g, **(empty if g == "new in 2H" else full)}
             for a, b in (("bridge_1h_stage3", "bridge_1h_replay"), ("bridge_1h_replay", "bridge_1h"))
             for g in ("all", *GROUPS)]
    result = {"family_tail": 0.0, "halves": "by_family", "labels_per_half": 16, "differences": diffs,
              "groups": {"all": 8, "new in 2H": 0, "in 1H": 1, "in neither": 7}}
    row = p3_table([result]).splitlines()[2]
    assert row == ("| uniform, no family in both (`task.halves=by_family`) | 16 | 0 | +1.2 [-1.0, +3.4] | - | "
                   "+1.2 [-1.0, +3.4] | - |")
    assert "| - |" in families_table(result)


def test_p3_by_family_on_a_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    out = p3_by_family(run)
    assert sum(out["groups"][g] for g in GROUPS) == out["groups"]["all"] == 16  # the fixture's eval split
    # the difference over every eval problem is the one the run's summary reports for P3
    p3 = next(c for c in json.loads((run / "summary.json").read_text())["claims"] if c["id"] == "P3")
    mine = next(r for r in out["differences"] if r["group"] == "all" and r["b"] == "bridge_1h_replay")
    assert mine["difference"] == pytest.approx(p3["difference"]) and mine["ci"] == pytest.approx(p3["ci"])
    pairs = {(r["a"], r["b"]) for r in out["differences"]}
    assert ("bridge_1h_stage3", "bridge_1h_replay") in pairs
    cfg = load_config(overrides=["task.pool_size=48", "task.eval_size=16", "task.val_size=8"])
    assert cfg.task.family_tail == 0.0 and out["family_tail"] == 0.0


def test_the_script_prints_the_table_and_names_a_missing_folder(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    script = Path(__file__).resolve().parents[1] / "scripts" / "p3_families.py"
    ok = subprocess.run([sys.executable, str(script), str(run), "--json", str(tmp_path / "p3.json")],
                        check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "| `bridge_1h_stage3` − `bridge_1h_replay` |" in ok.stdout and (tmp_path / "p3.json").exists()
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "nope")], check=False, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip() == f"p3_families: {tmp_path / 'nope'}: no such run folder"


def test_the_readmes_p3_table_is_the_committed_results_own():
    from s2dlab.workflow.families import p3_table

    root = Path(__file__).resolve().parents[1]
    results = json.loads((root / "docs" / "results" / "p3_families.json").read_text())
    assert [r["run"] for r in results["runs"]] == ["runs/p3_uniform", "runs/p3_tail", "runs/p3_by_family"]
    assert p3_table(results["runs"]) in (root / "README.md").read_text(encoding="utf-8")
