"""The dashboard views that run saved checkpoints (s2dlab.views.dashboard.live) on the committed fixture run: the
counterfactual branches at a position and the KL estimator panel, and the sentences bad input gets."""

import math
import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from s2dlab.instruments.branches import MAX_BRANCH_SAMPLES  # noqa: E402
from s2dlab.instruments.estimators import estimator_names  # noqa: E402
from s2dlab.views.dashboard import data as cb  # noqa: E402
from s2dlab.views.dashboard import live, models  # noqa: E402

DATA = Path(__file__).parent / "data"
RUN = "fixture_run"


@pytest.fixture(scope="module")
def store():
    return cb.Store(DATA)


@pytest.fixture(scope="module")
def final_opd(store):
    """The last OPD snapshot (taken by opd's saved model and its teacher) and its first student rollout."""
    step = store.steps(RUN, "opd")[-1]
    df = store.snapshot(RUN, "opd", step)
    row = df[df["policy"] == "student"].iloc[0]
    return step, row


def test_snapshot_models_and_pruned_checkpoints(store, final_opd):
    step, _ = final_opd
    assert live.snapshot_models(store, RUN, "opd", step) == ("teacher_grpo", "opd", True)
    pruned = store.steps(RUN, "raw_teacher.opd")[-1]  # its weights are not in the fixture
    with pytest.raises(cb.AppError, match="saved no model"):
        live.snapshot_models(store, RUN, "raw_teacher.opd", pruned)


def test_branch_candidates_are_the_students_token_and_the_teachers_alternatives(store, final_opd):
    step, row = final_opd
    choices, default, info = live.branch_candidates(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]),
                                                    1)
    y_t = int(row["token_ids"][1])
    assert choices[0][1] == str(y_t) and "the student's token" in choices[0][0]
    stored = [int(i) for i in row["teacher_topk_ids"][1] if int(i) >= 0 and int(i) != y_t]
    assert [int(v) for _, v in choices[1:]] == stored
    assert default == [c[1] for c in choices[:3]]
    assert f"implicit reward {float(row['implicit_reward'][1]):+.3f}" in info


def test_branch_view_samples_each_branch(store, final_opd):
    step, row = final_opd
    choices, default, _ = live.branch_candidates(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), 2)
    table, fig, note = live.branch_view(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), 2,
                                        default, n_samples=4, max_new_tokens=8, seed=3)
    assert list(table.columns) == live.BRANCH_COLUMNS and list(table["token id"]) == [int(c) for c in default]
    assert (table["n"] == 4).all() and table["success rate"].between(0, 1).all()
    assert (table["Wilson low"] <= table["success rate"]).all()
    assert (table["success rate"] <= table["Wilson high"]).all()
    # the student's token, scored now by the same student checkpoint, has the probability the snapshot stored
    mine = table[table["branch"] == "student's token"].iloc[0]
    assert mine["p student"] == pytest.approx(math.exp(float(row["student_logprob"][2])), abs=1e-3)
    assert "Sampled from **opd**" in note and "teacher_grpo" in note and len(fig.data) == 2
    again, *_ = live.branch_view(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), 2, default,
                                 n_samples=4, max_new_tokens=8, seed=3)
    assert again.equals(table)  # seeded: the same branches give the same table


def test_branch_bad_input_is_a_sentence(store, final_opd, monkeypatch):
    step, row = final_opd
    pid, idx, n = row["prompt_id"], int(row["sample_idx"]), len(row["token_ids"])
    y = [str(int(row["token_ids"][0]))]
    with pytest.raises(cb.AppError, match=f"Position {n} is past the end of this rollout: it has {n} tokens"):
        live.branch_view(store, RUN, "opd", step, pid, idx, n, y, 4, 8)
    with pytest.raises(cb.AppError, match=f"N={MAX_BRANCH_SAMPLES + 1} .* outside 1..{MAX_BRANCH_SAMPLES}"):
        live.branch_view(store, RUN, "opd", step, pid, idx, 0, y, MAX_BRANCH_SAMPLES + 1, 8)
    with pytest.raises(cb.AppError, match="Tick at least one branch"):
        live.branch_view(store, RUN, "opd", step, pid, idx, 0, [], 4, 8)
    with pytest.raises(cb.AppError, match="Click a token"):
        live.branch_candidates(store, RUN, "opd", step, pid, idx, None)
    with pytest.raises(cb.AppError, match="No student rollout"):
        live.branch_view(store, RUN, "opd", step, pid, 99, 0, y, 4, 8)
    monkeypatch.setattr(models, "LARGE_MODEL_BYTES", 1)
    monkeypatch.setattr(models, "cuda", lambda: False)
    with pytest.raises(cb.AppError, match="no GPU is available"):
        live.branch_view(store, RUN, "opd", step, pid, idx, 0, y, 4, 8)


