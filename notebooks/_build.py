"""Write the tutorial notebooks (notebooks/*.ipynb) from the cell texts below, without outputs.

    python notebooks/_build.py              # rewrite notebooks/*.ipynb
    python notebooks/_build.py --out DIR    # write them elsewhere (tests/test_notebooks.py checks they match)

Edit the cells here, not in Jupyter, then rerun this script: the committed notebooks stay output-free and every
notebook shares the same first cells (preset, run folder, notebook budget). The notebooks only drive the
`s2dlab` package; anything worth a function belongs in the package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Overrides the notebooks apply on the tiny preset. Empty: the notebooks run the stages of
# `s2dlab run --ablations` with its defaults (s2dlab/config.py), and all seven take a few minutes on a laptop CPU.
# Every notebook gets this same list, so together they build one run.
TINY_OVERRIDES: list[str] = []


# --- cells shared by every notebook ---------------------------------------------------------------------------------

def cell_preset() -> str:
    return '''import os

PRESET = "tiny"  # "qwen3_paper" on a GPU box
RUN_DIR = os.environ.get("S2DLAB_RUN", f"../runs/tutorial_{PRESET}")  # one run folder for notebooks 00-05'''


def cell_setup() -> str:
    overrides = "[" + "".join(f"\n        {o!r}," for o in TINY_OVERRIDES) + ("\n    ]" if TINY_OVERRIDES else "]")
    return f'''if PRESET == "tiny":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny preset never touches the Hugging Face Hub
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # text progress bars are fine here

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import transformers
from IPython.display import HTML, display

from s2dlab import pipeline, viz
from s2dlab.config import load_config
from s2dlab.evaluate import evaluate_stage
from s2dlab.runs import create_run
from s2dlab.stages import common

# The settings of `s2dlab run` (s2dlab/config.py), plus these overrides. Every notebook of one run folder must
# use the same list; to experiment, add e.g. "opd.loss=sampled_token" here with a new RUN_DIR (WORKSHOP.md).
NOTEBOOK_OVERRIDES = {{
    "tiny": {overrides},
    "qwen3_paper": [],
}}
cfg = load_config(PRESET, overrides=NOTEBOOK_OVERRIDES[PRESET])
common.offline_defaults()
transformers.logging.disable_progress_bar()  # no bar for every model load
run = create_run(RUN_DIR, cfg.to_dict(), cfg.seed)
steps, arms = pipeline.plan(cfg)
K, EVAL_SET = cfg.eval.n_samples, cfg.eval.sets[0]
print(f"preset {{PRESET}}, run folder {{run.path.resolve()}}")
print("finished stages:", [s for s in run.stages() if common.stage_done(run, s)] or "none yet")'''


def cell_ensure(last: str, comment: str) -> str:
    return f'''# {comment}
# A finished stage is skipped and an existing eval.json is reused, so this is instant when an earlier notebook
# (or `s2dlab run`) already built them: these are the same calls `s2dlab run` makes.
upto = [s.out for s in steps].index("{last}")
for step in steps[: upto + 1]:
    pipeline.run_stage(cfg, run, step)
    evaluate_stage(cfg, run, step.out, progress=False)
print("finished stages:", [s for s in run.stages() if common.stage_done(run, s)])'''


BUDGET_NOTE = ("Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, "
               "step by step, the same run as `s2dlab run --ablations`.")


def header(number: str, title: str, body: str) -> str:
    return f"# {number} · {title}\n\n{body}"


# --- 00 quickstart --------------------------------------------------------------------------------------------------

NB00 = [
    ("code", cell_preset()),
    ("md", header("00", "Quickstart: the task, the tiny models, sampling and grading, dense rewards", """\
This lab reproduces, at toy scale, the **sparse-to-dense reward principle** of LM post-training
(arXiv 2605.12483): train a *larger teacher* with a sparse reward (right or wrong at the end), then hand what it
learned to a *small student* as a dense reward, one number per token.

```
stage 1  teacher_grpo   sparse-reward GRPO on the teacher
stage 2a fkl_warmup     forward KL on teacher rollouts
stage 2b opd            on-policy distillation: the student samples, the teacher scores every token
stage 3  student_grpo   sparse-reward GRPO on the student, held-out labels
baseline direct_grpo    GRPO on the student straight away, same labels
```

This notebook trains nothing. It looks at the pieces: the task and its grader, the two tiny models, sampling,
and one first look at what a dense reward is. Runs in well under a minute on a laptop CPU.

The first cell picks the preset: `tiny` (CPU, everything local) or `qwen3_paper` (Qwen3-8B teacher,
Qwen3-1.7B student, DAPO-Math, on a GPU box). `RUN_DIR` is the run folder that notebooks 00-05 share
(`runs/tutorial_tiny` at the repository root unless `S2DLAB_RUN` says otherwise).""")),
    ("code", cell_setup()),
    ("md", """\
## The task

On the tiny preset the task is synthetic arithmetic: `task.n_terms` numbers of `task.digits` digits joined by `+`
or `-` (by default four one-digit numbers, such as `7+3-5+8=?`). Each problem record carries the prompt, the
final answer and a worked solution, one operation per line, ending in `\\boxed{...}`.
The labeled data of the RL stages are **final answers only**; worked solutions are used only to make the base
models (stage 0), the way pretraining would. The splits are disjoint and fixed by `task.data_seed`."""),
    ("code", """\
splits = common.task_splits(cfg)
print({name: len(records) for name, records in splits.items()})
record = splits["teacher_rl"][0]
print("prompt:  ", record["prompt"])
print("answer:  ", record["answer"])
print("solution:")
print(record["solution"])"""),
    ("md", """\
## Grading: the sparse reward

A completion earns reward 1 when the content of its **last** `\\boxed{}` verifies against the answer
(math-verify), else 0. On the arithmetic task the box must hold a plain integer, so copying the question into
the box earns nothing even though it has the right value."""),
    ("code", """\
