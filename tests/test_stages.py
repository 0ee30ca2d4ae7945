"""Each stage for a few steps on the tiny models: weights change, artifacts follow the run-store schema, stage.json
records what the stage spent, reruns are no-ops, interrupted stages resume."""

import json

import pytest
import torch

from s2dlab.core import data
from s2dlab.core.config import ConfigError, load_config
from s2dlab.core.runs import create_run, open_run
from s2dlab.workflow.stages import base, fkl_warmup, grpo, lifecycle, opd, sft

SMALL = ["task.eval_size=8", "task.val_size=8", "task.pool_size=32", "eval.n_samples=1", "eval.greedy=false",
         "probe.num_prompts=2", "probe.every=1", "probe.num_samples=2", "probe.c1_prompts=4", "probe.c1_samples=2",
         "generation.max_new_tokens=32", "fkl_warmup.rollouts_per_prompt=1", "fkl_warmup.batch_size=8",
         "fkl_warmup.steps=2", "fkl_warmup.save_every=1", "opd.steps=2", "opd.batch_size=8",
         "opd.rollouts_per_prompt=4", "opd.save_every=1", "teacher_sft.steps=2", "teacher_sft.batch_size=8",
         "gold_sft.steps=2", "gold_sft.batch_size=8"]
# the task the shipped base models were pretrained on (so the tests start from them whatever the defaults say)
SMALL += [f"{k}={v}" for k, v in base.shipped_info()["config"].items() if k != "task.prompt_suffix"]
for _s in ("teacher_grpo", "student_grpo", "cold_grpo"):
    SMALL += [f"{_s}.steps=2", f"{_s}.prompts_per_step=2", f"{_s}.num_generations=4", f"{_s}.save_every=1"]

ROLLOUT_COLUMNS = {"stage", "step", "policy", "prompt_id", "sample_idx", "prompt", "completion", "answer", "extracted",
                   "correct", "reward", "token_ids", "tokens", "student_logprob", "teacher_logprob",
                   "implicit_reward", "reverse_kl", "forward_kl", "student_entropy", "teacher_entropy",
                   "teacher_topk_ids", "teacher_topk_logprobs"}


