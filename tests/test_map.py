"""`s2dlab map` (s2dlab.workflow.cmap): the grid's bad input answers in one line before anything is written; a map stopped by
SIGKILL after some cells resumes without retraining them; every cell's C1, C2 and gain equal an independent
computation from its run folder; teachers and cold GRPO are trained once and shared; the aggregate over seeds and
the figure read map.json as written. Tiny budgets (tests.test_stages.SMALL)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2dlab import cli
from s2dlab.core import diagnostics as dg
from s2dlab.workflow import cmap
from tests.test_stages import SMALL

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "s2dlab" / "assets" / "tiny_base"
# the map derives these two from the grid and the bridge, so the tests leave them to it
TINY = [s for s in SMALL if not s.startswith(("teacher_grpo.steps=", "cold_grpo.steps="))]
TEACHERS, STUDENTS = "raw,rl@1,rl@2,sft", "close,far"
ARGS = ["--teachers", TEACHERS, "--students", STUDENTS, *TINY]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(capsys, argv, *needles) -> str:
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, f"exit {code}, stderr: {err}"
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# --- the grid, parsed -------------------------------------------------------------------------------------------------

def test_teachers_and_students_parse_to_their_stages_and_arms():
    t = {x.name: x for x in cmap.parse_teachers("raw, rl@10,rl@3 ,sft")}
    assert [x.stage for x in t.values()] == ["base_teacher", "rl_10.teacher_grpo", "rl_3.teacher_grpo", "teacher_sft"]
    assert [x.arm for x in t.values()] == ["raw_teacher", "full", "full", "sft_teacher"]
    assert t["rl@10"].steps == 10 and t["rl@10"].key == "rl_10"
    s = cmap.parse_students("far,close")
    assert [(x.key, x.level) for x in s] == [("far", "far"), ("close", "close")]
    folder = cmap.parse_students([str(SHIPPED / "student_middle")])[0]
    assert folder.path == str((SHIPPED / "student_middle").resolve()) and folder.level == "close"
    assert folder.key == "ext_student_middle"


def test_map_config_derives_the_rl_run_and_cold_grpo_from_the_grid():
    cfg = cmap.map_config(cmap.parse_teachers("raw,rl@7,rl@3"), overrides=["opd.steps=11"])
    assert cfg.teacher_grpo.steps == 7
    assert cfg.cold_grpo.steps == cfg.fkl_warmup.steps + cfg.opd.steps == cmap.MAP_DEFAULTS["fkl_warmup.steps"] + 11
    assert cfg.cold_grpo.prompts_per_step * cfg.cold_grpo.num_generations == cfg.opd.batch_size == \
        cfg.fkl_warmup.batch_size  # the same sequences per student step
    assert cfg.probe.every == cmap.MAP_DEFAULTS["probe.every"]


# --- bad input: one line, nothing written, before any training --------------------------------------------------------

@pytest.fixture(scope="module")
def other_tokenizer_teacher(tmp_path_factory) -> Path:
    """The shipped teacher saved with a tokenizer that has one token more than the tiny preset's."""
    from s2dlab.core.models import build_char_tokenizer

    folder = tmp_path_factory.mktemp("other_tok") / "teacher"
    shutil.copytree(SHIPPED / "teacher", folder)
    tok = build_char_tokenizer()
    tok.add_tokens(["<extra>"])
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("flags, needles", [
    (["--teachers", "raw,gpt4"], ["unknown teacher 'gpt4'", "raw, rl@N", "sft"]),
    (["--teachers", "raw,rl@0"], ["rl@0", "at least one GRPO step"]),
    (["--teachers", "raw,./no/such/teacher"], ["./no/such/teacher", "no such model folder"]),
    (["--teachers", "raw,raw"], ["'raw'", "give each once"]),
    (["--students", "close,huge"], ["unknown student 'huge'", "close, middle, far"]),
    (["--students", "close,./no/such/student"], ["./no/such/student", "no such model folder"]),
    (["--students", str(SHIPPED)], ["holds no config.json"]),
    (["cold_grpo.steps=7"], ["cold_grpo.steps=7", "fkl_warmup.steps + opd.steps"]),
    (["--teachers", "raw,rl@5", "teacher_grpo.steps=9"], ["teacher_grpo.steps=9", "rl@N"]),
    (["opd.batch_size=16"], ["opd.batch_size=16", "cold GRPO"]),
    (["--seeds", "0"], ["--seeds 0"]),
    (["--preset", "qwen3_paper"], ["tiny preset"]),
])
def test_a_bad_grid_stops_with_one_line_before_anything_is_written(capsys, tmp_path, flags, needles):
    out = tmp_path / "map"
    one_line(capsys, ["map", "--out", out, *flags], *needles)
    assert not out.exists()