grade = common.grade_fn(cfg)
examples = {
    "worked solution": record["solution"],
    "answer only": f"\\\\boxed{{{record['answer']}}}",
    "off by one": f"\\\\boxed{{{int(record['answer']) + 1}}}" if PRESET == "tiny" else "\\\\boxed{0}",
    "question in the box": f"\\\\boxed{{{record['prompt'].rstrip('=?')}}}",
    "no box": record["answer"],
}
pd.DataFrame({"completion": examples.values(), "reward": [float(grade(c, record["answer"])) for c in examples.values()]},
             index=list(examples))"""),
    ("md", """\
## The models

Stage 0 (`base`) gives the run its starting teacher and student. On the tiny preset these are small
Qwen3-architecture models with a character-level tokenizer, trained from scratch on worked solutions and
shipped with the package, so this step only copies them into the run folder. On `qwen3_paper` it points at the
pretrained checkpoints. Teacher and student must share a tokenizer: a dense reward compares
`log pT(y_t)` with `log pS(y_t)` for the same token id."""),
    ("code", """\
for step in steps[:2]:  # base_teacher, base_student
    pipeline.run_stage(cfg, run, step)

tok = common.tokenizer_for(cfg, run)
teacher = common.load_stage_model(cfg, run, "base_teacher", tok).eval()
student = common.load_stage_model(cfg, run, "base_student", tok).eval()
common.check_pair(teacher, student, tok)  # raises if they could not be compared token by token
for name, model in (("teacher", teacher), ("student", student)):
    c = model.config
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, {c.num_hidden_layers} layers, "
          f"hidden {c.hidden_size}")
print(f"shared tokenizer: {len(tok)} tokens")"""),
    ("md", """\
What the model actually reads is the problem inside the chat template, and generation continues after
`<|im_start|>assistant`:"""),
    ("code", """\
from s2dlab.generation import format_prompt, sample

print(format_prompt(tok, record["prompt"], cfg.task.prompt_suffix, common.chat_kwargs(cfg)))"""),
    ("md", """\
## Sampling

`s2dlab.generation.sample` draws `n` completions per problem and keeps the token ids and the sampler's
log-probabilities. Temperature 1 with no top-k or top-p is the model's own distribution, which is what
on-policy training needs; temperature 0 is greedy decoding."""),
    ("code", """\
problems = common.eval_sets(cfg)[EVAL_SET]
gen = dict(max_new_tokens=cfg.generation.max_new_tokens, prompt_suffix=cfg.task.prompt_suffix,
           chat_template_kwargs=common.chat_kwargs(cfg), progress=False)
rollouts = sample(student, tok, problems[:3], n=3, temperature=1.0, seed=0, **gen)
answers = {p["id"]: p["answer"] for p in problems}
pd.DataFrame([{"problem": r.prompt, "sample": r.sample_idx, "completion": r.completion,
               "reward": float(grade(r.completion, answers[r.prompt_id]))} for r in rollouts])"""),
    ("md", """\
A quick accuracy check on a slice of the eval problems, greedy and sampled (the real evaluation, avg@k over all
eval problems, runs after every stage in the next notebooks):"""),
    ("code", """\
subset = problems[:64]
rows = []
for name, model in (("teacher", teacher), ("student", student)):
    for label, temperature in (("greedy", 0.0), ("sampled T=1", 1.0)):
        outs = sample(model, tok, subset, n=1, temperature=temperature, seed=1, **gen)
        rows.append({"model": name, "decoding": label,
                     "accuracy": np.mean([grade(r.completion, answers[r.prompt_id]) for r in outs])})
pd.DataFrame(rows).pivot(index="model", columns="decoding", values="accuracy").style.format("{:.0%}")"""),
    ("md", """\
## One glance at a dense reward

The sparse reward gives a whole completion one bit. A teacher can instead score **every token** of a student's
completion. For a student sample `y ~ pS(.|x)` the *implicit reward* of token `t` is

$$r_t = \\log p_T(y_t \\mid x, y_{<t}) - \\log p_S(y_t \\mid x, y_{<t})$$

positive where the teacher likes the student's token more than the student does, negative where it likes it
less. `s2dlab.scoring.score_rollouts` computes it (with the per-token KLs and entropies) for any rollouts.
Below: one student completion coloured by its implicit reward under the base teacher; hover a token for the
numbers and both models' top alternatives."""),
    ("code", """\
from s2dlab.scoring import score_rollouts

scored = score_rollouts(student, teacher, tok, rollouts, grade_fn=grade, answers=answers)
row = max(scored, key=lambda r: r["length"])
print(f"{row['prompt']}  ->  reward {row['reward']:.0f}, summed implicit reward {row['sum_implicit_reward']:+.2f}")
display(HTML(viz.rollout_heatmap_html(row, id_to_text=viz.vocab_from_rows(pd.DataFrame(scored)))))"""),
    ("code", """\
viz.per_token_figure(row)"""),
    ("md", """\
Red tokens are where the teacher disagrees with the student: on this task, mostly the digits of a wrong
intermediate result. Whether such numbers can be trusted as a reward, that is whether they tell right from wrong,
is condition C1, the subject of notebook 01.

**Next:** `01_teacher_grpo` trains the teacher with the sparse reward."""),
]


# --- 01 teacher GRPO ------------------------------------------------------------------------------------------------