def small_config(*extra):
    return load_config("tiny", overrides=SMALL + list(extra))


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One run folder with the shipped base models and stage 1 on 1H, shared by the tests that start from them."""
    cfg = small_config()
    run = create_run(tmp_path_factory.mktemp("run"), cfg.to_dict(), cfg.seed)
    base.run(cfg, run)
    grpo.run(cfg, run, out="teacher_grpo", section="teacher_grpo", policy_from="base_teacher", role="teacher",
             labels="1h", counterpart_from="base_student")
    return cfg, run


def weights(run, stage):
    cfg = load_config("tiny")
    tok = lifecycle.tokenizer_for(cfg, run)
    return {k: v.clone() for k, v in lifecycle.load_stage_model(cfg, run, stage, tok, "cpu").state_dict().items()}


def assert_all_changed(before, after):
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"parameters that did not change: {unchanged}"


def assert_stage_schema(run, stage, steps, probes=True):
    info = run.read_json(f"{stage}/stage.json")
    assert info["status"] == "done" and info["steps"] == steps and info["sequences"] > 0
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
    return info


def test_base_shipped_models_are_copied(shared_run):
    cfg, run = shared_run
    for stage in base.STAGES:
        info = run.read_json(f"{stage}/stage.json")
        assert info["status"] == "done" and info["source"] == "shipped"
    tok = lifecycle.tokenizer_for(cfg, run)
    t = lifecycle.load_stage_model(cfg, run, "base_teacher", tok, "cpu")
    s = lifecycle.load_stage_model(cfg, run, "base_student", tok, "cpu")
    assert sum(p.numel() for p in t.parameters()) > sum(p.numel() for p in s.parameters())
    # the shipped evaluation comes along; evaluate_stage reuses it only for the eval config it was made with
    shipped = json.loads((base.SHIPPED / "student" / "eval.json").read_text())
    assert run.eval("base_student")["accuracy"] == shipped["accuracy"] == base.shipped_info()["student"]["eval_avg@4"]
    from s2dlab.workflow.evaluate import _eval_key

    assert shipped["config"] == _eval_key(load_config("tiny")) != _eval_key(cfg)


def test_a_shipped_evaluation_is_reused_only_on_its_own_problems(tmp_path):
    """The shipped eval.json was made on the default eval split: a run drawing other eval problems (here the long
    tail, with every eval.* setting the same) evaluates the base student again."""
    from s2dlab.core.data import eval_sets, records_digest
    from s2dlab.workflow.evaluate import evaluate_stage

    shipped = json.loads((base.SHIPPED / "student" / "eval.json").read_text())
    for overrides, reused in (([], True), (["task.family_tail=1"], False)):
        cfg = load_config("tiny", overrides=overrides)
        run = create_run(tmp_path / str(len(overrides)), cfg.to_dict(), cfg.seed)
        base.run(cfg, run, roles=("student",))
        ev = evaluate_stage(cfg, run, "base_student", progress=False)
        assert ev["config"]["data"] == records_digest(eval_sets(cfg))
        assert (ev["sets"] == shipped["sets"]) is reused


def test_base_trains_from_scratch_with_best_checkpoint(tmp_path):
    cfg = small_config("base.source=train", "base.teacher_steps=4", "base.student_steps=4", "base.select_every=2",
                       "base.select_size=4", "task.corpus_size=64")
    run = create_run(tmp_path, cfg.to_dict(), cfg.seed)
    base.run(cfg, run, roles=("student",))
    info = run.read_json("base_student/stage.json")
    assert info["status"] == "done" and info["select_step"] in (2, 4)
    best = run.read_json("base_student/best/best.json")
    assert [h["step"] for h in best["history"]] == [2, 4]
    assert [m["step"] for m in run.metrics("base_student") if "select/greedy_accuracy" in m] == [2, 4]
    fresh = lifecycle.fresh_model(cfg, "student", lifecycle.tokenizer_for(cfg, run)).state_dict()
    assert_all_changed(fresh, weights(run, "base_student"))


def test_shipped_base_refuses_another_task(tmp_path):
    cfg = small_config("task.n_terms=3")
    run = create_run(tmp_path, cfg.to_dict(), cfg.seed)
    with pytest.raises(ConfigError, match="task.n_terms=3 .*base.source=train"):
        base.run(cfg, run)
    with pytest.raises(ConfigError, match="task.slip_rate=0.25 .*base.source=train"):
        base.run(small_config("task.slip_rate=0.25"), run)


def test_teacher_grpo_records_its_labels(shared_run):
    cfg, run = shared_run
    info = assert_stage_schema(run, "teacher_grpo", 2)
    assert info["role"] == "teacher" and info["init"] == "base_teacher" and info["counterpart"] == "base_student"
    assert info["labels"] == {"set": "1h", "n": 16, "kind": "answers"} and "teacher" not in info
    assert info["sequences"] == 2 * 2 * 4  # steps x prompts x group
    assert_all_changed(weights(run, "base_teacher"), weights(run, "teacher_grpo"))
    m = [m for m in run.metrics("teacher_grpo") if "reward" in m]
    assert len(m) == 2 and all(0 <= x["reward"] <= 1 for x in m)
    again = grpo.run(cfg, run, out="teacher_grpo", section="teacher_grpo", policy_from="base_teacher",
                     role="teacher", labels="1h")  # a finished stage is a no-op
    assert again == run.read_json("teacher_grpo/stage.json")


@pytest.mark.parametrize("loss,top_k", [("full", 0), ("full", 8), ("sampled", 0)])
def test_fkl_warmup(shared_run, loss, top_k):
    cfg, run = shared_run
    cfg = small_config(f"fkl_warmup.loss={loss}", f"fkl_warmup.top_k={top_k}")
    out = f"warmup_{loss}_{top_k}"
    fkl_warmup.run(cfg, run, out=out, init="base_student", teacher="teacher_grpo", prompts="1h")
    info = assert_stage_schema(run, out, 2)
    assert info["teacher"] == "teacher_grpo" and info["loss"] == loss and info["prompts"] == {"set": "1h", "n": 16}
    assert "labels" not in info  # label-free: the warmup reads prompts, never answers
    assert_all_changed(weights(run, "base_student"), weights(run, out))
    rollouts = data.read_jsonl(run.stage_dir(out) / "teacher_rollouts.jsonl")
    assert len(rollouts) == 16 and all(r["completion_ids"] for r in rollouts)
    if loss == "full":
        cache = torch.load(run.stage_dir(out) / "teacher_cache.pt")
        assert len(cache) == info["rollouts_used"]
        assert cache[0]["logp"].shape[1] == (top_k or 100)
    if top_k:
        t = info["truncation"]
        # lumping the tail can only lower a KL: the truncated value never exceeds the exact one
        assert 0 <= t["start"]["error"] and t["start"]["truncated"] <= t["start"]["exact"] + 1e-6
        assert 0 <= t["start"]["teacher_tail_mass"] < 1 and "end" in t


def test_forward_kl_terms_known_values():
    """The cached-distribution loss against torch's own KL, full and with a top-k + tail bucket."""
    g = torch.Generator().manual_seed(0)
    s = torch.log_softmax(torch.randn(5, 12, generator=g), -1)
    t = torch.log_softmax(torch.randn(5, 12, generator=g) * 2, -1)
    full = fkl_warmup.forward_kl_terms(s, t, None, None)
    ref = torch.nn.functional.kl_div(s, t, log_target=True, reduction="none").sum(-1)  # KL(pT || pS)
    assert torch.allclose(full, ref, atol=1e-6)
    top, ids = t.topk(4, dim=-1)
    tail = torch.log1p(-top.exp().sum(-1))
    lumped = fkl_warmup.forward_kl_terms(s, top, ids, tail)
    # the same KL computed on explicit 5-outcome distributions (4 tokens + the rest of the mass)
    s_top = s.gather(-1, ids)
    p5 = torch.cat([top.exp(), tail.exp().unsqueeze(-1)], -1)
    q5 = torch.cat([s_top.exp(), 1 - s_top.exp().sum(-1, keepdim=True)], -1)
    assert torch.allclose(lumped, (p5 * (p5.log() - q5.log())).sum(-1), atol=1e-5)
    assert (lumped <= full + 1e-6).all()
    everything = fkl_warmup.forward_kl_terms(s, *t.topk(12, dim=-1), torch.full((5,), -30.0))
    assert torch.allclose(everything, full, atol=1e-5)


