"""Students at graded distance from the teacher (the same corpus in another layout), the OPD signal metrics that
show what that distance does to the loss, and `s2dlab run --arms`."""

import math
import re

import pytest
import torch

from s2dlab.cli import main as cli_main
from s2dlab.core.config import ConfigError, load_config
from s2dlab.core.rewards import grade
from s2dlab.core.tasks import arithmetic as A
from s2dlab.workflow.pipeline import plan, select_arms
from s2dlab.workflow.stages import base, opd

RECORDS = A.arithmetic_splits({"corpus": 400, "eval": 100}, seed=0, n_terms=4, digits=1, slip_rate=0.4)


# --- layouts ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", list(A.LAYOUTS))
def test_every_layout_grades_like_the_gold_solution_and_recomputes_its_steps(layout):
    """The grader reads only the box: a clean solution is correct and a slipped one wrong in every layout; and the
    layout's lines, read back independently, recompute each step's result from the previous line."""
    for r in RECORDS["eval"] + RECORDS["corpus"]:
        text = A.relayout(r["solution"], layout)
        gold_correct = grade(r["solution"], r["answer"], integer_only=True)
        assert grade(text, r["answer"], integer_only=True) == gold_correct
        assert gold_correct == (not r.get("slipped", False))
        lines = text.split("\n")
        assert lines[-1] == r["solution"].split("\n")[-1]  # the same box
        steps = [x for x in lines[:-1] if x]
        value = None
        for line in steps:
            m = re.fullmatch(r"(-?\d+)?([-+])(\d+)=(-?\d+)", line)
            assert m, line
            left = int(m[1]) if m[1] is not None else value
            assert left is not None, f"{line!r} has no running value to start from"
            if not r.get("slipped"):
                assert (left + int(m[3]) if m[2] == "+" else left - int(m[3])) == int(m[4]), line
            value = int(m[4])


def test_layouts_differ_in_text_where_documented():
    r = next(x for x in RECORDS["eval"] if x["prompt"] == "3-7-6+8=?") if any(
        x["prompt"] == "3-7-6+8=?" for x in RECORDS["eval"]) else RECORDS["eval"][0]
    steps, value = A.parse_solution(r["solution"])
    texts = {name: A.render(steps, value, name) for name in A.LAYOUTS}
    assert texts["steps"] == r["solution"]
    assert len(set(texts.values())) == len(A.LAYOUTS)
    assert texts["blank_line"] == texts["steps"].replace("\n\\boxed", "\n\n\\boxed")
    a, op, b, res = steps[-1]
    assert texts["running"].split("\n")[-2] == f"{op}{b}={res}"
    assert texts["running"].split("\n")[0] == texts["steps"].split("\n")[0]
    assert A.render([(3, "-", 7, -4), (-4, "-", 6, -10), (-10, "+", 8, -2)], -2, "running") == \
        "3-7=-4\n-6=-10\n+8=-2\n\\boxed{-2}"


def test_detect_layout_and_first_divergence_in_the_completions_layout():
    gold = "3-7=-4\n-4-6=-10\n-10+8=-2\n\\boxed{-2}"
    far = A.relayout(gold, "running")
    assert [A.detect_layout(t) for t in (gold, far, A.relayout(gold, "blank_line"))] == \
        ["steps", "running", "blank_line"]
    # a far-layout rollout that slips on its second line is blamed there, not at its first differing character
    wrong = "3-7=-4\n-6=-12\n+8=-4\n\\boxed{-4}"
    assert A.first_divergence(wrong, gold) == wrong.index("-12") + 2
    assert A.first_divergence(far, gold) is None
    # the steps layout is compared as before
    assert A.first_divergence("3-7=-4\n-4-6=-2", gold) == len("3-7=-4\n-4-6=-") and A.first_divergence(gold, gold) is None
    with pytest.raises(ValueError, match="not one of"):
        A.render([], 0, "sideways")


def test_student_levels_pick_their_layout_and_are_validated():
    assert set(base.STUDENT_LAYOUTS) == {"close", "middle", "far"} and set(base.STUDENT_LAYOUTS.values()) <= set(A.LAYOUTS)
    cfg = load_config("tiny", overrides=["base.student=far", "task.corpus_size=50"])
    student, teacher = base.corpus(cfg, "student"), base.corpus(cfg, "teacher")
    assert [A.detect_layout(r["solution"]) for r in teacher] == ["steps"] * 50
    assert all(A.detect_layout(r["solution"]) == "running" for r in student if r["solution"].count("\n") > 2)
    assert [r["prompt"] for r in student] == [r["prompt"] for r in teacher]
    assert base.shipped_name("student", "far") == "student_far" and base.shipped_name("student") == "student"
    with pytest.raises(ConfigError, match="base.student='near'"):
        load_config("tiny", overrides=["base.student=near"])
    with pytest.raises(ConfigError, match="set base.student=close"):
        load_config("tiny", overrides=["base.student=far", "models.student=some/model"])