NB01 = [
    ("code", cell_preset()),
    ("md", header("01", "Stage 1: teacher GRPO, and what 'reward-shaped' means (C1)", f"""\
Stage 1 trains the **teacher** with GRPO on labeled problems that carry a final answer only. Per step: a few
problems, a group of completions for each, reward 1 for a verified boxed answer and 0 otherwise; each
completion's advantage is its reward minus its group's mean (divided by the group's spread), with PPO-style
clipping (0.2 / 0.28), no KL penalty and a token-mean loss, as in the paper.

The point of stage 1 for distillation is condition **C1**: after RL the teacher should be *reward-shaped*. Its
per-token log-probabilities then carry information about right and wrong, so the implicit reward
`log pT(y_t) - log pS(y_t)` it gives a student's rollout, summed over the rollout, should rank the student's
correct rollouts above its incorrect ones. The claim is that RL makes the teacher a better scorer, not just a
better solver.

{BUDGET_NOTE} About a minute on a 2-core laptop CPU: stage 1 is the slowest stage of the workflow.""")),
    ("code", cell_setup()),
    ("code", cell_ensure("teacher_grpo", "Stage 0 (shipped base models) and stage 1, each evaluated.")),
    ("md", """\
## Accuracy before and after

Every stage is evaluated when it finishes: avg@k (mean correctness over k samples at T=1 per eval problem),
pass@k and greedy accuracy, on eval problems no stage trains on."""),
    ("code", """\
results = pipeline.collect_results(cfg, run, arms)
table = pd.DataFrame(results["stages"]).T
table.loc[["base_teacher", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")"""),
    ("md", """\
## Reward and accuracy curves

`reward` is the mean sparse reward of the step's completions (the training accuracy at T=1);
`frac_reward_zero_std` the share of groups where every completion got the same reward, which therefore carry no
learning signal at all. Every `probe.every` steps a probe samples a fixed set of eval problems:
`probe/teacher_accuracy` is the teacher's accuracy on them, and `probe/auroc` the C1 measure below on the base
student's probe rollouts (small, so noisy). All of it is in `teacher_grpo/metrics.jsonl`."""),
    ("code", """\
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "probe/teacher_accuracy", "probe/auroc"],
                        stages=["teacher_grpo"])"""),
    ("md", """\
## Seeing C1

The question is whether the teacher's dense reward separates right from wrong *on the student's rollouts*,
which is what OPD will train on. So: sample the base student on eval problems, score the very same rollouts with
the base teacher and with the RL teacher, and compare. The number is the AUROC of the summed implicit reward as
a predictor of correctness (0.5: no information, 1: a perfect ranking); `s2dlab.diagnostics` computes it and
states a verdict."""),
    ("code", """\
from s2dlab.diagnostics import c1_separation, verdict_c1
from s2dlab.generation import sample
from s2dlab.scoring import score_rollouts

tok = common.tokenizer_for(cfg, run)
student = common.load_stage_model(cfg, run, "base_student", tok).eval()
problems = common.eval_sets(cfg)[EVAL_SET][:96]
answers = {p["id"]: p["answer"] for p in problems}
rollouts = sample(student, tok, problems, n=2, max_new_tokens=cfg.generation.max_new_tokens, seed=0,
                  prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=common.chat_kwargs(cfg), progress=False)
scored = {}
for teacher_stage in ("base_teacher", "teacher_grpo"):
    teacher = common.load_stage_model(cfg, run, teacher_stage, tok).eval()
    scored[teacher_stage] = score_rollouts(student, teacher, tok, rollouts, grade_fn=common.grade_fn(cfg),
                                           answers=answers)
accuracy = {s: results["stages"][s]["accuracy"] for s in ("base_teacher", "teacher_grpo")}
print(verdict_c1(c1_separation(scored["teacher_grpo"]), accuracy["base_teacher"], accuracy["teacher_grpo"]))
pd.DataFrame({f"scored by {s}": c1_separation(rows) for s, rows in scored.items()}).T"""),
    ("md", """\
Each dot is one student rollout, placed at its summed implicit reward. A reward-shaped teacher pushes the correct
ones (top row) to the right of the incorrect ones (bottom row)."""),
    ("code", """\
display(viz.c1_figure(scored["base_teacher"], title="C1 with the base teacher"))
display(viz.c1_figure(scored["teacher_grpo"], title="C1 with the RL teacher (after stage 1)"))"""),
    ("md", """\
How to read it:

- An AUROC clearly above 0.5 means the dense reward points the right way on average: summed over a rollout, the
  teacher's per-token judgement ranks the student's right answers above its wrong ones. OPD relies on that.
- Compare the two rows. Stage 1 makes the teacher a better *solver* (the accuracy table above); C1 asks whether
  it is also a better *judge of the student's text*, which is what distillation uses. At this toy scale, expect
  the two AUROCs to be close: the shipped base teacher, trained on worked solutions, already judges fairly well.
  Measured on seed 0 with all 300 eval problems and 4 samples each (1,200 rollouts, so little noise), the
  AUROC was 0.66 with either teacher; what changed is that the RL teacher is more confident, so both classes get
  lower summed rewards and the gap between them widens slightly. With the ~200 rollouts used here, differences
  of ±0.05 are noise. The `raw_teacher` arm in notebook 04 asks the question that matters downstream: how good is
  a student distilled from the teacher *before* stage 1?
- The summed implicit reward mixes two things: agreement on *style* (the layout both models learned from the same
  data) and on *content*. Only the second should move with correctness; the heatmaps of notebook 05 show it
  sitting on the digits of wrong intermediate results.
- The probe in `teacher_grpo/rollouts/` records the same measure during training (`probe/auroc` in the metrics;
  `s2dlab score RUN` prints it). The paper measures C1 with a Qwen3-8B teacher; this is the same measurement on
  a toy.

**Next:** `02a_forward_kl_warmup` moves the student toward the RL teacher before on-policy distillation."""),
]


# --- 02a forward-KL warmup ------------------------------------------------------------------------------------------

