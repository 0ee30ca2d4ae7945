"""s2dlab.tutorial: the notebooks' set-up call and copying finished stages into a new run folder.

The run folders here are made in the test with the run store's writers and a tiny model's save_pretrained
(`lifecycle.finish_stage`); nothing is trained. `build` runs on the shipped base models with a 4-problem eval.
"""

import json
import math
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from s2dlab import tutorial
from s2dlab.core.config import ConfigError, load_config
from s2dlab.core.errors import InputError, MissingError
from s2dlab.core.models import (
    TinyModelSpec,
    build_char_tokenizer,
    build_tiny_model,
    load_model,
)
from s2dlab.core.runs import RunStoreError, create_run, open_run
from s2dlab.workflow.stages import lifecycle as common
from s2dlab.workflow.stages.base import shipped_info

ROOT = Path(__file__).resolve().parents[1]
SPEC = TinyModelSpec(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                     intermediate_size=32)


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source_run(tmp_path):
    """A run folder with three finished stages, one stage still running, training state and whole-run files."""
    cfg = load_config("tiny")
    run = create_run(tmp_path / "src", cfg.to_dict(), seed=3)
    tok = common.tokenizer_for(cfg, run)  # saves tokenizer/ in the run, as a tiny-preset run has it
    for i, stage in enumerate(("base_teacher", "base_student", "teacher_grpo")):
        model = build_tiny_model(SPEC, tok, seed=i)
        run.append_metrics(stage, {"step": 1, "loss": 0.5 + i})
        run.append_metrics(stage, {"step": 2, "loss": 0.25 + i})
        run.write_eval(stage, {"stage": stage, "accuracy": 0.1 * i})
        common.finish_stage(run, stage, model, tok, source="test")
    run.write_rollouts("teacher_grpo", 5, [{"stage": "teacher_grpo", "step": 5, "prompt": "1+2=?",
                                            "completion": "\\boxed{3}", "tokens": ["\\", "b"],
                                            "implicit_reward": [0.5, -0.25]}])
    (run.stage_dir("teacher_grpo") / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (run.stage_dir("teacher_grpo") / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{}")
    (run.stage_dir("base_teacher") / "best").mkdir()
    (run.stage_dir("base_teacher") / "best" / "best.json").write_text("{}")
    common.mark_started(run, "fkl_warmup")  # stage.json says "running"
    run.append_metrics("fkl_warmup", {"step": 1, "loss": 2.0})
    (run.stage_dir("fkl_warmup") / "teacher_rollouts.jsonl").write_text('{"completion": "x"}\n')
    run.write_results({"arms": {}})
    run.write_json("timings.json", {"base_teacher": 1.0})
    return run


# --- copy_stages ---------------------------------------------------------------------------------------------------------

def test_copy_stages_copies_finished_stages_into_a_new_run(source_run, tmp_path):
    before = files_under(source_run.path)
    stages = ["base_teacher", "teacher_grpo"]
    dst = tutorial.copy_stages(source_run.path, tmp_path / "runs" / "ex", stages)

    assert files_under(source_run.path) == before, "the source run must not change"
    assert dst.path == tmp_path / "runs" / "ex"
    assert dst.stages() == stages
    assert sorted(p.name for p in dst.path.iterdir()) == ["base_teacher", "run.json", "teacher_grpo", "tokenizer"]
    assert [p.name for p in dst.path.parent.iterdir()] == ["ex"], "no temporary folder is left behind"
    for stage in stages:
        assert common.finished(dst, stage)
        assert dst.metrics(stage) == source_run.metrics(stage)
        assert dst.eval(stage) == source_run.eval(stage)
        assert dst.read_json(f"{stage}/stage.json") == source_run.read_json(f"{stage}/stage.json")
        copied, original = load_model(dst.model_dir(stage)), load_model(source_run.model_dir(stage))
        for (name, a), (_, b) in zip(copied.state_dict().items(), original.state_dict().items()):
            assert torch.equal(a, b), f"{stage}: weight {name} differs"
    assert dst.rollout_steps("teacher_grpo") == [5]
    assert dst.rollouts("teacher_grpo").equals(source_run.rollouts("teacher_grpo"))
    assert files_under(dst.path / "tokenizer") == files_under(source_run.path / "tokenizer")
    assert not (dst.stage_dir("teacher_grpo") / "checkpoints").exists()
    assert not (dst.stage_dir("base_teacher") / "best").exists()

    info = json.loads((dst.path / "run.json").read_text())
    assert info["name"] == "ex"
    assert info["config"] == source_run.info["config"] and info["seed"] == 3
    assert info["copied_from"]["run"] == str(source_run.path.resolve())
    assert info["copied_from"]["stages"] == stages
    assert "versions" in info and "created" in info


def test_copy_stages_defaults_to_every_finished_stage_and_takes_a_new_config(source_run, tmp_path):
    dst = tutorial.copy_stages(source_run, tmp_path / "ex", config={"preset": "tiny", "opd": {"loss": "x"}}, seed=9)
    assert dst.stages() == ["base_teacher", "base_student", "teacher_grpo"]  # fkl_warmup is still running
    assert dst.info["config"] == {"preset": "tiny", "opd": {"loss": "x"}} and dst.info["seed"] == 9
    assert not (dst.path / "results.json").exists() and not (dst.path / "timings.json").exists()


def test_copy_stages_keeps_a_finished_stages_caches(source_run, tmp_path):
    common.finish_stage(source_run, "fkl_warmup", build_tiny_model(SPEC, build_char_tokenizer()),
                        build_char_tokenizer())
    dst = tutorial.copy_stages(source_run.path, tmp_path / "ex", ["fkl_warmup"])
    assert (dst.stage_dir("fkl_warmup") / "teacher_rollouts.jsonl").read_text() == '{"completion": "x"}\n'


def test_copy_stages_into_an_empty_folder(source_run, tmp_path):
    (tmp_path / "ex").mkdir()
    dst = tutorial.copy_stages(source_run.path, tmp_path / "ex", ["base_student"])
    assert dst.stages() == ["base_student"]


def test_copy_stages_refuses_an_unfinished_or_unknown_stage(source_run, tmp_path):
    with pytest.raises(MissingError, match="'fkl_warmup' is not finished.*base_teacher, base_student, teacher_grpo"):
        tutorial.copy_stages(source_run.path, tmp_path / "ex", ["base_teacher", "fkl_warmup"])
    with pytest.raises(MissingError, match="'opd' is not finished"):
        tutorial.copy_stages(source_run.path, tmp_path / "ex", ["opd"])
    with pytest.raises(InputError, match="invalid stage name '../src'"):
        tutorial.copy_stages(source_run.path, tmp_path / "ex", ["../src"])
    with pytest.raises(InputError, match="no stages to copy"):
        tutorial.copy_stages(source_run.path, tmp_path / "ex", [])
    assert not (tmp_path / "ex").exists()


def test_copy_stages_never_writes_into_a_folder_that_holds_files(source_run, tmp_path):
    other = create_run(tmp_path / "other", {"a": 1}, seed=0)
    other.append_metrics("opd", {"step": 1})
    before = files_under(other.path)
    with pytest.raises(InputError, match="already exists and is not empty"):
        tutorial.copy_stages(source_run.path, other.path, ["base_teacher"])
    with pytest.raises(InputError, match="already exists"):
        tutorial.copy_stages(source_run.path, source_run.path, ["base_teacher"])
    assert files_under(other.path) == before


def test_copy_stages_needs_a_run_folder(tmp_path):
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(RunStoreError, match="not a run folder"):
        tutorial.copy_stages(tmp_path / "not_a_run", tmp_path / "ex", ["opd"])


def test_an_interrupted_copy_leaves_nothing_behind(source_run, tmp_path, monkeypatch):
    calls = []
    real = tutorial.shutil.copytree

    def copytree_then_fail(src, dst, *args, **kwargs):
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the user stopped the kernel halfway
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(tutorial.shutil, "copytree", copytree_then_fail)
    with pytest.raises(KeyboardInterrupt):
        tutorial.copy_stages(source_run.path, tmp_path / "runs" / "ex", ["base_teacher", "teacher_grpo"])
    assert len(calls) == 2
    assert list((tmp_path / "runs").iterdir()) == []


# --- setup ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def test_setup_returns_what_the_notebooks_use(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    lab = tutorial.setup("tiny", tmp_path / "run", overrides=["eval.n_samples=2", "seed=5"])
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert lab.preset == "tiny" and lab.cfg.seed == 5 and lab.k == 2 and lab.eval_set == lab.cfg.eval.sets[0]
    assert lab.run.path == tmp_path / "run"
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["config"] == lab.cfg.to_dict() and info["seed"] == 5
    assert [s.name for s in lab.steps][:3] == ["base_teacher", "base_student", "teacher_grpo"]
    assert {a: arm.final for a, arm in lab.arms.items()} == {"bridge_1h_stage3": "student_grpo", "bridge_1h": "opd",
                                                            "cold_grpo": "cold_grpo"}
    out = capsys.readouterr().out
    assert f"run folder {(tmp_path / 'run').resolve()}" in out and "finished stages: none yet" in out


def test_setup_seeds_the_global_generators(tmp_path):
    lab = tutorial.setup("tiny", tmp_path / "run", overrides=["seed=11"], verbose=False)
    drawn = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(11), np.random.seed(11), torch.manual_seed(11)
    assert drawn == (random.random(), np.random.rand(), torch.rand(1).item())
    assert lab.cfg.seed == 11


def test_setup_reuses_an_existing_run_and_stops_when_its_config_differs(tmp_path):
    from s2dlab.core.config import ConfigMismatchError

    tutorial.setup("tiny", tmp_path / "run", verbose=False).run.append_metrics("opd", {"step": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = tutorial.setup("tiny", tmp_path / "run", verbose=False)
    assert again.run.metrics("opd") == [{"step": 1}]
    with pytest.raises(ConfigMismatchError, match="opd.loss 'full_reverse_kl' -> 'sampled_token'.*a new RUN_DIR"):
        tutorial.setup("tiny", tmp_path / "run", overrides=["opd.loss=sampled_token"], verbose=False)
    assert again.run.metrics("opd") == [{"step": 1}]


def test_setup_caps_torch_threads(tmp_path, torch_threads):
    tutorial.setup("tiny", tmp_path / "run", threads=1, verbose=False)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("threads", [0, -2, 1.5, True, "2"])
def test_setup_rejects_a_bad_thread_count(tmp_path, threads, torch_threads):
    with pytest.raises(InputError, match=f"threads={threads!r}"):
        tutorial.setup("tiny", tmp_path / "run", threads=threads, verbose=False)
    assert not (tmp_path / "run").exists()


def test_setup_rejects_bad_presets_and_overrides(tmp_path):
    with pytest.raises(InputError, match="one string; give a list"):
        tutorial.setup("tiny", tmp_path / "run", overrides="opd.loss=sampled_token")
    with pytest.raises(ConfigError, match="preset='tinyy'"):
        tutorial.setup("tinyy", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_setup_warns_when_the_hub_was_imported_online(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.warns(UserWarning, match="imported before tutorial.setup"):
        tutorial.setup("tiny", tmp_path / "run", verbose=False)


def test_default_run_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("S2DLAB_RUN", raising=False)
    assert tutorial.default_run_dir("tiny") == ROOT / "runs" / "tutorial_tiny"
    assert tutorial.default_run_dir("qwen3_paper") == ROOT / "runs" / "tutorial_qwen3_paper"
    monkeypatch.setenv("S2DLAB_RUN", str(tmp_path / "elsewhere"))
    assert tutorial.default_run_dir("tiny") == tmp_path / "elsewhere"
    lab = tutorial.setup("tiny", verbose=False)
    assert lab.run.path == tmp_path / "elsewhere" and (tmp_path / "elsewhere" / "run.json").is_file()


def test_build_runs_the_stages_up_to_one_and_then_reuses_them(tmp_path):
    shipped = [f"{k}={v}" for k, v in shipped_info()["config"].items() if k != "task.prompt_suffix"]
    lab = tutorial.setup("tiny", tmp_path / "run", overrides=["eval.limit=4", "eval.n_samples=1", "probe.c1_prompts=4",
                                                             *shipped], verbose=False)
    with pytest.raises(InputError, match="stage 'teacher' is not in the workflow's plan; choose one of base_teacher"):
        lab.build("teacher")
    assert lab.build("base_student") == ["base_teacher", "base_student"]
    assert not lab.run.stage_dir("teacher_grpo").exists()
    written = files_under(lab.run.path)
    assert lab.run.eval("base_student")["sets"][lab.eval_set]
    assert lab.build("base_teacher") == ["base_teacher", "base_student"]
    assert files_under(lab.run.path) == written, "finished stages and their eval.json are reused as they are"


def test_importing_tutorial_pulls_in_no_ui_and_no_model_library():
    code = ("import sys, s2dlab.tutorial; "
            "print(sorted(m for m in ('gradio', 'IPython', 'transformers', 'torch', 'huggingface_hub') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[]"


def test_copy_command_line(source_run, tmp_path, capsys):
    from s2dlab.cli import main

    assert main(["copy", str(source_run.path), str(tmp_path / "b"), "base_teacher"]) == 0
    assert "copied base_teacher into" in capsys.readouterr().out
    assert open_run(tmp_path / "b").stages() == ["base_teacher"]
    assert main(["copy", str(source_run.path), str(tmp_path / "b")]) == 2  # one line, no traceback
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err and len(err.strip().splitlines()) == 1
    assert main(["copy", str(source_run.path), str(tmp_path / "c"), "fkl_warmup"]) == 2
    assert "'fkl_warmup' is not finished" in capsys.readouterr().err


# --- what the exercises and the notebooks' demonstrations use ----------------------------------------------------------

def test_build_arm_trains_the_arm_s_stages_and_what_they_start_from(tmp_path, monkeypatch):
    lab = tutorial.setup("tiny", tmp_path / "run", verbose=False)
    trained = []
    monkeypatch.setattr(tutorial.Tutorial, "_train", lambda self, steps: trained.extend(s.name for s in steps))
    lab.build_arm("bridge_raw_teacher")
    assert trained == ["base_teacher", "base_student", "raw_teacher.fkl_warmup", "raw_teacher.opd"]
    trained.clear()
    lab.build_arm("bridge_1h_replay")
    assert trained == ["base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd", "replay"]
    with pytest.raises(InputError, match="arm 'raw' is not in the ablation plan; choose one of"):
        lab.build_arm("raw")


def test_trl_reward_wraps_a_grade_of_one_completion():
    seen = []

    def grade(completion, answer):
        seen.append((completion, answer))
        return completion == f"\\boxed{{{answer}}}"

    reward = tutorial.trl_reward(grade)
    chat = [[{"role": "assistant", "content": "\\boxed{7}"}], [{"role": "assistant", "content": "\\boxed{8}"}]]
    assert reward(chat, answer=["7", "7"]) == [1.0, 0.0]
    assert reward(["\\boxed{3}"], answer=3) == [1.0]  # plain text, one answer for the batch
    assert seen[-1] == ("\\boxed{3}", "3") and reward.__name__ == "grade"


def test_rollout_batch_lines_the_logits_up_with_the_completions():
    from s2dlab.core.generation import Rollout

    def rollout(p, c):
        return Rollout("p", 0, "x", "x", p, c, "", [0.0] * len(c), True)

    ids, attention, P, mask = tutorial.rollout_batch([rollout([5, 6, 7], [8, 9]), rollout([5], [3, 4, 2])], 0)
    assert P == 3
    assert ids.tolist() == [[5, 6, 7, 8, 9, 0], [0, 0, 5, 3, 4, 2]]
    assert attention.tolist() == [[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]]
    assert mask.tolist() == [[1, 1, 0], [1, 1, 1]]
    # logits[:, P - 1 + t] predict completion token t: the input one to the left of each completion token
    for b, c in enumerate(([8, 9], [3, 4, 2])):
        for t, token in enumerate(c):
            assert ids[b, P + t] == token and attention[b, P - 1 + t] == 1


def test_slip_steps_finds_each_slip_possible_step_of_a_gold_solution(tmp_path):
    from s2dlab.workflow.stages.lifecycle import tokenizer_for

    lab = tutorial.setup("tiny", tmp_path / "run", verbose=False)
    tok = tokenizer_for(lab.cfg, lab.run)
    records = [{"prompt": "7+8-9=?", "solution": "7+8=15\n15-9=6\n\\boxed{6}"},  # a carry, then a borrow
               {"prompt": "3+4=?", "solution": "3+4=7\n\\boxed{7}"}]  # no slip possible
    steps = tutorial.slip_steps(lab.cfg, tok, records)
    assert steps["kinds"] == ["carry", "borrow"]
    assert [tok.convert_ids_to_tokens(i) for i in steps["right_ids"]] == ["1", "6"]
    assert [tok.convert_ids_to_tokens(i) for i in steps["slip_ids"]] == ["5", "1"]  # 7+8=5, 15-9=16
    assert tok.decode(steps["prefixes"][1]).endswith("7+8=15\n15-9=")


def test_fit_gaussian_covers_with_the_forward_kl_and_seeks_with_the_reverse():
    grid = torch.linspace(-6, 6, 601)
    target = torch.exp(-0.5 * ((grid + 2.5) / 0.5) ** 2) + torch.exp(-0.5 * ((grid - 2.5) / 0.5) ** 2)
    target = target / (target.sum() * (grid[1] - grid[0]))
    dx = grid[1] - grid[0]
    forward = tutorial.fit_gaussian(grid, target, "forward")
    reverse = tutorial.fit_gaussian(grid, target, "reverse")

    def sd_on_grid(p):  # the fit is normalised on the grid, so its spread is measured there
        mean = (grid * p).sum() * dx
        return math.sqrt(((grid - mean) ** 2 * p).sum() * dx)

    assert abs(forward["mean"]) < 0.05  # between the modes, with the target's spread: the moment match
    assert sd_on_grid(forward["q"]) == pytest.approx(math.sqrt(2.5 ** 2 + 0.5 ** 2), rel=1e-2)
    assert sd_on_grid(target) == pytest.approx(math.sqrt(2.5 ** 2 + 0.5 ** 2), rel=1e-2)
    assert abs(abs(reverse["mean"]) - 2.5) < 0.05 and abs(reverse["sd"] - 0.5) < 0.05  # on one mode, its width
    with pytest.raises(InputError, match="direction='both'"):
        tutorial.fit_gaussian(grid, target, "both")


# --- what the notebooks need on the qwen3_paper preset ----------------------------------------------------------------

def test_arithmetic_only_passes_on_the_arithmetic_task_and_says_what_it_skips_elsewhere(capsys):
    assert tutorial.arithmetic_only(load_config("tiny"), "The slip cells") is True
    assert capsys.readouterr().out == ""
    assert tutorial.arithmetic_only(load_config("qwen3_paper"), "The slip cells") is False
    out = capsys.readouterr().out
    assert out.startswith("The slip cells: needs the arithmetic task") and "(task.name=dapo) it is skipped" in out
    assert tutorial.REAL_DATA_SKIP in out
    tutorial.arithmetic_only(load_config("qwen3_paper"), "The roles", why="no such grammar")
    assert capsys.readouterr().out.rstrip().endswith("skipped: no such grammar.")


def _top_k_entry(logp_CV, k):
    """A cache entry as `fkl_warmup.teacher_distributions` writes it for `top_k=k`."""
    top_CK, ids_CK = logp_CV.topk(k, dim=-1)
    return {"logp": top_CK, "ids": ids_CK.to(torch.int32), "tail": torch.log1p(-top_CK.exp().sum(-1))}


def test_cache_outcomes_give_the_stage_loss_on_a_full_and_a_top_k_cache():
    import torch.nn.functional as F

    from s2dlab.workflow.stages import fkl_warmup

    gen = torch.Generator().manual_seed(0)
    C, V, K = 6, 40, 5
    teacher_CV = (3 * torch.randn(C, V, generator=gen)).log_softmax(-1)
    student_CV = torch.randn(C, V, generator=gen).log_softmax(-1)
    tokens_C = torch.multinomial(teacher_CV.exp(), 1, generator=gen).squeeze(-1)

    # a full cache: both distributions as they are, the sampled tokens as their own outcomes
    t, s, y = tutorial.cache_outcomes({"logp": teacher_CV}, student_CV, tokens_C.tolist())
    assert t is not None and torch.equal(t, teacher_CV) and s is student_CV and torch.equal(y, tokens_C)
    full = (t.exp() * (t - s)).sum(-1)
    assert torch.allclose(full, fkl_warmup.forward_kl_terms(student_CV, teacher_CV, None, None), atol=1e-6)

    # a top-k cache: K cached tokens + a tail bucket on both sides, each a distribution over K + 1 outcomes
    entry = _top_k_entry(teacher_CV, K)
    t, s, y = tutorial.cache_outcomes(entry, student_CV, tokens_C)
    assert t.shape == s.shape == (C, K + 1)
    assert torch.allclose(t.exp().sum(-1), torch.ones(C), atol=1e-5)
    assert torch.allclose(s.exp().sum(-1), torch.ones(C), atol=1e-5)
    outside_C = torch.ones(C, V, dtype=torch.bool).scatter(1, entry["ids"].long(), False)  # lumped by a mask here
    assert torch.allclose(s[:, K], torch.logsumexp(student_CV.masked_fill(~outside_C, -torch.inf), -1), atol=1e-5)
    lumped = (t.exp() * (t - s)).sum(-1)
    assert torch.allclose(lumped, fkl_warmup.forward_kl_terms(student_CV, entry["logp"], entry["ids"], entry["tail"]),
                          atol=1e-5)
    assert torch.allclose(lumped, F.kl_div(s, t, log_target=True, reduction="none").sum(-1), atol=1e-5)
    assert (lumped <= full + 1e-6).all()  # lumping can only lower a KL (log-sum inequality)
    # each sampled token's outcome: its place among the cached ids, or the tail bucket
    for c in range(C):
        ids = entry["ids"][c].tolist()
        want = ids.index(int(tokens_C[c])) if int(tokens_C[c]) in ids else K
        assert int(y[c]) == want
    # the identity notebook 02a checks on the cached outcomes: E_{y ~ pT}[-log pS(outcome of y)] = KL + H(pT)
    expected_ce = torch.zeros(C)
    for v in range(V):
        _, _, y_v = tutorial.cache_outcomes(entry, student_CV, torch.full((C,), v))
        expected_ce += teacher_CV[:, v].exp() * -s.gather(-1, y_v[:, None]).squeeze(-1)
    assert torch.allclose(expected_ce, lumped - (t.exp() * t).sum(-1), atol=1e-5)


def test_cache_outcomes_refuses_a_student_over_another_vocabulary():
    with pytest.raises(InputError, match="same vocabulary"):
        tutorial.cache_outcomes({"logp": torch.zeros(3, 10)}, torch.zeros(3, 12))


def test_vocab_slice_keeps_a_small_vocabulary_and_cuts_a_large_one():
    gen = torch.Generator().manual_seed(1)
    lpS, lpT = torch.randn(100, generator=gen).log_softmax(-1), torch.randn(100, generator=gen).log_softmax(-1)
    kept, s, t, i, mass = tutorial.vocab_slice(lpS, lpT, 7, width=100)
    assert torch.equal(kept, torch.arange(100)) and s is lpS and t is lpT and i == 7 and mass == (1.0, 1.0)

    rare = int(lpS.argmin())  # the student's least likely token: outside its top 16, so it replaces the last one
    kept, s, t, i, mass = tutorial.vocab_slice(lpS, lpT, rare, width=16)
    assert len(kept) == 16 and kept.tolist() == sorted(kept.tolist()) and int(kept[i]) == rare
    assert set(lpS.topk(15).indices.tolist()) <= set(kept.tolist())
    assert mass == pytest.approx((lpS[kept].exp().sum().item(), lpT[kept].exp().sum().item()))
    assert s.exp().sum().item() == pytest.approx(1.0, abs=1e-6) and t.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(s - s[0], lpS[kept] - lpS[kept[0]], atol=1e-6)  # renormalised: ratios kept
    with pytest.raises(InputError, match="token=100"):
        tutorial.vocab_slice(lpS, lpT, 100)