def test_the_sft_teacher_learns_gold_solutions_in_the_layout_its_config_names():
    from s2dlab.core import data
    from s2dlab.workflow.stages import sft

    cfg = load_config("tiny", overrides=["teacher_sft.layout=running", "task.pool_size=40", "task.val_size=10",
                                         "task.eval_size=10", "task.corpus_size=20"])
    records = data.labeled(cfg, "pool")
    rows = sft.sft_dataset(cfg, A.in_layout(records, cfg.teacher_sft.layout))  # what sft.run trains on
    completions = [r["completion"][0]["content"] for r in rows]
    # the same gold answer in every row, the text in the far layout (running lines, `+8=13`)
    assert [grade(c, r["answer"]) for c, r in zip(completions, records)] == [1.0] * len(records)
    assert completions == [A.relayout(r["solution"], "running") for r in records] != [r["solution"] for r in records]
    assert [r["completion"][0]["content"] for r in sft.sft_dataset(cfg, A.in_layout(records, "steps"))] == \
        [r["solution"] for r in records]
    with pytest.raises(ConfigError, match="teacher_sft.layout='diagonal' is not allowed; choose one of steps"):
        load_config("tiny", overrides=["teacher_sft.layout=diagonal"])


@pytest.mark.parametrize("level", ["middle", "far"])
def test_the_shipped_graded_students_are_copied_with_their_layout(tmp_path, level):
    if base.shipped_name("student", level) not in base.shipped_info():
        pytest.skip(f"the {level} student is not shipped in this checkout (python scripts/make_tiny_base.py "
                    f"--students {level})")
    from s2dlab.core.models import load_model
    from s2dlab.core.runs import create_run

    cfg = load_config("tiny", overrides=[f"base.student={level}"])
    run = create_run(tmp_path / "run", cfg.to_dict(), cfg.seed)
    info = base.run(cfg, run, roles=("student",))["base_student"]
    assert info["shipped"] == f"student_{level}" and info["layout"] == base.STUDENT_LAYOUTS[level]
    shipped = load_model(base.SHIPPED / f"student_{level}").state_dict()
    copied = load_model(run.model_dir("base_student")).state_dict()
    assert all(torch.equal(shipped[k], copied[k]) for k in shipped)
    close = load_model(base.SHIPPED / "student").state_dict()
    assert not all(torch.equal(close[k], copied[k]) for k in close)


# --- the OPD signal metrics -----------------------------------------------------------------------------------------------

def test_top_share_known_values():
    v = torch.tensor([1.0] * 99 + [-101.0])  # one token of 100 carries 101 of 200
    assert opd.top_share(v) == pytest.approx(101 / 200)
    assert opd.top_share(torch.ones(200)) == pytest.approx(2 / 200)  # ceil(1% of 200) = 2 tokens
    assert opd.top_share(torch.ones(50)) == pytest.approx(1 / 50)  # at least one token
    assert opd.top_share(torch.zeros(5)) is None
    assert opd.top_indices(torch.tensor([0.1, -3.0, 2.0]), 0.5).tolist() == [1, 2]


def test_step_metrics_equal_an_independent_computation():
    g = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(300, 11, generator=g), 3 * torch.randn(300, 11, generator=g)
    ids = torch.multinomial(torch.softmax(s_logits, -1), 1, generator=g).squeeze(-1)
    implicit, rkl = opd._token_terms(s_logits, t_logits, ids)
    # independently: the scoring module's per-token implicit reward and reverse KL
    from s2dlab.core.scoring import token_scores

    ref = token_scores(s_logits[None], t_logits[None], ids[None])
    assert torch.allclose(implicit, ref.implicit_reward[0], atol=1e-5)
    assert torch.allclose(rkl, ref.reverse_kl[0], atol=1e-5)
    m = opd.step_metrics(implicit, rkl, -implicit)
    r = implicit.double().numpy()
    assert m["opd/implicit_reward_mean"] == pytest.approx(r.mean())
    assert m["opd/implicit_reward_var"] == pytest.approx(((r - r.mean()) ** 2).mean())
    assert m["opd/implicit_reward_min"] == pytest.approx(r.min())
    assert m["opd/reverse_kl"] == pytest.approx(rkl.double().mean().item())
    top3 = sorted(abs(r), reverse=True)[:3]  # ceil(1% of 300) = 3
    assert m["opd/top1pct_loss_share"] == pytest.approx(sum(top3) / abs(r).sum())