NB02A = [
    ("code", cell_preset()),
    ("md", header("02a", "Stage 2a: forward-KL warmup, the student moves into the teacher's support (C2)", f"""\
On-policy distillation (stage 2b) scores tokens *the student samples*. If the student is far from the teacher,
it samples text the teacher would never write, and the teacher's log-probabilities there are not a meaningful
signal. Condition **C2** asks that the student already sit inside the teacher's support.

The warmup gets it there with the **forward KL** `KL(pT || pS) = E_(y~pT)[log pT(y) - log pS(y)]`. Its
expectation is over the *teacher's* samples, so it is trained on teacher rollouts:

1. the RL teacher samples completions on the prompt pool (prompts only, no answers are used);
2. the student is fine-tuned on those samples (`fkl_warmup.loss=sampled`, SFT on the sampled tokens, which is
   the forward KL up to the teacher's entropy), or against the teacher's full distributions
   (`fkl_warmup.loss=full`).

The forward KL is *mode covering*: the student is pushed to put mass wherever the teacher does. C2 is measured
the other way round, on the student's own samples: the per-token reverse KL `KL(pS || pT)` should be small.

{BUDGET_NOTE} About half a minute on a 2-core laptop CPU once notebook 01 has run.""")),
    ("code", cell_setup()),
    ("code", cell_ensure("fkl_warmup", "Stages 0-1 (if missing) and the warmup, each evaluated.")),
    ("md", """\
## The teacher's rollouts

The warmup samples `fkl_warmup.num_rollouts` completions from the RL teacher once and caches them in the stage
folder. Only completions that stopped on their own are kept (`fkl_warmup.only_correct=true` would also drop the
wrong ones, which uses labels; off by default). They are not all correct: the student learns the teacher's
*distribution*, mistakes included."""),
    ("code", """\
teacher_rows = pd.DataFrame(common.read_jsonl(run.stage_dir("fkl_warmup") / "teacher_rollouts.jsonl"))
splits = common.task_splits(cfg)
answers = {r["id"]: r["answer"] for r in splits["teacher_rl"] + splits["student_rl"]}
grade = common.grade_fn(cfg)
teacher_rows["correct"] = [grade(c, answers[p]) for c, p in zip(teacher_rows["completion"], teacher_rows["prompt_id"])]
print(f"{len(teacher_rows):,} teacher rollouts, {teacher_rows['finished'].mean():.0%} finished, "
      f"{teacher_rows['correct'].mean():.0%} correct")
teacher_rows[["prompt", "completion", "finished", "correct"]].head(6)"""),
    ("md", """\
## Training curves

`loss` is the cross-entropy on the teacher's tokens (the forward-KL estimate, up to the teacher's entropy).
`probe/mean_reverse_kl` is C2 itself, measured every `probe.every` steps on the student's own samples of a fixed
probe set: the mean per-token `KL(pS || pT)` in nats."""),
    ("code", """\
viz.stage_curves_figure(run, metrics=["loss", "mean_token_accuracy", "probe/mean_reverse_kl", "probe/accuracy"],
                        stages=["fkl_warmup"])"""),
    ("md", """\
## Seeing C2

The probe set is small, so here is the same measurement on more problems: sample the student before the warmup
(`base_student`) and after it (`fkl_warmup`), score each one's own rollouts against the RL teacher, and compare
the distribution of per-token reverse KL. Mass in the left bins means the student rarely writes a token the
teacher would not."""),
    ("code", """\
from s2dlab.diagnostics import c2_closeness, verdict_c2
from s2dlab.generation import sample
from s2dlab.scoring import score_rollouts

tok = common.tokenizer_for(cfg, run)
teacher = common.load_stage_model(cfg, run, "teacher_grpo", tok).eval()
problems = common.eval_sets(cfg)[EVAL_SET][:96]
eval_answers = {p["id"]: p["answer"] for p in problems}
closeness, scored = {}, {}
for label, stage in (("before warmup", "base_student"), ("after warmup", "fkl_warmup")):
    student = common.load_stage_model(cfg, run, stage, tok).eval()
    rollouts = sample(student, tok, problems, n=2, max_new_tokens=cfg.generation.max_new_tokens, seed=0,
                      prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=common.chat_kwargs(cfg),
                      progress=False)
    scored[label] = score_rollouts(student, teacher, tok, rollouts, grade_fn=grade, answers=eval_answers)
    closeness[label] = c2_closeness(scored[label])
print(verdict_c2(closeness["after warmup"], before=closeness["before warmup"]))
viz.c2_histogram_figure(closeness)"""),
    ("md", """\
The verdict applies a fixed bar to the *mean* (`C2_MAX_MEAN_REVERSE_KL` in `s2dlab.diagnostics`, 0.3
nats/token). The histogram says more: most tokens sit near 0 after the warmup, and the mean is carried by a tail
of positions where the student still disagrees with the teacher. That tail is what OPD works on next, now
from a student whose samples the teacher can judge."""),
    ("md", """\
And the accuracy: the warmup alone usually moves the student toward the teacher's accuracy, since it imitates a
better model. (An unfiltered warmup on a *weak* teacher can also pull a student down, mistakes and all; OPD then
recovers it. Try `fkl_warmup.only_correct=true` in a fresh run folder to compare.)"""),
    ("code", """\
results = pipeline.collect_results(cfg, run, arms)
table = pd.DataFrame(results["stages"]).T
table.loc[["base_student", "fkl_warmup", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")"""),
    ("md", """\
**Next:** `02b_on_policy_distillation`: the student samples, the teacher scores every token."""),
]


# --- 02b on-policy distillation -------------------------------------------------------------------------------------