@pytest.mark.parametrize("loss", ["full_reverse_kl", "sampled_token"])
def test_opd(shared_run, loss):
    cfg, run = shared_run
    cfg = small_config(f"opd.loss={loss}")
    out = f"opd_{loss}"
    opd.run(cfg, run, out=out, init="base_student", teacher="teacher_grpo", prompts="1h")
    info = assert_stage_schema(run, out, 2)
    assert info["rollouts_per_prompt"] == 4 and info["sequences"] == 16 and info["teacher"] == "teacher_grpo"
    assert_all_changed(weights(run, "base_student"), weights(run, out))


def test_opd_repeats_each_prompt_rollouts_per_prompt_times(shared_run):
    cfg, run = shared_run
    cfg = small_config("opd.steps=1", "probe.num_prompts=0")
    seen = []
    real = opd.OPDTrainer._generate_and_score_completions

    def spy(self, inputs):
        seen.append([str(x["prompt"]) for x in inputs])
        return real(self, inputs)

    opd.OPDTrainer._generate_and_score_completions = spy
    try:
        opd.run(cfg, run, out="opd_groups", init="base_student", teacher="teacher_grpo", prompts="1h")
    finally:
        opd.OPDTrainer._generate_and_score_completions = real
    (batch,) = seen
    assert len(batch) == 8 and len(set(batch)) == 2 and all(batch.count(p) == 4 for p in set(batch))


