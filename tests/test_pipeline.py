"""The plan of the paper's Table 2, each arm's budget, the summary and its readers, end to end on tiny budgets."""

import json
import subprocess
import sys

import pytest

from s2dlab.core.config import ConfigError, load_config
from s2dlab.core.runs import create_run, open_run
from s2dlab.workflow import summary
from s2dlab.workflow.pipeline import DEFAULT_ARMS, find_step, plan, run_pipeline
from tests.test_stages import SMALL


def test_default_plan_is_the_four_stage_workflow_and_cold_grpo():
    cfg = load_config("tiny")
    steps, arms = plan(cfg)
    assert [s.name for s in steps] == ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd",
                                       "student_grpo", "cold_grpo"]
    assert set(arms) == set(DEFAULT_ARMS) == {"bridge_1h_stage3", "bridge_1h", "cold_grpo"}
    by = {s.name: s.kwargs for s in steps}
    assert by["teacher_grpo"]["labels"] == "1h" and by["fkl_warmup"]["prompts"] == "1h"
    assert by["opd"]["prompts"] == "1h" and by["student_grpo"]["labels"] == "2h"
    assert by["cold_grpo"]["labels"] == "pool" and by["cold_grpo"]["policy_from"] == "base_student"
    # cold GRPO gets at least the four-stage workflow's student steps
    assert cfg.cold_grpo.steps >= cfg.fkl_warmup.steps + cfg.opd.steps + cfg.student_grpo.steps


def test_ablation_plan_has_every_row_of_table_2():
    cfg = load_config("tiny")
    steps, arms = plan(cfg, ablations=True)
    assert set(arms) == {"bridge_1h_stage3", "bridge_1h", "bridge_1h_replay", "cold_grpo", "bridge",
                         "bridge_raw_teacher", "bridge_no_warmup", "bridge_no_opd", "bridge_sft_teacher", "gold_sft"}
    by = {s.name: s for s in steps}
    names = [s.name for s in steps]
    for s in steps:  # dependency order
        assert all(names.index(n) < names.index(s.name) for n in s.needs), s.name
    assert by["replay"].kwargs["labels"] == "1h" and by["replay"].kwargs["policy_from"] == "opd"
    assert by["replay"].kwargs["section"] == by["student_grpo"].kwargs["section"]  # same counts as stage 3
    assert by["full.teacher_grpo"].kwargs["labels"] == "pool"
    assert by["raw_teacher.fkl_warmup"].kwargs["teacher"] == "base_teacher"
    bridge = cfg.fkl_warmup.steps + cfg.opd.steps
    assert by["no_warmup.opd"].kwargs == dict(init="base_student", teacher="full.teacher_grpo", prompts="pool",
                                              steps=bridge)
    assert by["no_opd.fkl_warmup"].kwargs["loss"] == "sampled" and by["no_opd.fkl_warmup"].kwargs["steps"] == bridge
    assert by["teacher_sft"].kwargs["labels"] == "pool" and by["sft_teacher.opd"].kwargs["teacher"] == "teacher_sft"
    assert arms["bridge"].final == "full.opd" and arms["bridge_1h_stage3"].final == "student_grpo"


def test_find_step_names_every_stage():
    cfg = load_config("tiny")
    assert find_step(cfg, "full.opd").kwargs["teacher"] == "full.teacher_grpo"
    with pytest.raises(ConfigError, match="no stage named 'direct_grpo'; stages are: base, base_teacher"):
        find_step(cfg, "direct_grpo")


def _fake_stage(run, name, **info):
    run.write_json(f"{name}/stage.json", {"status": "done", **info})


def test_budget_counts_labels_steps_and_teacher_compute(tmp_path):
    """Known values on a hand-made lineage: the four-stage workflow and cold GRPO."""
    run = create_run(tmp_path / "r", {}, 0)
    _fake_stage(run, "base_teacher", role="teacher")
    _fake_stage(run, "base_student", role="student")
    _fake_stage(run, "teacher_grpo", role="teacher", init="base_teacher", steps=200, sequences=6400,
                labels={"set": "1h", "n": 1000, "kind": "answers"})
    _fake_stage(run, "fkl_warmup", role="student", init="base_student", teacher="teacher_grpo", steps=100,
                sequences=3200, rollouts_used=1990)
    _fake_stage(run, "opd", role="student", init="fkl_warmup", teacher="teacher_grpo", steps=100, sequences=3200)
    _fake_stage(run, "student_grpo", role="student", init="opd", counterpart="teacher_grpo", steps=100,
                sequences=3200, labels={"set": "2h", "n": 1000, "kind": "answers"})
    _fake_stage(run, "cold_grpo", role="student", init="base_student", counterpart="teacher_grpo", steps=300,
                sequences=9600, labels={"set": "pool", "n": 2000, "kind": "answers"})
    b = summary.budget(run, "student_grpo")
    assert (b["labels"], b["student_steps"], b["student_sequences"], b["teacher_steps"], b["teacher_sequences"],
            b["teacher_scored_sequences"]) == (2000, 300, 9600, 200, 6400, 1990 + 3200)
    assert b["stages"] == ["fkl_warmup", "opd", "student_grpo", "teacher_grpo"] and b["label_sets"] == ["1h", "2h"]
    c = summary.budget(run, "cold_grpo")  # the probe counterpart is not a teacher of cold GRPO
    assert (c["labels"], c["student_steps"], c["teacher_steps"], c["teacher_scored_sequences"]) == (2000, 300, 0, 0)
    assert summary.budget(run, "opd")["labels"] == 1000  # the bridge on 1H used 1H's labels through its teacher