NB02B = [
    ("code", cell_preset()),
    ("md", header("02b", "Stage 2b: on-policy distillation, the implicit reward by hand", f"""\
On-policy distillation (OPD) trains the student on **its own samples**, scored token by token by the teacher.
For a student rollout `y ~ pS(.|x)` and each position `t`:

| quantity | definition | sign |
|---|---|---|
| implicit reward | `r_t = log pT(y_t) - log pS(y_t)` | > 0: the teacher likes the student's token more than the student does |
| reverse KL | `KL(pS ‖ pT)_t = Σ_v pS(v) (log pS(v) - log pT(v))` | ≥ 0, what OPD minimises |
| forward KL | `KL(pT ‖ pS)_t = Σ_v pT(v) (log pT(v) - log pS(v))` | ≥ 0, what the warmup minimised |

The two meet in one identity: `E_(y_t ~ pS)[-r_t] = KL(pS ‖ pT)_t`. The sampled-token implicit reward is a
one-sample estimate of minus the reverse KL, so minimising the reverse KL on the student's own samples **is**
reinforcement learning with a dense, per-token reward, given by the teacher. Here the RL teacher from stage 1
scores a student that starts from the warmup.

The stage uses TRL's `DistillationTrainer` with the full-vocabulary reverse KL (`opd.loss=full_reverse_kl`,
default), or the sampled-token implicit reward as a per-token advantage (`opd.loss=sampled_token`).
One rollout per prompt, as in the paper.

{BUDGET_NOTE} About half a minute on a 2-core laptop CPU once notebook 02a has run.""")),
    ("code", cell_setup()),
    ("code", cell_ensure("opd", "Stages 0-2a (if missing) and OPD, each evaluated.")),
    ("md", """\
## The implicit reward, by hand

One rollout of the student after OPD, the RL teacher, and nothing but `torch`: run each model over prompt +
completion, take log-softmax, and read off the log-probability of each sampled token. The logits at position `j`
predict token `j+1`, so the completion's tokens are predicted from the positions just before them."""),
    ("code", """\
import torch

from s2dlab.generation import sample

tok = common.tokenizer_for(cfg, run)
teacher = common.load_stage_model(cfg, run, "teacher_grpo", tok).eval()
student = common.load_stage_model(cfg, run, "opd", tok).eval()
problem = common.eval_sets(cfg)[EVAL_SET][0]
r = sample(student, tok, [problem], n=1, max_new_tokens=cfg.generation.max_new_tokens, seed=0,
           prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=common.chat_kwargs(cfg), progress=False)[0]

ids = torch.tensor([r.prompt_ids + r.completion_ids], device=student.device)
P, y = len(r.prompt_ids), torch.tensor(r.completion_ids, device=student.device)
V = len(tok)  # real tokens only (big models pad their output layer past the tokenizer)
with torch.no_grad():
    # [T, V] log-probabilities in float32; row t predicts completion token t
    logp_S = student(ids).logits[0, P - 1:-1, :V].float().log_softmax(-1)
    logp_T = teacher(ids).logits[0, P - 1:-1, :V].float().log_softmax(-1)
t = torch.arange(len(y), device=y.device)
implicit_reward = (logp_T[t, y] - logp_S[t, y]).cpu()                  # log pT(y_t) - log pS(y_t)
reverse_kl = (logp_S.exp() * (logp_S - logp_T)).sum(-1).cpu()          # KL(pS || pT) per position
print(repr(r.completion))
print(f"{len(y)} tokens, summed implicit reward {implicit_reward.sum():+.3f}, mean reverse KL {reverse_kl.mean():.4f}")"""),
    ("md", """\
The same rollout through `s2dlab.scoring.score_rollouts` (the code that writes every snapshot in the run
store, chunked so memory does not grow with vocabulary x length) must agree to float precision:"""),
    ("code", """\
from s2dlab.scoring import score_rollouts

row = score_rollouts(student, teacher, tok, [r], grade_fn=common.grade_fn(cfg),
                     answers={problem["id"]: problem["answer"]})[0]
atol = 1e-4 if cfg.models.dtype == "float32" else 5e-2  # bf16 forward passes differ in the last bits
np.testing.assert_allclose(implicit_reward.numpy(), row["implicit_reward"], atol=atol)
np.testing.assert_allclose(reverse_kl.numpy(), row["reverse_kl"], atol=atol)
print("by hand == s2dlab.scoring: implicit reward and reverse KL agree at every token")
pd.DataFrame({"token": row["tokens"], "pS(y_t)": np.exp(row["student_logprob"]),
              "pT(y_t)": np.exp(row["teacher_logprob"]), "implicit reward": row["implicit_reward"],
              "reverse KL": row["reverse_kl"]}).round(4).T"""),
    ("md", """\
And the identity `E_(y_t ~ pS)[-r_t] = KL(pS ‖ pT)_t`, checked by sampling: at the position where the two
models disagree most, draw many tokens from the student's distribution and average minus their implicit
reward."""),
    ("code", """\
pos = int(reverse_kl.argmax())
logp_S_pos, logp_T_pos = logp_S[pos].cpu(), logp_T[pos].cpu()
draws = torch.multinomial(logp_S_pos.exp(), 20000, replacement=True, generator=torch.Generator().manual_seed(0))
estimate = -(logp_T_pos[draws] - logp_S_pos[draws]).mean()
print(f"position {pos} (token {row['tokens'][pos]!r}): Monte Carlo E[-r] = {estimate:.4f}, "
      f"exact KL(pS||pT) = {reverse_kl[pos]:.4f}")"""),
    ("md", """\
## The token heatmap

The dashboard's renderer, `s2dlab.viz.rollout_heatmap_html`: each token coloured by its implicit reward (red:
the teacher disagrees, blue: the teacher agrees more than the student), with every per-token number and both
models' top alternatives on hover. Below, probe rollouts on the same problems at the first and last OPD
snapshot."""),
    ("code", """\
steps_opd = run.rollout_steps("opd")
first, last = (run.rollouts("opd", s) for s in (steps_opd[0], steps_opd[-1]))
vocab = viz.vocab_from_rows(pd.concat([first, last]))
for label, df in (("start of OPD", first), ("end of OPD", last)):
    rows = df[df["policy"] == "student"].head(3)
    for _, rr in rows.iterrows():
        title = f"{label}, step {rr['step']}: {rr['prompt']}  (correct: {rr['correct']}, " \\
                f"sum of implicit reward {rr['sum_implicit_reward']:+.2f})"
        display(HTML(viz.rollout_heatmap_html(rr, title=title, id_to_text=vocab)))"""),
    ("md", """\
## The reverse KL over training

OPD minimises the reverse KL on the student's own samples, so its curve should fall. `probe/mean_reverse_kl` is
measured at every probe snapshot (fixed probe problems, fresh student samples); the curve runs across the warmup
and OPD, end to end."""),
    ("code", """\
viz.stage_curves_figure(run, metrics=["probe/mean_reverse_kl", "probe/mean_implicit_reward", "probe/accuracy"],
                        stages=["fkl_warmup", "opd"])"""),
    ("code", """\
results = pipeline.collect_results(cfg, run, arms)
print("mean reverse KL per token on the probe, OPD start -> end: "
      f"{results['c2']['opd_start']['mean_reverse_kl']:.3f} -> {results['c2']['opd_end']['mean_reverse_kl']:.3f}")
table = pd.DataFrame(results["stages"]).T
table.loc[["base_student", "fkl_warmup", "opd", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")"""),
    ("md", """\
On the tiny preset OPD usually gives the largest single jump of the workflow. No labels were used: the teacher's
log-probabilities were the only signal.

**Next:** `03_student_grpo`: sparse-reward RL on the distilled student, with held-out labels."""),
]


# --- 03 student GRPO ------------------------------------------------------------------------------------------------

