"""Each stage for a few steps on the tiny models: weights change, artifacts follow the run-store schema, reruns
are no-ops, interrupted stages resume."""

import json

import pytest
import torch

from s2dlab.config import load_config
from s2dlab.runs import create_run, open_run
from s2dlab.stages import base, common, direct_grpo, fkl_warmup, opd, student_grpo, teacher_grpo

SMALL = ["task.eval_size=8", "eval.n_samples=1", "eval.greedy=false", "probe.num_prompts=2", "probe.every=1",
         "probe.num_samples=2", "generation.max_new_tokens=32", "fkl_warmup.num_rollouts=32",
         "fkl_warmup.batch_size=8", "fkl_warmup.steps=2", "fkl_warmup.save_every=1", "opd.steps=2",
         "opd.batch_size=8", "opd.save_every=1"]
for _s in ("teacher_grpo", "student_grpo", "direct_grpo"):
    SMALL += [f"{_s}.steps=2", f"{_s}.prompts_per_step=4", f"{_s}.num_generations=4", f"{_s}.save_every=1"]

ROLLOUT_COLUMNS = {"stage", "step", "policy", "prompt_id", "sample_idx", "prompt", "completion", "answer", "extracted",
                   "correct", "reward", "token_ids", "tokens", "student_logprob", "teacher_logprob",
                   "implicit_reward", "reverse_kl", "forward_kl", "student_entropy", "teacher_entropy",
                   "teacher_topk_ids", "teacher_topk_logprobs"}