def test_grad_norm_spikes_known_values():
    out = opd.grad_norm_spikes([1.0, 1.0, 2.0, 1.0, 12.0, None, float("nan")])
    assert out["median"] == 1.0 and out["max_over_median"] == 12.0 and out["spikes"] == 1 and out["steps"] == 5
    assert opd.grad_norm_spikes([1.0, 3.0])["median"] == 2.0
    assert opd.grad_norm_spikes([])["spikes"] == 0


def test_top_grad_share_equals_separate_backward_passes():
    """The top-1% gradient share against gradients taken on separately built graphs."""
    g = torch.Generator().manual_seed(3)
    w = torch.nn.Linear(4, 6)
    x, ids = torch.randn(200, 4, generator=g), torch.randint(0, 6, (200,), generator=g)
    t_logits = torch.randn(200, 6, generator=g)
    implicit, rkl = opd._token_terms(w(x), t_logits, ids)
    got = opd.top_grad_share(rkl, rkl, list(w.parameters()), n=200)

    def norm(idx):
        w.zero_grad()
        _, k = opd._token_terms(w(x), t_logits, ids)
        (k[idx].sum() / 200).backward()
        return math.sqrt(sum((p.grad ** 2).sum().item() for p in w.parameters()))

    top = torch.topk(rkl.detach().abs(), 2).indices
    assert got == pytest.approx(norm(top) / norm(torch.arange(200)), rel=1e-5)


# --- s2dlab run --arms ----------------------------------------------------------------------------------------------------

def test_arms_select_only_the_stages_they_need():
    cfg = load_config("tiny")
    steps, arms = plan(cfg, ["bridge", "bridge_no_warmup", "cold_grpo"])
    assert list(arms) == ["bridge", "bridge_no_warmup", "cold_grpo"]
    assert [s.name for s in steps] == ["base_teacher", "base_student", "cold_grpo", "full.teacher_grpo",
                                       "full.fkl_warmup", "full.opd", "no_warmup.opd"]
    steps, arms = plan(cfg, ["cold_grpo"])
    assert [s.name for s in steps] == ["base_student", "cold_grpo"] and list(arms) == ["cold_grpo"]
    full = [s.name for s in plan(cfg, True)[0]]
    assert [s.name for s in plan(cfg, select_arms(",".join(a for a in plan(cfg, True)[1])))[0]] == full


def test_an_unknown_arm_is_one_line(capsys):
    with pytest.raises(ConfigError, match="unknown arm 'brige'.*arms are bridge, bridge_raw_teacher"):
        select_arms("bridge,brige")
    assert cli_main(["run", "--arms", "bridge,brige", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown arm 'brige'" in err


@pytest.mark.parametrize("loss", ["full_reverse_kl", "sampled_token"])
def test_opd_logs_the_signal_metrics_every_step(tmp_path, loss):
    """Two OPD steps from the shipped base models: every step logs the signal metrics; on the full-vocabulary loss
    (one micro-batch per step) TRL's own logged loss is the mean per-token reverse KL, so it must equal ours; the
    gradient share appears only when asked for."""
    from s2dlab.core.runs import create_run
    from tests.test_stages import small_config

    cfg = small_config(f"opd.loss={loss}", "probe.num_prompts=0", "probe.c1_prompts=0",
                       f"opd.grad_share={loss == 'sampled_token'}")
    run = create_run(tmp_path / "run", cfg.to_dict(), cfg.seed)
    base.run(cfg, run)
    opd.run(cfg, run, out="opd", init="base_student", teacher="base_teacher", prompts="1h")
    rows = [m for m in run.metrics("opd") if "loss" in m]
    assert [m["step"] for m in rows] == [1, 2]
    for m in rows:
        assert m["opd/implicit_reward_var"] >= 0 and m["opd/reverse_kl"] >= 0 and m["grad_norm"] > 0
        assert 0 < m["opd/top1pct_loss_share"] <= 1 and m["opd/implicit_reward_min"] <= m["opd/implicit_reward_mean"]
        if loss == "full_reverse_kl":
            assert m["loss"] == pytest.approx(m["opd/reverse_kl"], rel=1e-3)
            assert "opd/top1pct_grad_share" not in m
        else:
            assert m["opd/top1pct_grad_share"] > 0