NB03 = [
    ("code", cell_preset()),
    ("md", header("03", "Stage 3: student GRPO on held-out labels", f"""\
The last stage is sparse-reward GRPO again, now on the **student** that OPD handed off, with the *held-out*
share of the labeled problems: the student-RL split, which the teacher never trained on. The labeled budget is
split explicitly in the config (`task.teacher_rl_size`, `task.student_rl_size`); the direct-GRPO baseline of
notebook 04 gets the very same student-RL problems.

The paper calls this stage optional; the dense signal of OPD has already done most of the work. At toy scale it
adds 0-4 points. What it shows well is *why* starting RL from a distilled student helps: GRPO learns only from
groups in which some completions are right and some wrong, and a stronger student has more of them.

{BUDGET_NOTE} About 20 seconds on a 2-core laptop CPU once notebook 02b has run.""")),
    ("code", cell_setup()),
    ("md", """\
The labeled splits are disjoint: no problem text is shared between the teacher's RL set, the student's RL set
and the eval set."""),
    ("code", """\
splits = common.task_splits(cfg)
texts = {name: {r["prompt"] for r in splits[name]} for name in ("teacher_rl", "student_rl")}
texts["eval"] = {r["prompt"] for r in common.eval_sets(cfg)[EVAL_SET]}
print({name: len(t) for name, t in texts.items()})
print("shared between teacher_rl and student_rl:", len(texts["teacher_rl"] & texts["student_rl"]))
print("shared between RL sets and eval:", len((texts["teacher_rl"] | texts["student_rl"]) & texts["eval"]))"""),
    ("code", cell_ensure("student_grpo", "Stages 0-2b (if missing) and student GRPO, each evaluated.")),
    ("md", """\
## Curves

`reward` is the student's training accuracy at T=1; `frac_reward_zero_std` the share of groups in which all
completions got the same reward (all right or all wrong), which give GRPO no gradient. The probe scores the
student against the RL teacher, so the reverse KL shows whether RL pulls the student away from the teacher."""),
    ("code", """\
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "probe/accuracy", "probe/mean_reverse_kl"],
                        stages=["student_grpo"])"""),
    ("md", """\
## The student along the workflow

Accuracy on the eval set after each stage, with the RL teacher for reference:"""),
    ("code", """\
results = pipeline.collect_results(cfg, run, arms)
path = ["base_student", "fkl_warmup", "opd", "student_grpo"]
table = pd.DataFrame(results["stages"]).T.loc[path]
fig = go.Figure()
for column, name in (("accuracy", f"avg@{K} (T=1)"), ("greedy", "greedy")):
    if column in table:
        fig.add_trace(go.Bar(x=path, y=table[column], name=name, text=[f"{v:.0%}" for v in table[column]]))
fig.add_hline(y=results["stages"]["teacher_grpo"]["accuracy"], line_dash="dot",
              annotation_text=f"RL teacher avg@{K}", annotation_position="top left")
fig.update_layout(title="Student accuracy after each stage", yaxis_tickformat=".0%", barmode="group",
                  template="plotly_white", height=360)
fig"""),
    ("md", """\
**Next:** `04_workflow_vs_direct_grpo`: the same labeled problems given to GRPO directly, and the ablations."""),
]


# --- 04 workflow vs direct GRPO -------------------------------------------------------------------------------------