def small_config(*extra):
    return load_config("tiny", overrides=SMALL + list(extra))


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run folder with the shipped base models and stage 1, shared by the tests that start from them."""
    cfg = small_config()
    run = create_run(tmp_path_factory.mktemp("run"), cfg.to_dict(), cfg.seed)
    base.run(cfg, run)
    teacher_grpo.run(cfg, run)
    return cfg, run


def weights(run, stage):
    tok = common.tokenizer_for(load_config("tiny"), run)
    return {k: v.clone() for k, v in common.load_stage_model(load_config("tiny"), run, stage, tok, "cpu")
            .state_dict().items()}


def assert_all_changed(before, after):
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"parameters that did not change: {unchanged}"


def assert_stage_schema(run, stage, steps, probes=True):
    info = run.read_json(f"{stage}/stage.json")
    assert info["status"] == "done"
    assert (run.model_dir(stage) / "config.json").exists()
    assert (run.model_dir(stage) / "tokenizer.json").exists()
    metrics = run.metrics(stage)
    assert metrics and all("step" in m for m in metrics)
    assert max(m["step"] for m in metrics) == steps
    if probes:
        assert run.rollout_steps(stage) == list(range(0, steps + 1))
        df = run.rollouts(stage)
        assert ROLLOUT_COLUMNS <= set(df.columns)
        assert set(df["policy"]) == {"student", "teacher"}
        for row in df.to_dict("records"):
            n = len(row["token_ids"])
            assert n == row["length"] == len(row["tokens"]) == len(row["implicit_reward"]) == len(row["reverse_kl"])
            specials = {"<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|unk|>"}
            assert "".join(t for t in row["tokens"] if t not in specials) == row["completion"]
        assert any("probe/mean_reverse_kl" in m for m in metrics)


def test_base_shipped_models_are_copied(shared_run):
    cfg, run = shared_run
    for stage in base.STAGES:
        info = run.read_json(f"{stage}/stage.json")
        assert info["status"] == "done" and info["source"] == "shipped"
    tok = common.tokenizer_for(cfg, run)
    t = common.load_stage_model(cfg, run, "base_teacher", tok, "cpu")
    s = common.load_stage_model(cfg, run, "base_student", tok, "cpu")
    assert sum(p.numel() for p in t.parameters()) > sum(p.numel() for p in s.parameters())


def test_base_trains_from_scratch_with_best_checkpoint(tmp_path):
    cfg = small_config("base.source=train", "base.teacher_steps=4", "base.student_steps=4", "base.select_every=2",
                       "base.select_size=4")
    run = create_run(tmp_path, cfg.to_dict(), cfg.seed)
    base.run(cfg, run, roles=("student",))
    info = run.read_json("base_student/stage.json")
    assert info["status"] == "done" and info["select_step"] in (2, 4)
    best = run.read_json("base_student/best/best.json")
    assert [h["step"] for h in best["history"]] == [2, 4]
    assert [m["step"] for m in run.metrics("base_student") if "select/greedy_accuracy" in m] == [2, 4]
    fresh = common.fresh_model(cfg, "student", common.tokenizer_for(cfg, run)).state_dict()
    assert_all_changed(fresh, weights(run, "base_student"))


def test_shipped_base_refuses_another_task(tmp_path):
    from s2dlab.config import ConfigError

    cfg = small_config("task.n_terms=3")
    run = create_run(tmp_path, cfg.to_dict(), cfg.seed)
    with pytest.raises(ConfigError, match="task.n_terms=3 .*base.source=train"):
        base.run(cfg, run)


def test_teacher_grpo(shared_run):
    cfg, run = shared_run
    assert_stage_schema(run, "teacher_grpo", 2)
    assert_all_changed(weights(run, "base_teacher"), weights(run, "teacher_grpo"))
    m = [m for m in run.metrics("teacher_grpo") if "reward" in m]
    assert len(m) == 2 and all(0 <= x["reward"] <= 1 for x in m)
    before = teacher_grpo.run(cfg, run)  # rerun of a finished stage is a no-op
    assert before["status"] == "done" and len(run.metrics("teacher_grpo")) == len(run.metrics("teacher_grpo"))


@pytest.mark.parametrize("loss", ["sampled", "full"])
def test_fkl_warmup(shared_run, loss):
    cfg, run = shared_run
    cfg = small_config(f"fkl_warmup.loss={loss}")
    out = f"warmup_{loss}"
    fkl_warmup.run(cfg, run, out=out)
    assert_stage_schema(run, out, 2)
    assert_all_changed(weights(run, "base_student"), weights(run, out))
    assert len(common.read_jsonl(run.stage_dir(out) / "teacher_rollouts.jsonl")) == 32


@pytest.mark.parametrize("loss", ["full_reverse_kl", "sampled_token"])
def test_opd(shared_run, loss):
    cfg, run = shared_run
    cfg = small_config(f"opd.loss={loss}")
    out = f"opd_{loss}"
    opd.run(cfg, run, init="base_student", out=out)
    assert_stage_schema(run, out, 2)
    assert_all_changed(weights(run, "base_student"), weights(run, out))


def test_student_grpo_and_direct_grpo(shared_run):
    cfg, run = shared_run
    student_grpo.run(cfg, run, init="base_student", out="student_grpo")
    direct_grpo.run(cfg, run)
    for stage in ("student_grpo", "direct_grpo"):
        assert_stage_schema(run, stage, 2)
        assert_all_changed(weights(run, "base_student"), weights(run, stage))


def test_sampled_token_opd_resumes_after_interruption(shared_run, monkeypatch):
    cfg, run = shared_run
    cfg = small_config("opd.loss=sampled_token", "opd.steps=3", "opd.save_every=1", "probe.every=0")
    calls = {"n": 0}
    real = opd.sampled_token_loss

    def dying_loss(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during step 3
        return real(*args)

    monkeypatch.setattr(opd, "sampled_token_loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        opd.run(cfg, run, init="base_student", out="opd_resume")
    assert run.read_json("opd_resume/stage.json")["status"] == "running"
    assert json.loads((run.stage_dir("opd_resume") / "checkpoints/last/state.json").read_text())["step"] == 2
    monkeypatch.setattr(opd, "sampled_token_loss", real)
    opd.run(cfg, run, init="base_student", out="opd_resume")
    steps = [m["step"] for m in run.metrics("opd_resume") if "loss" in m]
    assert steps == [1, 2, 3]  # resumed at step 3, nothing logged twice
    assert run.read_json("opd_resume/stage.json")["status"] == "done"


def test_grpo_resumes_from_trainer_checkpoint(shared_run):
    cfg, run = shared_run
    c2 = small_config("direct_grpo.steps=1")
    from s2dlab.stages.grpo import run_grpo

    kw = dict(section=c2.direct_grpo, policy_from="base_student", role="student", counterpart_from=None,
              records=common.task_splits(c2)["student_rl"], stage="grpo_resume")
    run_grpo(c2, run, **kw)
    # pretend it was interrupted after its step-1 checkpoint and the user asks for 2 steps now
    state = run.read_json("grpo_resume/stage.json")
    run.write_json("grpo_resume/stage.json", {**state, "status": "running"})
    c3 = small_config("direct_grpo.steps=2")
    run_grpo(c3, run, **{**kw, "section": c3.direct_grpo})
    steps = [m["step"] for m in run.metrics("grpo_resume") if "reward" in m]
    assert steps == [1, 2]
    assert open_run(run.path).read_json("grpo_resume/stage.json")["status"] == "done"
