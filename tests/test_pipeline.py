import json
import statistics
import subprocess
import sys

import pytest

from s2dlab.config import load_config
from s2dlab.pipeline import aggregate, plan, results_table, run_pipeline
from s2dlab.runs import open_run
from tests.test_stages import SMALL


def test_plan_orders_stages_and_shares_labels():
    cfg = load_config("tiny")
    steps, arms = plan(cfg, ablations=True)
    order = [s.out for s in steps]
    assert order[:7] == ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd", "student_grpo",
                         "direct_grpo"]
    assert arms == {"workflow": "student_grpo", "direct_grpo": "direct_grpo", "raw_teacher": "raw_teacher.student_grpo",
                    "no_warmup": "no_warmup.student_grpo", "no_opd": "no_opd.student_grpo", "gold_sft": "gold_sft"}
    by_out = {s.out: s for s in steps}
    assert by_out["raw_teacher.fkl_warmup"].kwargs["teacher"] == "base_teacher"  # 2a+2b before stage 1
    assert by_out["raw_teacher.opd"].kwargs["teacher"] == "base_teacher"
    assert by_out["no_warmup.opd"].kwargs["init"] == "base_student"
    assert by_out["no_opd.student_grpo"].kwargs["init"] == "fkl_warmup"
    # the baseline spends as many student steps as warmup + OPD + student GRPO
    assert cfg.direct_grpo.steps == cfg.fkl_warmup.steps + cfg.opd.steps + cfg.student_grpo.steps
    steps, arms = plan(load_config("tiny", overrides=["opd.enabled=false"]))
    assert "opd" not in [s.out for s in steps] and steps[[s.out for s in steps].index("student_grpo")].kwargs[
        "init"] == "fkl_warmup"


def test_aggregate_mean_and_sd_known_values():
    per_seed = [{"seed": s, "eval": {"k": 4}, "arms": {"workflow": {"accuracy": a, "stage": "student_grpo"},
                                                        "direct_grpo": {"accuracy": b}}}
                for s, a, b in ((0, 0.5, 0.2), (1, 0.6, 0.1), (2, 0.7, 0.3))]
    agg = aggregate(per_seed)
    assert agg["arms"]["workflow"]["accuracy"] == pytest.approx(0.6)
    assert agg["arms"]["workflow"]["accuracy_sd"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))
    assert agg["arms"]["direct_grpo"]["accuracy_n"] == 3 and "stage" not in agg["arms"]["workflow"]
    table = results_table(agg)
    assert "60.0 ± 10.0" in table and "20.0 ± 10.0" in table


def test_end_to_end_run_with_ablations(tmp_path):
    out = tmp_path / "run"
    results = run_pipeline(load_config("tiny", overrides=SMALL), out, ablations=True, progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["arms"].keys() == results["arms"].keys() == {"workflow", "direct_grpo", "raw_teacher", "no_warmup",
                                                                 "no_opd", "gold_sft"}
    for arm in on_disk["arms"].values():
        assert 0 <= arm["accuracy"] <= 1 and "pass@1" in arm
    assert on_disk["teacher"]["base"] is not None and on_disk["teacher"]["rl"] is not None
    assert {"separation_before", "separation_after", "teacher_accuracy_before"} <= on_disk["c1"].keys()
    assert {"before_warmup", "after_warmup", "opd_start", "opd_end"} <= on_disk["c2"].keys()
    run = open_run(out)
    for stage in ("base_teacher", "teacher_grpo", "fkl_warmup", "opd", "student_grpo", "direct_grpo",
                  "raw_teacher.opd", "no_opd.student_grpo", "gold_sft"):
        assert run.eval(stage)["accuracy"] is not None, stage
    # rerunning the same folder is a resume: nothing is trained again
    before = {s: (run.stage_dir(s) / "stage.json").stat().st_mtime for s in run.stages()}
    run_pipeline(load_config("tiny", overrides=SMALL), out, ablations=True, progress=False)
    assert before == {s: (run.stage_dir(s) / "stage.json").stat().st_mtime for s in run.stages()}
    # the score command reads it back
    proc = subprocess.run([sys.executable, "-m", "s2dlab", "score", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "C1" in proc.stdout and "Token quadrants" in proc.stdout
