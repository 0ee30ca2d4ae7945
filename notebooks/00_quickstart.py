# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
PRESET = "tiny"  # "qwen3_paper" on a GPU box
# One run folder for notebooks 00-05. None: $S2DLAB_RUN when set, else runs/tutorial_<PRESET> at the repository root.
RUN_DIR = None

# %% [markdown]
# # 00 · Quickstart: the task, its slips, the grader, the two models, a first dense reward
#
# This lab reproduces, at toy scale, the **sparse-to-dense reward principle** of LM post-training
# (arXiv 2605.12483): train a *teacher* with a sparse reward (right or wrong at the end), then hand what it learned
# to a smaller *student* as a dense reward, one number per token, and only then run sparse-reward RL on the student.
#
# ```
# stage 0  base_teacher, base_student   pretrained models (shipped with the package on the tiny preset)
# stage 1  teacher_grpo                 sparse-reward GRPO on the teacher, labeled half 1H        (notebook 01)
# stage 2a fkl_warmup                   forward KL KL(pT||pS) on the teacher's rollouts, no labels (notebook 02a)
# stage 2b opd                          on-policy distillation: the student samples, the teacher
#                                       scores every token, no labels                              (notebook 02b)
# stage 3  student_grpo                 sparse-reward GRPO on the student, held-out half 2H       (notebook 03)
# baseline cold_grpo                    GRPO on the base student with the whole labeled pool      (notebook 04)
# ```
#
# The arms these stages make are the rows of the paper's Table 2 (`s2dlab.workflow.arms.ARMS`; notebook 04 compares
# them): `bridge_1h_stage3` is the four-stage workflow, `bridge_1h` the same without stage 3, `cold_grpo` the
# baseline.
#
# This notebook trains nothing. It looks at the pieces: the task (and the mistakes its pretraining corpus is
# written with), the grader, the two tiny models, sampling, and a first look at a dense reward.
# The first cell picks the preset and the run folder that notebooks 00-05 share.

# %%
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display

from s2dlab import tutorial

# The settings of `s2dlab run` (s2dlab/core/config.py), plus these overrides. Every notebook of one run folder must
# use the same list; to experiment, put e.g. "opd.loss=sampled_token" here and pick a new RUN_DIR (WORKSHOP.md).
NOTEBOOK_OVERRIDES = {"tiny": [], "qwen3_paper": []}
# Offline settings (tiny preset), config, run folder, seeds. On a slow or busy laptop pass threads=1 (WORKSHOP.md,
# "Slow laptops").
lab = tutorial.setup(PRESET, RUN_DIR, overrides=NOTEBOOK_OVERRIDES[PRESET])
cfg, run = lab.cfg, lab.run
K, EVAL_SET = lab.k, lab.eval_set

from s2dlab.core import (
    data,  # after setup, which sets HF_HUB_OFFLINE before transformers is imported
)
from s2dlab.views import viz
from s2dlab.workflow import summary
from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

# %% [markdown]
# ## The task
#
# On the tiny preset the task is synthetic arithmetic: `task.n_terms` numbers of `task.digits` digits joined by `+`
# or `-` (by default four one-digit numbers, such as `7+3-5+8=?`). Each problem has a final answer (an integer) and
# a gold worked solution, one operation per line, ending in `\boxed{...}`. The splits are disjoint and fixed by
# `task.data_seed` (`s2dlab.core.data`): the pretraining **corpus** of the base models, the labeled **pool** cut into
# halves **1H** (teacher RL and the bridge) and **2H** (stage 3), a **val** split where tuning is read and an
# **eval** split that is only reported. The RL stages see final answers only.
#
# On `qwen3_paper` the pool is DAPO-Math-17k (final answers only: no corpus, no worked solutions) and the eval sets
# are MATH-500, AIME 2024 and AIME 2025 (`eval.sets`), so the cell shows the first eval set's first problem.

# %%
splits = data.task_splits(cfg)
print({name: len(records) for name, records in splits.items()})
record = splits["eval"][0] if "eval" in splits else data.eval_sets(cfg)[EVAL_SET][0]  # real data: eval.sets
print("prompt:  ", record["prompt"])
print("answer:  ", record["answer"])
print("solution:")
print(record.get("solution") or "(none: this set gives final answers only)")

