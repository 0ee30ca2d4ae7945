"""s2dlab.instruments.lens on a tiny run folder built here: stage models saved with save_pretrained, stage.json files, and one
probe snapshot written with run.write_rollouts. No training."""

import json

import numpy as np
import pytest

from s2dlab.core.errors import InputError, MissingError
from s2dlab.core.generation import sample
from s2dlab.core.models import TinyModelSpec, build_char_tokenizer, build_tiny_model
from s2dlab.core.runs import create_run
from s2dlab.core.scoring import score_rollouts
from s2dlab.instruments.estimators import snapshot_estimators
from s2dlab.instruments.lens import (
    SIGN_TOLERANCE,
    checkpoints,
    compute_lens,
    default_pairs,
    read_lens,
    read_lens_index,
    snapshot_pair,
)

SPEC = TinyModelSpec(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                     intermediate_size=64)
CONFIG = {"task": {"prompt_suffix": ""}, "models": {"teacher": "tiny", "student": "tiny"}}
RECORDS = [{"id": "p0", "prompt": "1+2=?", "answer": "3"}, {"id": "p1", "prompt": "4-6+1=?", "answer": "-1"}]


def save_stage(run, tok, stage, seed, **info):
    model = build_tiny_model(SPEC, tok, seed=seed)
    model.save_pretrained(run.model_dir(stage))
    tok.save_pretrained(run.model_dir(stage))
    run.write_json(f"{stage}/stage.json", {"status": "done", **info})
    return model


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """base_teacher, base_student, teacher_grpo, opd, student_grpo; a teacher_grpo snapshot at step 0 scored by
    (base_teacher, base_student), as teacher GRPO's first probe is, and a later one at step 10."""
    root = tmp_path_factory.mktemp("runs")
    run = create_run(root / "tiny", config=CONFIG, seed=0)
    tok = build_char_tokenizer()
    tok.save_pretrained(run.path / "tokenizer")
    base_t = save_stage(run, tok, "base_teacher", 1, source="shipped", role="teacher")
    base_s = save_stage(run, tok, "base_student", 2, role="student")
    save_stage(run, tok, "teacher_grpo", 3, role="teacher", init="base_teacher", counterpart="base_student",
               steps=10)
    save_stage(run, tok, "opd", 4, init="base_student", teacher="teacher_grpo", steps=20)
    save_stage(run, tok, "student_grpo", 5, role="student", init="opd", counterpart="teacher_grpo")
    rollouts = sample(base_s, tok, RECORDS, n=2, max_new_tokens=12, seed=0, progress=False)
    rollouts += sample(base_t, tok, RECORDS, n=1, max_new_tokens=12, seed=1, progress=False, policy="teacher")
    rows = score_rollouts(base_s, base_t, tok, rollouts, stage="teacher_grpo", step=0,
                          answers={r["id"]: r["answer"] for r in RECORDS}, grade_fn=lambda c, a: False)
    run.write_rollouts("teacher_grpo", 0, rows)
    run.write_rollouts("teacher_grpo", 10, rows[:1])
    return run, rows


def test_checkpoint_discovery_and_default_pairs(tiny_run):
    run, _ = tiny_run
    ckpts = {c["stage"]: c for c in checkpoints(run)}
    assert list(ckpts) == ["base_teacher", "base_student", "teacher_grpo", "opd", "student_grpo"]
    assert {s for s, c in ckpts.items() if c["role"] == "teacher"} == {"base_teacher", "teacher_grpo"}
    assert ckpts["opd"]["teacher"] == "teacher_grpo"
    assert ckpts["student_grpo"]["teacher"] == "teacher_grpo"  # through its init chain (opd)
    assert ckpts["base_student"]["teacher"] is None
    assert ckpts["opd"]["source"] == str(run.model_dir("opd"))
    pairs = default_pairs(list(ckpts.values()))
    assert pairs == [("base_teacher", "base_student"), ("teacher_grpo", "base_student"),
                     ("teacher_grpo", "opd"), ("base_teacher", "opd"),
                     ("teacher_grpo", "student_grpo"), ("base_teacher", "student_grpo")]