def test_tokenizers_that_differ_stop_the_cell_with_one_line(capsys, tmp_path, other_tokenizer_teacher):
    out = tmp_path / "map"
    line = one_line(capsys, ["map", "--out", out, "--teachers", f"raw,{other_tokenizer_teacher}", "--students",
                             "close"], f"map cell {other_tokenizer_teacher.resolve()} x close",
                    "tokenizers are not compatible", "vocabularies differ")
    assert "<extra>" in line
    assert not out.exists()
    # the same folder as a student, paired with the built-in teachers
    one_line(capsys, ["map", "--out", out, "--teachers", "raw", "--students", f"close,{other_tokenizer_teacher}"],
             f"map cell raw x {other_tokenizer_teacher.resolve()}", "tokenizers are not compatible")
    assert not out.exists()


def test_a_missing_shipped_student_stops_before_training(capsys, tmp_path, monkeypatch):
    from s2dlab.workflow.stages import base

    monkeypatch.setattr(base, "SHIPPED", tmp_path / "nothing_shipped")
    one_line(capsys, ["map", "--out", tmp_path / "map", "--students", "close"], "--students close",
             "no shipped base student", "base.source=train")
    assert not (tmp_path / "map").exists()


# --- a map stopped after some cells, then resumed ---------------------------------------------------------------------

def _cells(out: Path) -> list[Path]:
    return sorted(p.parent for p in out.glob(f"seed_*/*/{cmap.CELL_FILE}"))


def _state(folder: Path) -> dict:
    """Every stage's finish time and model bytes in a run folder: what retraining would change."""
    out = {}
    for stage_json in sorted(folder.glob("*/stage.json")):
        info = json.loads(stage_json.read_text())
        model = stage_json.parent / "model" / "model.safetensors"
        out[stage_json.parent.name] = (info.get("finished"), sha(model) if model.is_file() else None)
    return out


@pytest.fixture(scope="module")
def small_map(tmp_path_factory):
    """A 4 x 2 map made by `s2dlab map` in a subprocess that is killed (SIGKILL) once its first cell is in map.json,
    then resumed in this process. Returns the folder and what the finished pieces were before the resume."""
    out = tmp_path_factory.mktemp("map") / "m"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    log = out.parent / "first.log"  # a file, not a pipe: a full pipe would stop the child
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "s2dlab", "map", "--out", str(out), *ARGS], cwd=ROOT,
                                env=env, stdout=f, stderr=subprocess.STDOUT)
    done = []
    try:
        while proc.poll() is None and not done:
            got = json.loads((out / "map.json").read_text()) if (out / "map.json").is_file() else {}
            done = got.get("cells") or []
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    err = log.read_text()
    assert done, f"the map ended (exit {proc.returncode}) before its first cell was written: {err[-3000:]}"
    stopped = json.loads((out / "map.json").read_text())
    assert not stopped["complete"]
    finished = {p.name: _state(p) for p in _cells(out) if cmap.cell_values(p) is not None}
    shared = {p.name: _state(p) for p in (out / "seed_0").iterdir()
              if p.name == "teachers" or p.name.startswith("cold_")}
    assert cli.main(["map", "--out", str(out), *ARGS]) == 0
    return out, stopped, finished, shared