# %% [markdown]
# ## Slips: what the base models learned from
#
# The corpus the base models are pretrained on is not clean. Every step where a schoolchild's slip is possible is
# written wrong with probability `task.slip_rate`, and the solution then carries on correctly from the wrong value
# (`s2dlab.core.tasks.arithmetic`):
#
# | kind | when | example |
# |---|---|---|
# | carry | `v + b` crosses a ten | `7+8=5` (the carry is dropped) |
# | borrow | `v - b` borrows a ten | `13-5=18` (the borrow is dropped) |
# | sign | `v - b` goes below 0 | `3-5=2` (the minus sign is dropped) |
#
# A model that learns this corpus well puts about `slip_rate` of its probability on the slip at each such step. Its
# likelihood is then *not reward-shaped*: it finds a slipped solution nearly as likely as a correct one. That is
# what stage 1 (sparse-reward RL on the teacher) is there to remove, and what condition C1 measures (notebook 01).
#
# The next cell reads the corpus back, step by step, and counts how often a slip-possible step was written wrong.
# `slip_rate` is a rate per step, not per solution: a solution with no carry, borrow or sign step cannot slip, one
# with two such steps slips more often. (The slips are the arithmetic task's: on real data these cells say so and
# skip.)

# %%
import re

from s2dlab.core.tasks.arithmetic import first_divergence, slip_of, solve

STEP = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)")  # one line of a worked solution: v op b = result
slip_counts = None  # the table of this cell (None where the task has no slips)
if tutorial.arithmetic_only(cfg, "The slip cells"):
    possible, slipped = {}, {}
    for rec in splits["corpus"]:
        for line in rec["solution"].splitlines():
            m = STEP.fullmatch(line)
            if not m:
                continue
            v, op, b, written = int(m[1]), m[2], int(m[3]), int(m[4])
            slip = slip_of(v, op, b)
            if slip is not None:
                possible[slip[0]] = possible.get(slip[0], 0) + 1
                right = v + b if op == "+" else v - b if op == "-" else v * b
                slipped[slip[0]] = slipped.get(slip[0], 0) + (written != right)
    with_slip = np.mean([bool(rec.get("slipped")) for rec in splits["corpus"]])
    print(f"task.slip_rate = {cfg.task.slip_rate} per slip-possible step; {with_slip:.1%} of the "
          f"{len(splits['corpus']):,} corpus solutions carry at least one slip (a solution has 0 to 3 such steps)")
    slip_counts = pd.DataFrame({"slip-possible steps": possible, "written wrong": slipped,
                                "share written wrong": {k: slipped[k] / possible[k] for k in possible}})
slip_counts

# %% [markdown]
# One slipped corpus solution beside the gold solution of the same problem, and the first character where they
# part (`first_divergence`, which later notebooks use to find the first wrong character of a wrong rollout):

# %%
if tutorial.arithmetic_only(cfg, "A slipped corpus solution beside its gold solution"):
    rec = next(r for r in splits["corpus"] if r.get("slipped"))
    numbers = [int(x) for x in re.findall(r"\d+", rec["prompt"])]
    operators = re.findall(r"(?<=\d)[+\-*]", rec["prompt"])
    value, steps = solve(numbers, operators)
    gold = "\n".join(steps + [f"\\boxed{{{value}}}"])
    k = first_divergence(rec["solution"], gold)
    print(rec["prompt"], " answer", rec["answer"])
    print(pd.DataFrame({"corpus (with a slip)": rec["solution"].splitlines(), "gold": gold.splitlines()}).to_string())
    print(f"first wrong character: index {k}, {rec['solution'][k]!r} where the gold solution has {gold[k]!r}")

# %% [markdown]
# ### Your turn 00.1: which steps can slip?
#
# For each step below, write `None` when no slip is possible, else the pair `(kind, wrong result)`, with kind one of
# `"carry"`, `"borrow"`, `"sign"` (a list `["carry", 5]` works too). Use the table above, not `slip_of`: the
# check works the rule out itself.

# %%
# Your turn 00.1: fill in the dictionary (replace each ... with None or a (kind, wrong result) pair).
my_slips = {
    (7, "+", 8): ...,
    (13, "-", 5): ...,
    (3, "-", 5): ...,
    (6, "+", 2): ...,
    (15, "-", 4): ...,
}

# %%
# Check 00.1 (s2dlab.exercises: the check works the rule out itself and says which step is wrong)
from s2dlab import exercises

exercises.check_00_1(my_slips)

# %% [markdown]
# ## Grading: the sparse reward
#
# A completion earns reward 1 when the content of its **last** `\boxed{}` verifies against the answer
# (math-verify), else 0. On the arithmetic task the box must hold a plain integer, so copying the question into the
# box earns nothing even though it has the right value.