def test_roles_come_from_the_stage_records_not_from_names(tmp_path):
    """A student stage whose name holds "teacher" (`raw_teacher.opd`) is a student; a stage another one distilled
    from is a teacher whatever it is called."""
    run = create_run(tmp_path / "names", config=CONFIG, seed=0)
    tok = build_char_tokenizer()
    save_stage(run, tok, "base_teacher", 1, role="teacher")
    save_stage(run, tok, "mentor", 2, role="student")  # recorded as a student, but OPD below learns from it
    save_stage(run, tok, "raw_teacher.opd", 3, role="student", init="mentor", teacher="base_teacher")
    save_stage(run, tok, "pupil", 4, role="student", teacher="mentor")
    roles = {c["stage"]: c["role"] for c in checkpoints(run)}
    assert roles == {"base_teacher": "teacher", "mentor": "teacher", "raw_teacher.opd": "student", "pupil": "student"}


def test_compute_lens_rescores_the_first_snapshot(tiny_run):
    run, rows = tiny_run
    index = compute_lens(run, progress=False)
    assert index["source"] == {"stage": "teacher_grpo", "step": 0}  # the first snapshot, not step 10
    assert (run.path / "lens" / "lens.parquet").is_file()
    assert not list((run.path / "lens").glob(".*.tmp"))
    assert json.loads((run.path / "lens" / "lens.json").read_text()) == read_lens_index(run) == index
    assert "lens" not in run.stages()
    P, R = len(index["pairs"]), len(rows)
    assert P == 6 and len(index["rollouts"]) == R and index["n_rows"] == P * R
    assert [r["policy"] for r in index["rollouts"]].count("teacher") == 2

    df = read_lens(run)
    assert len(df) == P * R and list(df["rollout"]) == sorted(df["rollout"])
    # The pair that scored the snapshot gives back its stored scores: the rebuilt prompts are the sampled ones.
    same = df[(df["teacher"] == "base_teacher") & (df["student"] == "base_student")]
    for (_, got), ref in zip(same.iterrows(), rows):
        assert got["token_ids"] == ref["token_ids"] and got["tokens"] == ref["tokens"]
        for name in ("implicit_reward", "reverse_kl", "forward_kl", "student_logprob", "teacher_logprob"):
            np.testing.assert_allclose(got[name], ref[name], atol=1e-5, err_msg=name)
    # Other pairs really differ (different random models).
    other = df[(df["teacher"] == "teacher_grpo") & (df["student"] == "opd")]
    assert not np.allclose(other.iloc[0]["implicit_reward"], same.iloc[0]["implicit_reward"])


def test_sign_changes_match_an_independent_count(tiny_run):
    run, _ = tiny_run
    compute_lens(run, progress=False)
    df = read_lens(run)
    total = 0
    for i, group in df.groupby("rollout"):
        ir = np.array(group["implicit_reward"].tolist())  # [pairs, tokens]
        expected = (ir > SIGN_TOLERANCE).any(0) & (ir < -SIGN_TOLERANCE).any(0)
        for _, row in group.iterrows():
            assert row["sign_change"] == expected.tolist()
            assert row["n_sign_changes"] == int(expected.sum())
            assert row["sign"] == np.where(np.array(row["implicit_reward"]) > SIGN_TOLERANCE, 1,
                                           np.where(np.array(row["implicit_reward"]) < -SIGN_TOLERANCE, -1, 0)
                                           ).tolist()
        total += int(expected.sum())
    assert total > 0  # random models disagree somewhere, so the flag is exercised