def test_a_killed_map_resumes_without_retraining_finished_cells(small_map):
    out, stopped, finished, shared = small_map
    assert finished, "no cell had finished when the map was killed"
    for name, before in finished.items():
        assert _state(out / "seed_0" / name) == before, f"{name} was trained again"
    for name, before in shared.items():  # teachers and cold runs finished before the kill are kept as they were
        after = _state(out / "seed_0" / name)
        for stage, (finished_at, model) in before.items():
            if finished_at is not None:
                assert after[stage] == (finished_at, model), f"{name}/{stage} was trained again"
    m = json.loads((out / "map.json").read_text())
    assert m["complete"] and not m["pending"]
    assert [(c["teacher"], c["student"]) for c in m["cells"]] == \
        [(t, s) for t in TEACHERS.split(",") for s in STUDENTS.split(",")]
    assert len(m["cells"]) > len(stopped["cells"])


# --- every value from its run folder ----------------------------------------------------------------------------------

def _auroc(scores, labels) -> float:
    """P(a correct rollout scores above a wrong one), ties one half, by counting every pair."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def _scored(cell: Path, teacher_stage: str) -> pd.DataFrame:
    df = pd.read_parquet(cell / "diagnostics" / "c1" / f"{teacher_stage}.parquet")
    return df.sort_values(["prompt_id", "sample_idx"]).reset_index(drop=True)


def test_every_cell_equals_an_independent_computation_from_its_run_folder(small_map):
    out = small_map[0]
    m = json.loads((out / "map.json").read_text())
    cfg = cmap.map_config(cmap.parse_teachers(TEACHERS), overrides=TINY)
    for cell in m["cells"]:
        folder = out / cell["runs"][0]
        info = json.loads((folder / cmap.CELL_FILE).read_text())
        t_stage, final = info["teacher_stage"], info["bridge"][1]
        # gain: bridge minus cold GRPO, per eval problem (avg@k), mean and a normal 95% interval over problems
        k = cfg.eval.n_samples
        bridge = json.loads((folder / final / "eval.json").read_text())["sets"]["arithmetic"]["per_problem"]
        cold = json.loads((folder / "cold_grpo" / "eval.json").read_text())["sets"]["arithmetic"]["per_problem"]
        d = np.array([(bridge[p] - cold[p]) / k for p in sorted(bridge)])
        half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(len(d))
        assert cell["gain"]["mean"] == pytest.approx(d.mean())
        assert cell["gain"]["ci"] == pytest.approx([d.mean() - half, d.mean() + half])
        # C1: AUROC of the summed implicit reward on the same rollouts, this teacher minus the raw one
        raw, mine = _scored(folder, "base_teacher"), _scored(folder, t_stage)
        assert (raw["completion"] == mine["completion"]).all()  # both teachers scored the same rollouts
        labels = raw["correct"].astype(bool).tolist()
        diff = _auroc(mine["sum_implicit_reward"], labels) - _auroc(raw["sum_implicit_reward"], labels)
        assert cell["c1"]["mean"] == pytest.approx(diff, abs=1e-12)
        if t_stage == "base_teacher":
            assert cell["c1"]["ci"] == [0.0, 0.0] and cell["c1"]["reference"]
        else:
            ref = dg.auroc_difference(mine["sum_implicit_reward"], raw["sum_implicit_reward"], labels, raw["prompt_id"])
            assert cell["c1"]["ci"] == pytest.approx(ref["ci"])
        # C2: per-token reverse KL of the base student's rollouts against this teacher, token-weighted
        kl = np.concatenate([np.asarray(x, float) for x in mine["reverse_kl"]])
        assert cell["c2"]["mean"] == pytest.approx(kl.mean())
        assert cell["c2"]["ci"][0] <= cell["c2"]["mean"] <= cell["c2"]["ci"][1]
        # budgets: the bridge and cold GRPO at equal student steps and sequences; labels through the teacher
        b, c = cell["budget"]["bridge"], cell["budget"]["cold_grpo"]
        assert b["student_steps"] == c["student_steps"] == cfg.fkl_warmup.steps + cfg.opd.steps
        assert b["student_sequences"] == c["student_sequences"]
        assert c["labels"] == cfg.task.pool_size
        assert b["labels"] == (0 if cell["teacher"] == "raw" else cfg.task.pool_size)
        assert b["teacher_steps"] == {"raw": 0, "rl@1": 1, "rl@2": 2, "sft": cfg.teacher_sft.steps}[cell["teacher"]]


def test_teachers_and_cold_grpo_are_trained_once_and_shared(small_map):
    out = small_map[0]
    seed = out / "seed_0"
    for cell in _cells(out):
        info = json.loads((cell / cmap.CELL_FILE).read_text())
        student = cell.name.split("__")[1]
        for stage, src in ((info["teacher_stage"], seed / "teachers"), ("cold_grpo", seed / f"cold_{student}"),
                           ("base_student", seed / f"cold_{student}")):
            assert sha(cell / stage / "model" / "model.safetensors") == sha(src / stage / "model" / "model.safetensors")
            assert json.loads((cell / stage / "stage.json").read_text())["copied_from"] == str(src / stage)
    # rl@2 is the one RL run continued from rl@1's trainer state: its curve starts with rl@1's
    rl1 = [json.loads(x) for x in (seed / "teachers" / "rl_1.teacher_grpo" / "metrics.jsonl").read_text().splitlines()]
    rl2 = [json.loads(x) for x in (seed / "teachers" / "rl_2.teacher_grpo" / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((seed / "teachers" / "rl_2.teacher_grpo" / "stage.json").read_text())["continued_from"] == \
        "rl_1.teacher_grpo"
    first = [r["reward"] for r in rl1 if "reward" in r]
    assert [r["reward"] for r in rl2 if "reward" in r][: len(first)] == first
    assert [r["step"] for r in rl2 if "reward" in r] == [1, 2]


def test_a_cell_is_an_ordinary_run_folder_that_score_opens(small_map, capsys):
    cell = small_map[0] / "seed_0" / "rl_2__far"
    assert cli.main(["score", str(cell)]) == 0
    text = capsys.readouterr().out
    assert "bridge" in text and "cold_grpo" in text and "C1:" in text


# --- seeds and the figure ---------------------------------------------------------------------------------------------

def test_across_seeds_known_values():
    one = cmap.across_seeds([{"mean": 0.2, "ci": [0.1, 0.35]}])
    assert one["mean"] == 0.2 and one["ci"] == [0.1, 0.35]  # one seed keeps its own (asymmetric) interval
    two = cmap.across_seeds([{"mean": 0.1, "ci": [0.05, 0.15]}, {"mean": 0.3, "ci": [0.25, 0.35]}])
    within = math.sqrt(0.05 ** 2 + 0.05 ** 2) / 2
    between = 12.706 * (math.sqrt(0.02) / math.sqrt(2))  # t(1) x the standard error of the two means
    assert two["mean"] == pytest.approx(0.2)
    assert two["ci"] == pytest.approx([0.2 - math.hypot(within, between), 0.2 + math.hypot(within, between)])
    assert cmap.across_seeds([None, {"mean": None, "ci": [None, None]}])["mean"] is None


def test_the_aggregate_over_seeds_pairs_problems_and_seeds(small_map, tmp_path):
    out = tmp_path / "m"
    shutil.copytree(small_map[0], out)
    shutil.copytree(out / "seed_0", out / "seed_1")  # a second seed with the same numbers
    m = cmap.write_map(out)
    single = json.loads((small_map[0] / "map.json").read_text())
    assert m["seeds"] == [0, 1] and m["complete"]
    for c, s in zip(m["cells"], single["cells"]):
        assert c["seeds"] == [0, 0] and len(c["runs"]) == 2
        assert c["gain"]["mean"] == pytest.approx(s["gain"]["mean"])
        folder = out / c["runs"][0]
        info = json.loads((folder / cmap.CELL_FILE).read_text())
        pp = {}
        for stage in (info["bridge"][1], "cold_grpo"):
            ev = json.loads((folder / stage / "eval.json").read_text())["sets"]["arithmetic"]
            pp[stage] = {p: n / ev["k"] for p, n in ev["per_problem"].items()}
        ref = dg.paired_difference([pp[info["bridge"][1]]] * 2, [pp["cold_grpo"]] * 2)
        assert c["gain"]["ci"] == pytest.approx(ref["ci"])
        if not c["c1"]["reference"]:  # two identical seeds: the seeds' intervals add in quadrature over 2
            h = (s["c1"]["ci"][1] - s["c1"]["ci"][0]) / 2
            m1, h2 = s["c1"]["mean"], h / math.sqrt(2)
            assert c["c1"]["ci"] == pytest.approx([m1 - h2, m1 + h2])


def test_the_figure_draws_map_json_as_written(small_map):
    from s2dlab.views.viz.map import map_figure

    m = json.loads((small_map[0] / "map.json").read_text())
    fig = map_figure(small_map[0])  # a folder holding map.json
    heat = fig.data[0]
    by = {(c["teacher"], c["student"]): c for c in m["cells"]}
    assert list(heat.y) == TEACHERS.split(",") and list(heat.x) == STUDENTS.split(",")
    assert [list(r) for r in heat.z] == [[pytest.approx(100 * by[(t, s)]["gain"]["mean"]) for s in heat.x]
                                         for t in heat.y]
    for trace in fig.data[1:]:
        student = trace.name.removeprefix("student: ")
        key = "c1" if trace.xaxis == "x2" else "c2"
        cells = [by[(t, student)] for t in trace.text]
        assert list(trace.x) == pytest.approx([c[key]["mean"] for c in cells])
        assert list(trace.y) == pytest.approx([100 * c["gain"]["mean"] for c in cells])
        assert list(trace.error_y.array) == pytest.approx([100 * (c["gain"]["ci"][1] - c["gain"]["mean"])
                                                           for c in cells])
    assert "no finished cell" in map_figure({"cells": []}).layout.annotations[0].text


def test_a_changed_config_on_an_existing_map_stops_and_changes_nothing(small_map, capsys):
    out = small_map[0]
    before = sha(out / "map.json")
    one_line(capsys, ["map", "--out", out, *ARGS, "opd.steps=3"], "was made with another config", "opd.steps 2 -> 3",
             "new --out")
    assert sha(out / "map.json") == before


# --- the dashboard's Map tab ------------------------------------------------------------------------------------------

def _map_root(small_map, root: Path) -> Path:
    """A runs folder holding the small map at m, as `s2dlab app runs` sees runs/map (the model weights left out: the
    tab reads map.json and lists the cells' run folders)."""
    shutil.copytree(small_map[0], root / "m", ignore=shutil.ignore_patterns("*.safetensors", "*.parquet"))
    return root


def _map_fns(root: Path) -> dict:
    from s2dlab.views.dashboard import build_demo

    demo = build_demo(root, poll_seconds=0)
    return {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def _by_id(out: dict) -> dict:
    return {getattr(k, "elem_id", None): v for k, v in out.items()}


def _parse(text: str) -> tuple[float, float, float]:
    """"+1.2 [-0.5, +2.9]" -> (1.2, -0.5, 2.9) (whatever spaces the table puts between them)."""
    nums = re.fullmatch(r"\s*([^\s\[]+)\s*\[([^,]+),\s*([^\]]+)\]\s*", text)
    assert nums, f"not a value with its interval: {text!r}"
    return tuple(float(x.replace("−", "-")) for x in nums.groups())


def test_the_dashboard_map_tab_draws_map_json_and_names_each_cells_run(small_map, tmp_path):
    from s2dlab.views.dashboard import map_view
    from s2dlab.views.dashboard.store import Store

    root = _map_root(small_map, tmp_path)
    m = json.loads((root / "m" / "map.json").read_text())
    shown = _by_id(_map_fns(root)["map"](None))
    assert shown["map-status"] == ""
    assert shown["map-dd"]["choices"] == ["m"] and shown["map-dd"]["value"] == "m"
    n = len(m["grid"]["teachers"]) * len(m["grid"]["students"])
    assert f"{len(m['cells'])} of {n} cells" in shown["map-note"] and m["command"] in shown["map-note"]
    # the figure is map_figure's: the heatmap's gains are map.json's
    heat = shown["map-plot"].data[0]
    by = {(c["teacher"], c["student"]): c for c in m["cells"]}
    assert [list(r) for r in heat.z] == [[pytest.approx(100 * by[(t, s)]["gain"]["mean"]) for s in heat.x]
                                         for t in heat.y]
    # the table: one row per cell in map.json's order, every interval as written (rounded for display only)
    df = shown["map-table"]["value"]
    assert list(zip(df["teacher"], df["student"])) == [(c["teacher"], c["student"]) for c in m["cells"]]
    runs = set(Store(root).run_choices())
    for (_, row), c in zip(df.iterrows(), m["cells"]):
        for col, v, scale in (("gain (points, bridge − cold GRPO)", c["gain"], 100), ("C2 (reverse KL, nats/token)",
                                                                                     c["c2"], 1),
                              ("bridge (%)", c["bridge"], 100), ("cold GRPO (%)", c["cold_grpo"], 100)):
            mean, low, high = _parse(row[col])
            width = scale * (v["ci"][1] - v["ci"][0])  # round_interval's last digit (none for a zero width)
            tol = 0.5 * 10 ** -max(0, 1 - math.floor(math.log10(width))) if width > 0 else 5e-7
            assert (mean, low, high) == pytest.approx((scale * v["mean"], scale * v["ci"][0], scale * v["ci"][1]),
                                                      abs=tol + 1e-6), col
        if c["c1"]["reference"]:
            assert row["C1 (AUROC diff vs raw teacher)"] == map_view.REFERENCE
        else:
            assert _parse(row["C1 (AUROC diff vs raw teacher)"])[0] == pytest.approx(c["c1"]["mean"], abs=5e-3)
        assert row["seeds"] == len(c["seeds"]) == 1
        named = row["run folders"].split(", ")
        assert named == [f"m/{r}" for r in c["runs"]] and set(named) <= runs  # runs of the picker above
    # unrounded, the data layer's table carries map.json's values to six decimals
    raw = map_view.map_frame(m, "m")
    assert [_parse(x)[0] for x in raw["gain (points, bridge − cold GRPO)"]] == \
        pytest.approx([100 * c["gain"]["mean"] for c in m["cells"]], abs=5e-7)


def test_the_app_pointed_at_a_map_folder_shows_it(small_map, tmp_path):
    from s2dlab.views.dashboard.store import Store

    root = _map_root(small_map, tmp_path) / "m"
    fns = _map_fns(root)
    shown = _by_id(fns["map"](None))
    assert shown["map-dd"]["value"] == "." and shown["map-status"] == ""
    named = [r for x in shown["map-table"]["value"]["run folders"] for r in x.split(", ")]
    assert named and set(named) <= set(Store(root).run_choices()) and all(r.startswith("seed_0/") for r in named)
    again = _by_id(fns["map_view"]("."))  # the picker's own handler draws the same map
    assert again["map-status"] == "" and list(again["map-plot"].data[0].z[0]) == list(shown["map-plot"].data[0].z[0])


def test_the_map_tab_says_what_is_missing_or_damaged_in_its_own_status_line(small_map, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _by_id(_map_fns(empty)["map"](None))
    assert none["map-status"] == "" and "No map under" in none["map-note"] and "s2dlab map --out" in none["map-note"]
    assert none["map-dd"]["choices"] == [] and none["map-plot"] is None

    root = _map_root(small_map, tmp_path / "root")
    path = root / "m" / "map.json"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # a truncated write
    fns = _map_fns(root)
    bad = _by_id(fns["map"](None))
    assert bad["map-status"].startswith("⚠ Cannot read the map 'm'") and "corrupt JSON" in bad["map-status"]
    assert bad["map-plot"] is None and bad["map-note"] == ""
    assert _by_id(fns["runs"](None))["status"] == ""  # the runs above still open
    path.write_text(json.dumps({"cells": "none"}))
    assert "is not a map" in _by_id(fns["map_view"]("m"))["map-status"]
    outside = _by_id(fns["map_view"]("../x"))
    assert "not a run inside" in outside["map-status"] and outside["map-plot"] is None


def test_a_cells_row_opens_its_run_in_the_stages_tab(small_map, tmp_path):
    from types import SimpleNamespace

    root = _map_root(small_map, tmp_path)
    fns = _map_fns(root)
    df = _by_id(fns["map"](None))["map-table"]["value"]
    row = list(df.iloc[-1])  # what a click on the last row sends
    out = fns["map_open"](SimpleNamespace(row_value=row))
    shown = _by_id(out)
    assert shown["map-status"] == "" and shown["run-dd"]["value"] == row[-1].split(", ")[0]
    assert shown["run-dd"]["value"] in [v for _, v in shown["run-dd"]["choices"]]
    tabs = next(v for k, v in out.items() if getattr(k, "elem_id", None) is None and hasattr(v, "selected"))
    assert tabs.selected == "stages"
    # the run's own handler, which the row's event runs next, opens the cell's run (copied here without its
    # snapshots, so it says that, naming the cell)
    opened = _by_id(fns["open_run"](shown["run-dd"]["value"]))
    assert opened["status"].startswith(f"⚠ Run {shown['run-dd']['value']!r} has no rollout snapshots yet")
    gone = _by_id(fns["map_open"](SimpleNamespace(row_value=[*row[:-1], "m/seed_9/raw__close"])))
    assert "m/seed_9/raw__close is not a run under" in gone["map-status"] and "run-dd" not in gone


def test_the_map_tab_follows_a_map_being_written(small_map, tmp_path):
    import gradio as gr

    from s2dlab.views.dashboard import build_demo

    root = _map_root(small_map, tmp_path)
    path = root / "m" / "map.json"
    m = json.loads(path.read_text())
    demo = build_demo(root, poll_seconds=1)
    fns = {f.api_name: f.fn for f in demo.fns.values() if f.api_name}
    first = fns["map"](None)
    seen = next(v for k, v in first.items() if isinstance(k, gr.State))
    assert seen[0] == "m"
    quiet = _by_id(fns["map_follow"]("m", seen))  # nothing new: nothing sent
    assert "map-plot" not in quiet and "map-table" not in quiet
    # the map as it was one cell earlier, written the way s2dlab map writes it: the tab draws it on its next look
    path.write_text(json.dumps({**m, "cells": m["cells"][:-1], "complete": False}))
    out = fns["map_follow"]("m", seen)
    shown = _by_id(out)
    assert shown["map-status"] == "" and len(shown["map-table"]["value"]) == len(m["cells"]) - 1
    assert f"{len(m['cells']) - 1} of {len(m['cells'])} cells" in shown["map-note"]
    assert next(v for k, v in out.items() if isinstance(k, gr.State)) != seen


def test_the_readmes_map_table_is_the_committed_maps_own():
    """The README's table of the C1 x C2 map is `map_table` of the map.json it links, character for character: a
    figure in it that the committed map does not hold fails here."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The C1 x C2 map", 1)[1].split("\n### ", 1)[0]
    linked = re.search(r"The map is \[`(docs/results/map_\w+\.json)`\]", section)
    assert linked, "the map section names no docs/results/map_*.json"
    committed = cmap.read_map(ROOT / linked[1])
    blocks = re.findall(r"```\n(teacher .*?)\n```", section, flags=re.S)
    assert blocks == [cmap.map_table(committed)]
    assert committed["complete"] and f"{len(committed['seeds'])} seed" in blocks[0]