NB04 = [
    ("code", cell_preset()),
    ("md", header("04", "The workflow against direct GRPO, and the ablations", f"""\
The baseline is the obvious alternative: give the base student the same held-out labeled problems and run GRPO
on it directly (`direct_grpo`), for as many student steps as the workflow's warmup + OPD + student GRPO
together. The ablation arms, as in the paper, take one ingredient away each:

| arm | student path | what it tests |
|---|---|---|
| `workflow` | warmup → OPD → student GRPO, RL teacher | the full recipe |
| `direct_grpo` | GRPO only | sparse reward alone |
| `raw_teacher` | warmup → OPD → student GRPO from the teacher *before* stage 1 | C1: does the teacher need RL? |
| `no_warmup` | OPD → student GRPO | C2: does OPD need the warmup? |
| `no_opd` | warmup → student GRPO | is the dense reward the part that matters? |
| `gold_sft` | SFT on gold worked solutions | reference: what full worked-solution labels would buy |

The workflow uses final answers only; `gold_sft` uses worked solutions, so it is a reference, not a competitor.

{BUDGET_NOTE} On a 2-core laptop CPU, about a minute for the baseline once notebook 03 has run, and about 1.5
minutes more for the four ablation arms (set `RUN_ABLATIONS = False` below to skip them).""")),
    ("code", cell_setup()),
    ("code", """\
RUN_ABLATIONS = True  # the four ablation arms: about 1.5 minutes more on a 2-core laptop"""),
    ("code", cell_ensure("direct_grpo", "Every workflow stage (if missing) and the direct-GRPO baseline, evaluated.")),
    ("code", """\
if RUN_ABLATIONS:
    steps, arms = pipeline.plan(cfg, ablations=True)
    for step in steps:  # finished stages are skipped; the ablation arms run here
        pipeline.run_stage(cfg, run, step)
        evaluate_stage(cfg, run, step.out, progress=False)
results = pipeline.collect_results(cfg, run, arms)
run.write_results(results)  # results.json: what `s2dlab run` writes, and what the dashboard reads
print(pipeline.results_table(results))"""),
    ("md", """\
## The results table

One row per arm: avg@k at T=1 (the headline number, as in the paper's avg@16), greedy accuracy and pass@k on the
eval set. `viz.results_table` gives the same table as a DataFrame, with every metric."""),
    ("code", """\
viz.results_table(results)"""),
    ("code", """\
viz.results_bar_figure(results)"""),
    ("md", """\
## Why direct GRPO stalls

GRPO learns only from groups with both right and wrong completions. A weak student leaves many groups all wrong,
and those give no gradient at all; a student that has been distilled first has fewer of them, so more of each
step's completions carry signal.
`frac_reward_zero_std` is that share of dead groups per step:"""),
    ("code", """\
fig = go.Figure()
for stage in ("direct_grpo", "student_grpo"):
    m = pd.DataFrame(run.metrics(stage))
    m = m.dropna(subset=["frac_reward_zero_std"])
    fig.add_trace(go.Scatter(x=m["step"], y=m["frac_reward_zero_std"].rolling(10, min_periods=1).mean(),
                             name=stage, mode="lines"))
fig.update_layout(title="Share of GRPO groups with zero advantage (rolling mean of 10 steps)",
                  xaxis_title="GRPO step", yaxis_tickformat=".0%", template="plotly_white", height=340)
fig"""),
    ("md", """\
And the conditions behind the arms: C1 (the probe's AUROC before and after stage 1) and C2 (the reverse KL of
the student's own samples before and after the warmup, and across OPD), as stored in `results.json`:"""),
    ("code", """\
from s2dlab.diagnostics import verdict_c1, verdict_c2

c1, c2 = results["c1"], results["c2"]
print("C1:", verdict_c1(c1.get("separation_after") or {}, c1["teacher_accuracy_before"], c1["teacher_accuracy_after"]))
print("C2:", verdict_c2(c2["after_warmup"], c2.get("before_warmup")))
viz.c2_histogram_figure({k: c2[k] for k in ("before_warmup", "after_warmup", "opd_end", "raw_teacher_before_warmup")
                         if k in c2})"""),
    ("md", """\
## What to expect, and what the paper reports at scale

This is one seed on 300 eval problems: differences of about 3 points or less are evaluation noise, and the spread
between seeds is larger than that. `s2dlab run --ablations --seeds 3` repeats everything and reports mean ± sd;
the repository README gives that table for the tiny preset (avg@4, %, seeds 0-2; this notebook's run is seed 0):

| arm | avg@4 | greedy |
|---|---|---|
| base student | 18.8 | 36.0 |
| **workflow** | **32.7 ± 4.0** | **42.9 ± 5.6** |
| direct GRPO | 17.0 ± 1.4 | 22.4 ± 1.3 |
| raw teacher | 29.9 ± 2.2 | 40.9 ± 1.8 |
| no warmup | 25.2 ± 1.1 | 33.4 ± 0.5 |
| no OPD | 26.6 ± 1.7 | 42.3 ± 2.0 |
| gold SFT (reference) | 41.4 ± 8.6 | 52.7 ± 12.8 |

The workflow beats direct GRPO in every seed, by 10 to 21 points; without the warmup OPD gains little (C2);
distilling from the teacher before its RL (`raw_teacher`) falls below the workflow on average but ties it in one
seed of three, so at this scale the C1 gap is suggestive rather than settled. Gold worked solutions still buy
more than final answers alone.

The paper (arXiv 2605.12483), Qwen3-1.7B student and Qwen3-8B teacher on DAPO-Math-17k, avg@16:

| | MATH-500 | AIME 2024 |
|---|---|---|
| direct GRPO | 75.9 | 19.8 |
| workflow | **79.3** | **25.2** |

On a GPU box, set `PRESET = "qwen3_paper"` in the first cell (or run `s2dlab run --preset qwen3_paper`); its
hyperparameters follow the authors' public code defaults, since the paper's own table of them could not be
read.

**Next:** `05_dense_rewards_token_by_token`: where in a rollout the dense signal actually sits."""),
]


# --- 05 dense rewards token by token --------------------------------------------------------------------------------