def test_probe_branch_auroc(store, final_opd):
    step, _ = final_opd
    table, note = live.probe_branch_view(store, RUN, "opd", step, positions_per_rollout=1, n_samples=2,
                                         max_new_tokens=6, progress=False)
    df = store.snapshot(RUN, "opd", step)
    assert table["n_positions"].iloc[0] == int((df["policy"] == "student").sum())
    assert table["n_drop"].iloc[0] + table["n_rise"].iloc[0] + table["n_flat"].iloc[0] == table["n_scored"].iloc[0]
    assert "AUROC of −implicit reward" in note


def test_estimators_view(store, final_opd):
    step, row = final_opd
    key = f"{row['prompt_id']}/{int(row['sample_idx'])}"
    bias, tail, grad, per_token, fig, note = live.estimators_view(store, RUN, "opd", step, key)
    assert list(bias["estimator"]) == estimator_names() and list(bias.columns) == live.ESTIMATOR_COLUMNS
    df = store.snapshot(RUN, "opd", step)
    n_tokens = int(sum(len(t) for t in df[df["policy"] == "student"]["token_ids"]))
    assert (bias["n"] == n_tokens).all() and list(tail["k"]) == [1, 8, 64]
    assert (bias[bias["estimator"] == "k3"]["frac_negative"] == 0).all()  # k3 >= 0 always
    assert len(per_token) == len(row["token_ids"]) and list(per_token["token"]) == [repr(t) for t in row["tokens"]]
    # k1 is minus the implicit reward of the sampled token; the fixture's teacher is stored in float16, so its
    # log-probs differ from the snapshot's (taken in float32) by rounding only
    assert list(per_token["k1"]) == pytest.approx([-float(v) for v in row["implicit_reward"]], abs=0.05)
    assert "Gradient agreement" in grad and "re-scored by **opd** (student) and **teacher_grpo**" in note
    assert "mid-stage" not in note
    assert live.estimators_view(store, RUN, "opd", step, key)[0].equals(bias)  # cached
    pruned = store.steps(RUN, "raw_teacher.opd")[-1]
    with pytest.raises(cb.AppError, match="saved no model"):
        live.estimators_view(store, RUN, "raw_teacher.opd", pruned)


def test_a_stages_first_snapshot_branches_with_the_model_it_started_from(store):
    """Step 0 of a distillation stage was sampled by the stage's init (the base student for the warmup)."""
    df = store.snapshot(RUN, "fkl_warmup", 0)
    row = df[df["policy"] == "student"].iloc[0]
    assert live.snapshot_models(store, RUN, "fkl_warmup", 0) == ("teacher_grpo", "base_student", True)
    table, _, note = live.branch_view(store, RUN, "fkl_warmup", 0, row["prompt_id"], int(row["sample_idx"]), 1,
                                      [str(int(row["token_ids"][1]))], n_samples=2, max_new_tokens=4)
    assert "Sampled from **base_student**" in note
    assert table["p student"].iloc[0] == pytest.approx(math.exp(float(row["student_logprob"][1])), abs=1e-3)


@pytest.mark.parametrize("position, said", [(-3, "Position -3 is before the start of this rollout: positions run 0.."),
                                            (2.5, "Position 2.5 is not a whole number"),
                                            ("x", "Position 'x' is not a number")])
def test_branch_positions_get_a_sentence(store, final_opd, position, said):
    step, row = final_opd
    with pytest.raises(cb.AppError, match=said):
        live.branch_candidates(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), position)
    with pytest.raises(cb.AppError, match="N=2.5 is not a whole number"):
        live.branch_view(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), 1,
                         [str(int(row["token_ids"][1]))], 2.5, 8)
    with pytest.raises(cb.AppError, match="The branch seed -1 is out of range"):
        live.branch_view(store, RUN, "opd", step, row["prompt_id"], int(row["sample_idx"]), 1,
                         [str(int(row["token_ids"][1]))], 2, 8, seed=-1)