# %%
grade = data.grade_fn(cfg)
examples = {
    "worked solution": record["solution"],
    "answer only": f"\\boxed{{{record['answer']}}}",
    "off by one": f"\\boxed{{{int(record['answer']) + 1}}}" if PRESET == "tiny" else "\\boxed{0}",
    "question in the box": f"\\boxed{{{record['prompt'].rstrip('=?')}}}",
    "no box": record["answer"],
}
pd.DataFrame({"completion": list(examples.values()),
              "reward": [float(grade(c, record["answer"])) for c in examples.values()]}, index=list(examples))

# %% [markdown]
# ## The models
#
# Stage 0 gives the run its starting teacher and student. On the tiny preset these are small Qwen3-architecture
# models with a character-level tokenizer, pretrained from scratch on the corpus above and shipped with the
# package, so this step only copies them into the run folder (and evaluates them). On `qwen3_paper` it points at
# the pretrained checkpoints. Teacher and student must share a tokenizer: a dense reward compares `log pT(y_t)`
# with `log pS(y_t)` for the same token id.

# %%
# Stage 0, evaluated: `lab.build` makes the calls of `s2dlab run`; stages already evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student")):
    lab.build("base_student")
print("finished stages:", lab.finished())

from s2dlab.core.models import check_compatible, count_parameters

tok = tokenizer_for(cfg, run)
teacher = load_stage_model(cfg, run, "base_teacher", tok).eval()
student = load_stage_model(cfg, run, "base_student", tok).eval()
check_compatible(tok, tok, teacher, student)  # raises if they could not be compared token by token
for name, model in (("teacher", teacher), ("student", student)):
    c = model.config
    print(f"{name}: {count_parameters(model):,} parameters, {c.num_hidden_layers} layers, hidden {c.hidden_size}")
print(f"shared tokenizer: {len(tok)} tokens")

# %% [markdown]
# What the model actually reads is the problem inside the chat template; generation continues after
# `<|im_start|>assistant`:

# %%
from s2dlab.core.generation import format_prompt, sample

print(format_prompt(tok, record["prompt"], cfg.task.prompt_suffix, data.chat_kwargs(cfg)))

# %% [markdown]
# ## Sampling
#
# `s2dlab.core.generation.sample` draws `n` completions per problem and keeps the token ids and the sampler's
# log-probabilities. Temperature 1 with no top-k or top-p is the model's own distribution, which is what
# on-policy training needs; temperature 0 is greedy decoding.

