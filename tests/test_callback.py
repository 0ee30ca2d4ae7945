"""`DenseRewardCallback` on a user's own TRL run: a plain `GRPOTrainer` and a `DistillationTrainer` on the shipped
tiny base models (saved as ordinary folders), a few CPU steps each. The snapshots must be readable by the run
store, the dashboard and `s2dlab score`, and the trained weights bit-identical to the same run without it."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset

from s2dlab import DenseRewardCallback
from s2dlab.cli import main
from s2dlab.core.diagnostics import probe_metrics
from s2dlab.core.errors import InputError
from s2dlab.core.models import TokenizerMismatchError, load_model, load_tokenizer
from s2dlab.core.runs import open_run
from s2dlab.instruments.callback import prompt_records, untouched
from s2dlab.workflow.summary import read_summary

PROBLEMS = [("7+3-5+8=?", "13"), ("2+2+2+2=?", "8"), ("9-3+1-4=?", "3"), ("5+5-2-1=?", "7")]
STEPS = 4


@pytest.fixture(scope="module")
def tiny(tiny_folders):
    return tiny_folders


def length_reward(completions, **kwargs):
    # varies within every group, so each GRPO step has a gradient (the tiny student's groups often agree on
    # correctness, which would leave the weights untouched and the comparison empty)
    return [len(c[0]["content"]) / 48 for c in completions]


def grpo(tiny, out_dir, callback=None):
    from trl import GRPOConfig, GRPOTrainer

    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p}], "answer": a} for p, a in PROBLEMS])
    args = GRPOConfig(output_dir=str(out_dir), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=40, max_steps=STEPS, learning_rate=1e-3, logging_steps=1,
                      save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True, top_k=0)
    trainer = GRPOTrainer(model=str(tiny / "student"), reward_funcs=length_reward, args=args, train_dataset=ds,
                          callbacks=[callback] if callback else None)
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def distill(tiny, out_dir, callback=None):
    from trl import DistillationConfig, DistillationTrainer

    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": p}]} for p, _ in PROBLEMS])
    args = DistillationConfig(output_dir=str(out_dir), per_device_train_batch_size=4, max_completion_length=40,
                              max_steps=STEPS, learning_rate=1e-3, logging_steps=1, save_strategy="no",
                              report_to="none", use_cpu=True, seed=0, disable_tqdm=True, beta=1.0, top_k=0)
    trainer = DistillationTrainer(model=str(tiny / "student"), teacher_model=str(tiny / "teacher"), args=args,
                                  train_dataset=ds, processing_class=load_tokenizer(tiny / "student"),
                                  callbacks=[callback] if callback else None)
    trainer.train()
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def grpo_runs(tiny, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo")
    plain = grpo(tiny, tmp / "plain")
    cb = DenseRewardCallback(teacher=str(tiny / "teacher"), prompts=[{"problem": p, "answer": a} for p, a in PROBLEMS],
                             out=tmp / "runs" / "mine", every=2, samples=2, max_new_tokens=40)
    probed = grpo(tiny, tmp / "probed", cb)
    return plain, probed, tmp / "runs" / "mine"


def test_grpo_weights_are_bit_identical_with_the_callback(grpo_runs, tiny):
    plain, probed, _ = grpo_runs
    start = load_model(tiny / "student").state_dict()
    assert any(not torch.equal(start[k], plain[k]) for k in plain)  # training moved the weights
    assert same_weights(plain, probed)


def test_grpo_snapshots_are_a_run_stage(grpo_runs):
    _, _, out = grpo_runs
    run = open_run(out)
    assert run.stages() == ["probe"] and run.rollout_steps("probe") == [0, 2, 4]
    info = run.stage("probe").fields
    assert info["status"] == "done" and info["steps"] == STEPS and info["snapshots"] == [0, 2, 4]
    assert info["teacher_source"].endswith("teacher")
    df = run.rollouts("probe", 2)
    assert sorted(df["policy"].value_counts().items()) == [("student", 8), ("teacher", 4)]
    assert set(df["step"]) == {2}
    for col in ("prompt_id", "sample_idx", "prompt", "completion", "answer", "correct", "token_ids", "tokens",
                "token_bytes", "span_texts", "student_logprob", "teacher_logprob", "implicit_reward", "reverse_kl",
                "forward_kl", "student_entropy", "teacher_entropy", "teacher_topk_ids", "teacher_topk_logprobs"):
        assert col in df.columns, col
    assert df["correct"].notna().all()
    # the teacher's rollouts are sampled once and re-scored against each snapshot's policy
    t0, t4 = run.rollouts("probe", 0), run.rollouts("probe", 4)
    t0, t4 = t0[t0.policy == "teacher"], t4[t4.policy == "teacher"]
    assert list(t0["token_ids"]) == list(t4["token_ids"]) and list(t0["student_logprob"]) != list(t4["student_logprob"])
    probes = [m for m in run.metrics("probe") if "probe/rollouts" in m]
    assert [m["step"] for m in probes] == [0, 2, 4]
    for m, step in zip(probes, (0, 2, 4)):
        assert m == {"step": step, **probe_metrics(run.rollouts("probe", step).to_dict("records"))}
        assert {"probe/accuracy", "probe/mean_reverse_kl", "probe/teacher_accuracy"} <= set(m)
    assert any("loss" in m and "reward" in m for m in run.metrics("probe"))  # the trainer's own logs beside them
    summary = read_summary(out)
    assert summary["stages"]["probe"]["snapshots"] == [0, 2, 4]
    assert "probe/mean_reverse_kl" in summary["stages"]["probe"]["metric_names"]


def test_grpo_snapshots_open_in_the_dashboard_and_score(grpo_runs, capsys):
    from s2dlab.views.dashboard.data import (
        Store,
        rollout_table,
        stages_view,
        token_view,
    )

    _, _, out = grpo_runs
    store = Store(out.parent)
    assert store.run_choices() == ["mine"] and store.steps("mine", "probe") == [0, 2, 4]
    student_html, teacher_html, _, _ = token_view(store, "mine", "probe", 4, None, None)
    assert "student" in student_html and "No teacher rollout" not in teacher_html
    assert len(rollout_table(store, "mine", "probe", 0)) == 12
    stages_view(store, "mine")  # curves of probe/* and the trainer's metrics
    assert main(["score", str(out), "--stage", "probe"]) == 0
    assert "Where the |implicit reward| sits (probe" in capsys.readouterr().out


def test_distillation_trainer_with_a_loaded_teacher(tiny, tmp_path):
    plain = distill(tiny, tmp_path / "plain")
    teacher = load_model(tiny / "teacher")
    cb = DenseRewardCallback(teacher=teacher, prompts=[p for p, _ in PROBLEMS], out=tmp_path / "mine", every=0,
                             stage="opd_probe", samples=1, teacher_samples=0)
    assert same_weights(plain, distill(tiny, tmp_path / "probed", cb))
    run = open_run(tmp_path / "mine")
    assert run.rollout_steps("opd_probe") == [0, STEPS]  # every=0: the start and the end
    df = run.rollouts("opd_probe")
    assert set(df["policy"]) == {"student"} and df["correct"].isna().all()  # no answers: ungraded
    probe = [m for m in run.metrics("opd_probe") if "probe/rollouts" in m][-1]
    assert "probe/accuracy" not in probe and probe["probe/mean_reverse_kl"] >= 0
    assert read_summary(tmp_path / "mine")["stages"]["opd_probe"]["snapshots"] == [0, STEPS]


def test_a_mismatched_teacher_stops_training_before_its_first_step(tiny, tmp_path):
    from s2dlab.testing import make_real_format_pair

    pair = make_real_format_pair(tmp_path / "pair", tokenizer="small")  # another vocabulary entirely
    cb = DenseRewardCallback(teacher=str(pair.teacher), prompts=["1+1=?"], out=tmp_path / "mine")
    with pytest.raises(TokenizerMismatchError, match="vocabularies differ"):
        grpo(tiny, tmp_path / "out", cb)
    assert not (tmp_path / "mine").exists()


def test_untouched_restores_generators_and_each_modules_mode(tiny):
    from s2dlab.core.generation import sample

    model = load_model(tiny / "student")
    model.train()
    model.model.layers[0].eval()  # a submodule the user keeps in eval mode while the rest trains
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    with untouched(model):
        sample(model, load_tokenizer(tiny / "student"), [{"id": "a", "prompt": "1+2=?"}], n=2, max_new_tokens=8,
               seed=None, progress=False)  # seed=None: draws from the global generator, which must be forked
        torch.rand(5), random.random(), np.random.rand()
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
    assert model.training and not model.model.layers[0].training and model.model.layers[1].training


def test_prompt_records_and_their_errors():
    recs = prompt_records(["1+1=?", {"question": "2+2=?", "answer": 4}, {"prompt": "3+3=?", "id": "x"}])
    assert recs == [{"id": "p000", "prompt": "1+1=?", "answer": None}, {"id": "p001", "prompt": "2+2=?", "answer": "4"},
                    {"id": "x", "prompt": "3+3=?", "answer": None}]
    with pytest.raises(InputError, match=r"prompts\[1\] has no problem text \(\['answer', 'text'\]\)"):
        prompt_records(["ok", {"text": "no", "answer": 1}])
    with pytest.raises(InputError, match="non-empty list"):
        prompt_records("just a string")
    with pytest.raises(InputError, match="every=-1"):
        DenseRewardCallback(teacher="t", prompts=["a"], every=-1)


def test_probe_metrics_known_values():
    rows = [{"policy": "student", "length": 2, "reverse_kl": [0.5, 1.5], "forward_kl": [1.0, 1.0],
             "implicit_reward": [-1.0, 0.0], "correct": True, "sum_implicit_reward": -1.0},
            {"policy": "student", "length": 1, "reverse_kl": [3.0], "forward_kl": [0.0], "implicit_reward": [-4.0],
             "correct": False, "sum_implicit_reward": -4.0},
            {"policy": "teacher", "length": 1, "reverse_kl": [9.0], "forward_kl": [9.0], "implicit_reward": [9.0],
             "correct": False, "sum_implicit_reward": 9.0}]
    m = probe_metrics(rows)
    assert m["probe/mean_reverse_kl"] == pytest.approx(5.0 / 3) and m["probe/mean_forward_kl"] == pytest.approx(2 / 3)
    assert m["probe/mean_implicit_reward"] == pytest.approx(-5.0 / 3) and m["probe/mean_length"] == 1.5
    assert m["probe/accuracy"] == 0.5 and m["probe/auroc"] == 1.0 and m["probe/teacher_accuracy"] == 0.0


@pytest.mark.slow
def test_readme_example_runs(tmp_path, monkeypatch):
    """The README's "Your own models" example as written: a plain GRPOTrainer with the callback."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### `DenseRewardCallback`"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    code = code[:code.index("```")]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    run = open_run(tmp_path / "runs" / "mine")
    assert run.rollout_steps("probe") == [0, 5, 10, 15, 20]
    assert read_summary(run)["stages"]["probe"]["snapshots"] == [0, 5, 10, 15, 20]