def test_sampled_token_loss_gradient_matches_full_reverse_kl_in_expectation():
    """The score-function loss -A log pS(y) with A = log pT(y) - log pS(y) held fixed has, averaged over y ~ pS, the
    gradient of the full-vocabulary reverse KL (the identity the sampled-token OPD loss rests on)."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(7, generator=g, requires_grad=True)
    t_logp = torch.log_softmax(torch.randn(7, generator=g), -1)
    logp = torch.log_softmax(z, -1)
    kl = (logp.exp() * (logp - t_logp)).sum()
    (exact,) = torch.autograd.grad(kl, z)
    # expectation over y ~ pS, summed exactly over the 7 outcomes
    logp = torch.log_softmax(z, -1)
    p = logp.exp().detach()
    surrogate = sum(p[y] * -(t_logp[y] - logp[y]).detach() * logp[y] for y in range(7))
    (estimate,) = torch.autograd.grad(surrogate, z)
    assert torch.allclose(exact, estimate, atol=1e-6)


def test_student_grpo_replay_and_cold_grpo(shared_run):
    cfg, run = shared_run
    for out, section, labels in (("student_grpo", "student_grpo", "2h"), ("replay", "student_grpo", "1h"),
                                 ("cold_grpo", "cold_grpo", "pool")):
        grpo.run(cfg, run, out=out, section=section, policy_from="base_student", role="student", labels=labels,
                 counterpart_from="teacher_grpo")
        info = assert_stage_schema(run, out, 2)
        assert info["labels"]["set"] == labels and info["counterpart"] == "teacher_grpo" and "teacher" not in info
        assert_all_changed(weights(run, "base_student"), weights(run, out))
    assert run.read_json("cold_grpo/stage.json")["labels"]["n"] == 32


def test_sft_teacher_and_gold_sft(shared_run):
    cfg, run = shared_run
    sft.run(cfg, run, out="teacher_sft", section="teacher_sft", init="base_teacher", role="teacher", labels="pool",
            counterpart_from="base_student")
    info = assert_stage_schema(run, "teacher_sft", 2)
    assert info["role"] == "teacher" and info["labels"] == {"set": "pool", "n": 32, "kind": "solutions"}
    assert_all_changed(weights(run, "base_teacher"), weights(run, "teacher_sft"))
    sft.run(cfg, run, out="gold_sft", section="gold_sft", init="base_student", role="student", labels="pool")
    assert_stage_schema(run, "gold_sft", 2, probes=False)  # no counterpart given: no probes


def test_grpo_resumes_from_trainer_checkpoint(shared_run):
    cfg, run = shared_run
    kw = dict(out="grpo_resume", section="cold_grpo", policy_from="base_student", role="student", labels="pool")
    grpo.run(small_config("cold_grpo.steps=1"), run, **kw)
    # pretend it was interrupted after its step-1 checkpoint and the user asks for 2 steps now
    state = run.read_json("grpo_resume/stage.json")
    run.write_json("grpo_resume/stage.json", {**state, "status": "running"})
    grpo.run(small_config("cold_grpo.steps=2"), run, **kw)
    steps = [m["step"] for m in run.metrics("grpo_resume") if "reward" in m]
    assert steps == [1, 2]
    assert open_run(run.path).read_json("grpo_resume/stage.json")["status"] == "done"


def test_bad_budgets_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="task.label_budget=5000 is larger than the labeled pool"):
        load_config("tiny", overrides=["task.label_budget=5000"])
    with pytest.raises(ConfigError, match="each half of the labeled pool holds 2 problems, fewer than"):
        load_config("tiny", overrides=["task.pool_size=4"])
    with pytest.raises(ConfigError, match="opd.batch_size=30 is not a multiple of opd.rollouts_per_prompt=8"):
        load_config("tiny", overrides=["opd.rollouts_per_prompt=8", "opd.batch_size=30"])