def test_read_one_rollout_by_index_and_key(tiny_run):
    run, _ = tiny_run
    index = compute_lens(run, pairs=[("teacher_grpo", "opd"), ("base_teacher", "opd")], progress=False)
    assert [(p["teacher"], p["student"]) for p in index["pairs"]] == [("teacher_grpo", "opd"), ("base_teacher", "opd")]
    key = index["rollouts"][2]["key"]
    by_index, by_key = read_lens(run, rollout=2), read_lens(run, rollout=key)
    assert list(by_index["pair"]) == [0, 1] and list(by_index["rollout_key"]) == [key, key]
    assert by_index.equals(by_key)
    assert read_lens(run, rollout=999).empty


def test_linked_model_source_counts_as_a_checkpoint(tmp_path):
    run = create_run(tmp_path / "linked", config=CONFIG, seed=0)
    tok = build_char_tokenizer()
    folder = tmp_path / "elsewhere"
    build_tiny_model(SPEC, tok, seed=9).save_pretrained(folder)
    tok.save_pretrained(folder)
    run.update_stage("base_teacher", status="done", model_source=str(folder), role="teacher")  # as link_stage does
    (ck,) = checkpoints(run)
    assert ck == {"stage": "base_teacher", "role": "teacher", "source": str(folder), "teacher": None, "init": None}


def test_missing_checkpoints_snapshot_and_bad_pairs(tiny_run, tmp_path):
    empty = create_run(tmp_path / "empty", config=CONFIG, seed=0)
    with pytest.raises(MissingError, match="no stage of this run saved a model"):
        compute_lens(empty, progress=False)
    assert read_lens(empty).empty and read_lens_index(empty) is None
    run = create_run(tmp_path / "nosnap", config=CONFIG, seed=0)
    tok = build_char_tokenizer()
    save_stage(run, tok, "base_teacher", 1, role="teacher")
    save_stage(run, tok, "base_student", 2, role="student")
    with pytest.raises(MissingError, match="no rollout snapshot"):
        compute_lens(run, progress=False)
    with pytest.raises(InputError, match="'gold_sft' has no saved model"):
        compute_lens(tiny_run[0], pairs=[("teacher_grpo", "gold_sft")], progress=False)


def test_snapshot_pair_names_the_models_that_took_a_snapshot(tiny_run):
    run, _ = tiny_run
    assert snapshot_pair(run, "teacher_grpo", 0) == ("base_teacher", "base_student", True)  # init teacher
    assert snapshot_pair(run, "teacher_grpo", 10) == ("teacher_grpo", "base_student", True)  # final teacher
    assert snapshot_pair(run, "teacher_grpo", 5) == ("teacher_grpo", "base_student", False)  # never saved
    assert snapshot_pair(run, "opd", 0) == ("teacher_grpo", "base_student", True)
    assert snapshot_pair(run, "opd", 20) == ("teacher_grpo", "opd", True)
    with pytest.raises(MissingError, match="names no teacher"):
        snapshot_pair(run, "base_student", 0)


def test_snapshot_estimators_rescore_with_the_snapshot_models(tiny_run):
    run, rows = tiny_run
    out = snapshot_estimators(run, "teacher_grpo", 0, with_rows=True)
    assert (out["teacher"], out["student"], out["models_match_snapshot"]) == ("base_teacher", "base_student", True)
    student_rows = [r for r in rows if r["policy"] == "student"]
    assert out["summary"]["n_rollouts"] == len(student_rows) == len(out["rows"])
    for est, ref in zip(out["rows"], student_rows):
        np.testing.assert_allclose(est["reverse_kl"], ref["reverse_kl"], atol=1e-5)
        np.testing.assert_allclose(est["k1"], [-x for x in ref["implicit_reward"]], atol=1e-5)
    tokens = sum(r["length"] for r in student_rows)
    assert out["summary"]["n_tokens"] == tokens
    assert out["summary"]["mean_reverse_kl"] == pytest.approx(
        sum(sum(r["reverse_kl"]) for r in student_rows) / tokens, abs=1e-6)