# %%
problems = data.eval_sets(cfg)[EVAL_SET]
answers = {p["id"]: p["answer"] for p in problems}
gen = dict(max_new_tokens=cfg.generation.max_new_tokens, prompt_suffix=cfg.task.prompt_suffix,
           chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
rollouts = sample(student, tok, problems[:3], n=3, temperature=1.0, seed=0, **gen)
pd.DataFrame([{"problem": r.prompt, "sample": r.sample_idx, "completion": r.completion,
               "reward": float(grade(r.completion, answers[r.prompt_id]))} for r in rollouts])

# %% [markdown]
# **Predict first.** Every stage is evaluated when it finishes (`<stage>/eval.json`; `summary.json` holds the
# numbers with intervals). Two accuracies are reported: avg@k, the mean correctness of k samples at temperature 1
# (the paper's avg@16), and greedy. For the base *student*, which do you expect to be higher, and why? Write your
# guess in the next cell before running the one after it, which scores it.

# %%
# Predict 00.a: "greedy" or "avg@k"?
my_guess_00a = ...

# %%
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary
student_acc = S["stages"]["base_student"]
higher = None if student_acc["greedy"] is None else \
    "greedy" if student_acc["greedy"] > student_acc["accuracy"] else "avg@k"  # None: greedy not measured
exercises.reveal("Predict 00.a", my_guess_00a, higher, choices=["greedy", "avg@k"], missing=viz.GREEDY_NOT_MEASURED)
rows = {}
for stage in ("base_teacher", "base_student"):
    st = S["stages"][stage]
    lo, hi = st["interval"]["ci"]
    rows[stage] = {f"avg@{K} % [95% CI]": f"{100 * st['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                   "greedy %": viz.greedy_text(st["greedy"]), f"pass@{K} %": f"{100 * st[f'pass@{K}']:.1f}"}
pd.DataFrame(rows).T

# %% [markdown]
# ### Change X, predict, observe: the sampling temperature
#
# avg@k samples at temperature 1, the model's own distribution. Lower the temperature and sampling moves toward
# greedy decoding. Set `TEMPERATURE` below (try 0.5), write what you expect the base student's avg@k to be at that
# temperature (a percentage), then run the cell after it: it samples the first 64 eval problems 4 times each (a few
# seconds) and prints avg@4 at T = 1 and at your temperature on the same problems.

# %%
TEMPERATURE = 0.5  # X: change it, e.g. 0.2, 0.5, 1.5
# Predict 00.b: the base student's avg@4 (%) on these 64 problems at TEMPERATURE
my_guess_00b = ...

# %%
subset = problems[:64]
acc_at = {}
for T in (1.0, TEMPERATURE):
    draws = sample(student, tok, subset, n=4, temperature=T, seed=0, **gen)
    acc_at[T] = 100 * np.mean([grade(r.completion, answers[r.prompt_id]) for r in draws])
print(f"avg@4 on {len(subset)} eval problems: T = 1.0: {acc_at[1.0]:.1f}%, T = {TEMPERATURE}: "
      f"{acc_at[TEMPERATURE]:.1f}%; greedy on all {len(problems)}: {viz.greedy_text(student_acc['greedy'], '%')}")
exercises.reveal("Predict 00.b", my_guess_00b, acc_at[TEMPERATURE], abs_tol=5, unit=" %")

# %% [markdown]
# A slip is a small share of the mass at a few steps; temperature below 1 sharpens every step's distribution toward
# its most likely character, so the slips fade and the accuracy climbs toward greedy. Temperature above 1 does the
# opposite. Training samples at T = 1 on purpose: on-policy methods need the model's own distribution.
#
# pass@k is the share of problems with at least one correct sample among k. With n samples of which c are correct,
# the unbiased estimate for k ≤ n is `1 - C(n-c, k) / C(n, k)` (Chen et al. 2021; `s2dlab.workflow.evaluate.pass_at_k`).
#
# ### Your turn 00.2: pass@k from c of n
#
# A problem got n = 4 samples, c = 1 of them correct. What are its pass@1 and pass@2? (Hint: pass@2 is one minus
# the chance that two samples drawn without replacement from the four are both wrong.)

# %%
# Your turn 00.2: replace ... with numbers (fractions such as 3/4 are fine).
my_pass_at_1 = ...
my_pass_at_2 = ...

# %%
# Check 00.2
from s2dlab import exercises

exercises.check_00_2(my_pass_at_1, my_pass_at_2)

# %% [markdown]
# ## A first dense reward
#
# The sparse reward gives a whole completion one bit. A teacher can instead score **every token** of a student's
# completion. For a student sample `y ~ pS(.|x)` the *implicit reward* of token `t` is
#
# $$r_t = \log p_T(y_t \mid x, y_{<t}) - \log p_S(y_t \mid x, y_{<t})$$
#
# positive where the teacher likes the student's token more than the student does, negative where it likes it
# less (docs/DESIGN.md, "Sign conventions"). `s2dlab.core.scoring.score_rollouts` computes it, with the per-token KLs and
# entropies, for any rollouts. Below: a *wrong* student completion coloured by its implicit reward under the base
# teacher, with the first character where it departs from the gold solution. Hover a token for the numbers and
# both models' top alternatives.

# %%
from s2dlab.core.scoring import score_rollouts

more = sample(student, tok, problems[:24], n=2, temperature=1.0, seed=1, **gen)
scored = score_rollouts(student, teacher, tok, more, grade_fn=grade, answers=answers)
wrong = [r for r in scored if r["correct"] is False]
row = wrong[0] if wrong else scored[0]
print(f"{row['prompt']}  ->  reward {row['reward']:.0f}, summed implicit reward {row['sum_implicit_reward']:+.2f}")
if tutorial.arithmetic_only(cfg, "The first wrong character"):
    gold_solution = next(p["solution"] for p in problems if p["id"] == row["prompt_id"])
    first = first_divergence(row["completion"], gold_solution)
    print(f"first character that departs from the gold solution: index {first}"
          + (f" ({row['completion'][first]!r})" if first is not None and first < len(row["completion"]) else ""))
display(HTML(viz.rollout_heatmap_html(row, id_to_text=viz.vocab_from_rows(pd.DataFrame(scored)))))

# %%
viz.per_token_figure(row)

# %% [markdown]
# Look at where the red sits relative to the first wrong character. Whether numbers like these can be trusted as a
# reward, that is whether they tell right from wrong, is condition C1, measured in notebook 01 on a fixed set of
# rollouts, and drawn position by position in notebook 05.
#
# **Discussion.** (Answers in `ANSWERS.md`.) (a) Why does the grader refuse `\boxed{3+4}` on this task? (b) The
# corpus has slips at `task.slip_rate`; what does that do to a model's likelihood of a wrong solution, compared
# with a clean corpus?
#
# **Next:** `01_teacher_grpo` trains the teacher with the sparse reward, starting with one GRPO step by hand.