def test_claims_read_paired_differences():
    good = [{f"p{i}": 1.0 if i % 2 else 0.5 for i in range(40)}]
    bad = [{f"p{i}": 0.25 for i in range(40)}]
    out = {c["id"]: c for c in summary.claims({"bridge": good, "cold_grpo": bad, "bridge_raw_teacher": good})}
    assert out["bridge_beats_cold"]["status"] == "holds" and out["bridge_beats_cold"]["verdict"] == "higher"
    assert out["bridge_beats_cold"]["difference"] == pytest.approx(0.5)
    assert out["P1"]["status"] == "reversed"  # the raw bridge significantly above cold GRPO
    assert "P2_warmup" not in out  # arms that were not run are not judged


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipe") / "run"
    result = run_pipeline(load_config("tiny", overrides=SMALL), out, ablations=True, progress=False)
    return out, result


def test_end_to_end_run_with_every_row(small_run):
    out, result = small_run
    on_disk = json.loads((out / "summary.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert on_disk["arms"] == results["arms"] == result["arms"]  # one computation, two files
    for key in ("c1", "c2"):  # the verdicts too, word for word, and the numbers they rest on
        assert results[key]["verdict"] == on_disk[key]["verdict"] and results[key]["verdict"]
    assert results["c1"]["comparisons"] == on_disk["c1"]["comparisons"]
    assert [p["change"] for p in results["c2"]["pairs"]] == [p.get("change") for p in on_disk["c2"]["pairs"]]
    assert set(on_disk["arms"]) == {"bridge_1h_stage3", "bridge_1h", "bridge_1h_replay", "cold_grpo", "bridge",
                                    "bridge_raw_teacher", "bridge_no_warmup", "bridge_no_opd", "bridge_sft_teacher",
                                    "gold_sft"}
    for name, arm in on_disk["arms"].items():
        assert 0 <= arm["accuracy"] <= 1 and arm["interval"]["n_problems"] == 8, name
        for key in ("labels", "student_steps", "student_sequences", "teacher_steps"):
            assert isinstance(arm[key], int), (name, key)
    a = on_disk["arms"]
    assert a["bridge_raw_teacher"]["labels"] == 0 and a["bridge_raw_teacher"]["teacher_steps"] == 0
    assert a["cold_grpo"]["labels"] == a["bridge"]["labels"] == a["bridge_1h_stage3"]["labels"] == 32
    assert a["bridge_1h"]["labels"] == 16
    assert a["bridge_no_warmup"]["student_steps"] == a["bridge_no_opd"]["student_steps"] == a["bridge"][
        "student_steps"] == 4
    assert a["bridge_1h_replay"]["student_steps"] == a["bridge_1h_stage3"]["student_steps"]
    assert {c["id"] for c in on_disk["claims"]} >= {"P1", "P2_warmup", "P2_opd", "P3", "teacher_sft_rl"}
    c1 = on_disk["c1"]
    assert {"base_teacher", "teacher_grpo", "full.teacher_grpo", "teacher_sft"} <= set(c1["teachers"])
    assert {c["teacher"] for c in c1["comparisons"]} == {"teacher_grpo", "full.teacher_grpo", "teacher_sft"}
    assert c1["teachers"]["base_teacher"]["rollouts"] == 8
    c2 = {p["stage"]: p for p in on_disk["c2"]["pairs"]}
    assert c2["fkl_warmup"]["teacher"] == "teacher_grpo" and c2["opd"]["init"] == "fkl_warmup"
    assert c2["fkl_warmup"]["before"]["n_rollouts"] == c2["fkl_warmup"]["after"]["n_rollouts"] == 8
    assert "probe/auroc" in on_disk["stages"]["teacher_grpo"]["metric_names"]
    run = open_run(out)
    for stage in on_disk["stages"]:
        assert run.eval(stage)["accuracy"] is not None, stage
    lens = json.loads((out / "lens" / "lens.json").read_text())  # the token lens, computed at the end of the run
    pairs = {(p["teacher"], p["student"]) for p in lens["pairs"]}
    assert {("teacher_grpo", "opd"), ("base_teacher", "opd"), ("full.teacher_grpo", "full.opd"),
            ("teacher_grpo", "cold_grpo"), ("base_teacher", "raw_teacher.opd")} <= pairs
    assert ("base_teacher", "base_teacher") not in pairs and all(s not in ("base_teacher", "teacher_grpo")
                                                                 for _, s in pairs)


def test_rerun_is_a_resume_and_the_cli_reads_the_same_summary(small_run):
    out, _ = small_run
    run = open_run(out)
    before = {s: (run.stage_dir(s) / "stage.json").stat().st_mtime for s in run.stages()}
    run_pipeline(load_config("tiny", overrides=SMALL), out, ablations=True, progress=False)
    assert before == {s: (run.stage_dir(s) / "stage.json").stat().st_mtime for s in run.stages()}
    proc = subprocess.run([sys.executable, "-m", "s2dlab", "score", str(out), "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout)
    on_disk = json.loads((out / "summary.json").read_text())
    assert printed["c1"] == on_disk["c1"] and printed["c2"] == on_disk["c2"] and printed["claims"] == on_disk["claims"]
    text = subprocess.run([sys.executable, "-m", "s2dlab", "score", str(out)], capture_output=True, text=True,
                          timeout=300).stdout
    assert on_disk["c1"]["verdict"].splitlines()[0] in text and "confident" in text


def test_old_run_without_summary_is_summarised_on_first_read(small_run, tmp_path):
    import shutil

    out, _ = small_run
    copy = tmp_path / "old"
    shutil.copytree(out, copy)
    (copy / "summary.json").unlink()
    got = summary.read_summary(copy)
    assert got["arms"] == json.loads((out / "summary.json").read_text())["arms"]
    assert (copy / "summary.json").exists()