NB05 = [
    ("code", cell_preset()),
    ("md", header("05", "Dense rewards, token by token", f"""\
A sparse reward gives a completion one bit. The implicit reward gives every token a number, but not every token
carries the same amount of signal. This notebook asks where it sits, using the scored snapshots that OPD wrote
into the run store (`opd/rollouts/step_*.parquet`, student samples scored by the RL teacher):

- **entropy / divergence quadrants**: split tokens by the student's entropy (is it unsure?) and by the per-token
  reverse KL (does the teacher disagree?), and see which quadrant holds the reward (`s2dlab.diagnostics.token_quadrants`);
- **which tokens**: the implicit reward grouped by token;
- the **same heatmap renderer as the dashboard** (`s2dlab.viz.token_heatmap_html`), and how to open the
  dashboard on this run.

{BUDGET_NOTE} Reads the run store only, once stages 0-2b exist (it builds them if missing): seconds.""")),
    ("code", cell_setup()),
    ("code", """\
# Stages 0-2b, built if missing and evaluated (instant when notebook 02b has run). A run folder that holds OPD
# snapshots but no model weights, such as a copy of the committed fixture (see WORKSHOP.md), is read as it is.
if run.has_model("opd") or not run.rollout_steps("opd"):
    upto = [s.out for s in steps].index("opd")
    for step in steps[: upto + 1]:
        pipeline.run_stage(cfg, run, step)
        evaluate_stage(cfg, run, step.out, progress=False)"""),
    ("code", """\
from s2dlab.diagnostics import token_quadrants

STAGE = "opd"  # after notebook 04's ablations, also "raw_teacher.opd" (teacher before stage 1) or "no_warmup.opd"
snapshot_steps = run.rollout_steps(STAGE)
snapshots = {"start of OPD": run.rollouts(STAGE, snapshot_steps[0]),
             "end of OPD": run.rollouts(STAGE, snapshot_steps[-1])}
students = {label: df[df["policy"] == "student"] for label, df in snapshots.items()}
print({label: f"step {df['step'].iloc[0]}, {len(df)} student rollouts, {df['length'].sum()} tokens"
       for label, df in students.items()})"""),
    ("md", """\
## Entropy x divergence quadrants

Each token of the student's rollouts at the start of OPD, placed by the student's entropy at that position (x)
and the reverse KL to the teacher (y), coloured by its implicit reward. The dotted lines are the medians. A
token can be:

- *confident, agrees* (low, low): nothing to learn;
- *confident, teacher disagrees* (low entropy, high KL): the student is sure and wrong by the teacher's lights,
  the most useful correction, and one a sparse reward can only hint at;
- *unsure, agrees* (high, low): a choice between options the teacher also finds plausible;
- *unsure, teacher disagrees* (high, high): the student is guessing and the teacher knows better."""),
    ("code", """\
viz.quadrant_figure(students["start of OPD"])"""),
    ("md", """\
The figure splits at the medians, so each side holds half of the tokens by construction. Most tokens of this task
are near-certain for both models (copying the problem, the layout), which puts the medians close to 0. For a
table that compares the start and the end of OPD, fix the thresholds instead: below, a token is *unsure* when the
student's entropy exceeds 0.1 nats and *disagreed with* when the reverse KL does."""),
    ("code", """\
THRESHOLD = 0.1  # nats, for both entropy and reverse KL
shares = {}
for label, df in students.items():
    q = token_quadrants(df, entropy_threshold=THRESHOLD, divergence_threshold=THRESHOLD)
    for name, m in q["quadrants"].items():
        shares[(label, name)] = {"share of tokens": m["token_share"], "share of |implicit reward|": m["abs_reward_share"],
                                 "mean implicit reward": m["mean_implicit_reward"]}
pd.DataFrame(shares).T.style.format("{:.2f}", na_rep="-")"""),
    ("md", """\
Read it row by row. The confident-and-agreeing tokens are the large majority and carry almost none of the reward;
the signal sits on the minority of positions where the student is unsure and the teacher disagrees. The rare
confident-but-disagreed tokens have the most negative reward per token: the student is sure of a digit the
teacher considers wrong. Between the start and the end of OPD the unsure-and-disagreeing share shrinks: the
student has absorbed part of what the teacher knew."""),
    ("md", """\
## Which tokens carry the reward

The implicit reward grouped by token text (here, characters), over the same snapshot: the total of |implicit
reward| per token, and how often it appears."""),
    ("code", """\
tokens = students["start of OPD"][["tokens", "implicit_reward", "reverse_kl"]].explode(
    ["tokens", "implicit_reward", "reverse_kl"])
tokens["abs_reward"] = tokens["implicit_reward"].astype(float).abs()
by_token = tokens.groupby("tokens").agg(count=("abs_reward", "size"), total_abs_reward=("abs_reward", "sum"),
                                        mean_reward=("implicit_reward", lambda s: s.astype(float).mean()))
top = by_token.sort_values("total_abs_reward", ascending=False).head(15)
labels = [repr(t)[1:-1] or "(empty)" for t in top.index]
fig = go.Figure(go.Bar(x=labels, y=top["total_abs_reward"], customdata=np.c_[top["count"], top["mean_reward"]],
                       hovertemplate="%{x}: total |r| %{y:.2f}, %{customdata[0]} tokens, mean r %{customdata[1]:+.3f}"
                                     "<extra></extra>"))
fig.update_layout(title="Where the |implicit reward| goes, by token (start of OPD)", xaxis_title="token",
                  yaxis_title="sum of |implicit reward|", template="plotly_white", height=340)
fig"""),
    ("md", """\
On the arithmetic task the digits of intermediate and final results carry most of it: the student copies the
problem and the layout easily, and goes wrong in the arithmetic, which is exactly where a per-token teacher
helps and where a 0/1 reward at the end cannot say which digit was wrong.

## The heatmap, as the dashboard draws it

`viz.token_heatmap_html(tokens, values, per_token_info=...)` is the one renderer the notebooks and the app share:
plain HTML, so it works in Jupyter, in Gradio and in a saved file. Here the same rollout is coloured twice, by
its implicit reward and by its reverse KL (always ≥ 0); hover a token for all the numbers and both models'
top alternatives."""),
    ("code", """\
df = students["start of OPD"]
row = df.loc[df["sum_implicit_reward"].idxmin()]  # the rollout the teacher likes least
vocab = viz.vocab_from_rows(snapshots["start of OPD"])
info = viz.row_token_info(row, vocab)
print(f"{row['prompt']} -> {row['completion']!r} (correct: {row['correct']})")
display(HTML(viz.token_heatmap_html(row["tokens"], row["implicit_reward"], per_token_info=info,
                                    label="implicit reward log pT - log pS", title="implicit reward")))
display(HTML(viz.token_heatmap_html(row["tokens"], row["reverse_kl"], per_token_info=info, cmap="Purples",
                                    label="reverse KL(pS || pT)", title="reverse KL")))"""),
    ("md", """\
## The same numbers from the command line and the dashboard

`s2dlab score RUN` prints the C1/C2 verdicts and these quadrants for any run folder:"""),
    ("code", """\
from s2dlab.cli import main as s2dlab_cli

_ = s2dlab_cli(["score", str(run.path)])  # the exit status, 0"""),
    ("md", """\
The dashboard shows every run under a folder: stages, curves, results, and every scored rollout as a heatmap
with the same hover details. From the repository root, in a terminal:

```bash
pip install -e ".[app]"     # once: the dashboard needs Gradio
s2dlab app runs             # every run under runs/, this tutorial's included; opens on http://127.0.0.1:7860
```

It reads the run store only, so it can stay open while a notebook trains: refresh to see new snapshots. The
exact command for this run folder:"""),
    ("code", """\
print(f"s2dlab app {run.path.resolve().parent}")"""),
    ("md", """\
**Where to go from here:** `notebooks/WORKSHOP.md` has exercises (skip stage 1, skip the warmup, change the
OPD loss) with what you should see; `s2dlab run --ablations --seeds 3` gives the full table with error bars."""),
]


NOTEBOOKS = {
    "00_quickstart": NB00,
    "01_teacher_grpo": NB01,
    "02a_forward_kl_warmup": NB02A,
    "02b_on_policy_distillation": NB02B,
    "03_student_grpo": NB03,
    "04_workflow_vs_direct_grpo": NB04,
    "05_dense_rewards_token_by_token": NB05,
}


def to_notebook(cells: list[tuple[str, str]]) -> dict:
    out = []
    for kind, text in cells:
        source = text.strip("\n").splitlines(keepends=True)
        if kind == "md":
            out.append({"cell_type": "markdown", "metadata": {}, "source": source})
        else:
            out.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                        "source": source})
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(name: str) -> str:
    nb = to_notebook(NOTEBOOKS[name])
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{name[:3].rstrip('_')}-{i:02d}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the .ipynb files into")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in NOTEBOOKS:
        (args.out / f"{name}.ipynb").write_text(render(name), encoding="utf-8")
        print(args.out / f"{name}.ipynb")


if __name__ == "__main__":
    main()
