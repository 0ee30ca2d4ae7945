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
# # 03 · Stage 3: student GRPO on the held-out labels
#
# The last stage of the workflow is sparse-reward GRPO again (the update of notebook 01), now on the **student**
# that OPD handed off, with the **held-out half 2H** of the labeled pool, which neither the teacher nor the bridge
# ever saw. The paper's prediction P3 is that new labels are what stage 3 needs: the same number of steps on 1H
# again (the replay control, arm `bridge_1h_replay`, in `s2dlab run --ablations`) should gain little.
#
# Two things to look at: whether stage 3 adds anything measurable on top of the bridge (with an interval, not by
# eye), and why GRPO has more to work with on a distilled student than on the base one: GRPO learns only from
# groups whose completions disagree.

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
# The splits are disjoint: no problem text is shared between the halves of the labeled pool, the validation split
# and the eval split.

# %%
splits = data.task_splits(cfg)
texts = {name: {r["prompt"] for r in splits[name]} for name in ("1h", "2h", "val")}
texts["eval"] = {r["prompt"] for r in data.eval_sets(cfg)[EVAL_SET]}
print({name: len(t) for name, t in texts.items()})
names = list(texts)
overlaps = {f"{a} & {b}": len(texts[a] & texts[b]) for i, a in enumerate(names) for b in names[i + 1:]}
print("shared problem texts:", overlaps)
assert not any(overlaps.values())

# %%
# Stages 0-2b (if missing) and student GRPO, each evaluated: `lab.build` makes the calls of `s2dlab run`; stages
# already evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd",
                                     "student_grpo")):
    lab.build("student_grpo")
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary

# %% [markdown]
# ## Curves
#
# `reward` is the student's training accuracy at T = 1 on 2H; `frac_reward_zero_std` the share of dead groups
# (all right or all wrong); the probe samples the student on 16 fixed eval problems and scores its rollouts with
# the RL teacher, so `probe/mean_reverse_kl` shows whether RL pulls the student away from the teacher (the teacher
# plays no part in this stage's update).

# %%
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "probe/accuracy", "probe/mean_reverse_kl"],
                        stages=["student_grpo"])

# %% [markdown]
# ## Dead groups
#
# A group of G completions of one problem, each right with probability p, is dead when all are right or all are
# wrong: probability `p^G + (1-p)^G`.
#
# **Predict first.** With G = `student_grpo.num_generations` and the student's training accuracy at the start of
# stage 3 (printed below), will the logged share of dead groups be "higher", "about the same" (within 0.02) or
# "lower" than that formula with the mean accuracy plugged in? Why might they differ?

# %%
# Predict 03.a: "higher", "about the same" or "lower"
my_guess_03a = ...

# %%
m = pd.DataFrame(run.metrics("student_grpo")).dropna(subset=["reward"])
first = m[m["step"] <= 10]
G = cfg.student_grpo.num_generations
p_bar = first["reward"].mean()
print(f"first {len(first)} steps of student_grpo: mean training reward p = {p_bar:.3f}, G = {G}")

# %% [markdown]
# ### Your turn 03.1: the share of dead groups
#
# If every completion were right with probability `p = p_bar`, independently, what share of groups of `G` would be
# all right, what share all wrong, and what share dead? Use `p_bar` and `G` from the cell above (or p as printed).

# %%
# Your turn 03.1: three numbers.
my_all_right = ...
my_all_wrong = ...
my_dead_share = ...

# %%
# Check 03.1
from s2dlab import exercises

exercises.check_03_1(my_all_right, my_all_wrong, my_dead_share, p_bar, G)

# %%
formula, logged = p_bar ** G + (1 - p_bar) ** G, first["frac_reward_zero_std"].mean()
print(f"TRL logged frac_reward_zero_std {logged:.3f} over the same steps, against {formula:.3f} from the formula")
exercises.reveal("Predict 03.a", my_guess_03a, "about the same" if abs(logged - formula) <= 0.02 else
                 "higher" if logged > formula else "lower", choices=["higher", "about the same", "lower"])

# %% [markdown]
# The formula assumes every problem is equally hard. It is not: some problems the student always solves, some
# never, and `p^G + (1-p)^G` is convex in p, so averaging it over problems of varying p gives *more* dead groups
# than plugging in the average p (Jensen's inequality). The eval split shows the same effect with its own k samples
# per problem: the share of eval problems whose k samples all agree, against the formula at the mean accuracy.

# %%
for stage in ("base_student", "opd", "student_grpo"):
    ev = run.eval(stage)["sets"][EVAL_SET]
    counts = np.array(list(ev["per_problem"].values()))
    k = ev["k"]
    p_eval = counts.mean() / k
    print(f"{stage:<14} avg@{k} {p_eval:.3f}: eval problems with all {k} samples alike {np.mean((counts == 0) | (counts == k)):.3f}, "
          f"formula at the mean {p_eval ** k + (1 - p_eval) ** k:.3f}; all wrong {np.mean(counts == 0):.3f}, "
          f"all right {np.mean(counts == k):.3f}")

# %% [markdown]
# ### Change X, predict, observe: the group size
#
# More completions per group make a dead group less likely, at the cost of more sampling per step. Set `G_X`,
# predict the share of dead groups the student that starts stage 3 (the OPD student) would have on 48 problems of
# 2H at that group size, then run: the cell samples 16 completions for each problem once (seconds) and counts, for
# the first `G_X` of them, the groups that are all right or all wrong.

# %%
G_X = 2  # X: try 2, 4, 16 (at most 16)
# Predict 03.b: the share of dead groups (0 to 1) at G = G_X
my_guess_03b = ...

# %%
from s2dlab.core.generation import sample

tok = tokenizer_for(cfg, run)
opd_student = load_stage_model(cfg, run, "opd", tok).eval()
problems_2h = data.labeled(cfg, "2h")[:48]
draws = sample(opd_student, tok, problems_2h, n=16, max_new_tokens=cfg.generation.max_new_tokens, temperature=1.0,
               seed=0, prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
grade = data.grade_fn(cfg)
answers_2h = {r["id"]: r["answer"] for r in problems_2h}
right_PN = np.array([[grade(d.completion, answers_2h[r["id"]]) for d in draws if d.prompt_id == r["id"]]
                     for r in problems_2h], dtype=float)  # [problems, 16]
dead_at = {g: float(np.mean((right_PN[:, :g].sum(1) == 0) | (right_PN[:, :g].sum(1) == g))) for g in (2, 4, 8, 16)}
dead_at[G_X] = float(np.mean((right_PN[:, :G_X].sum(1) == 0) | (right_PN[:, :G_X].sum(1) == G_X)))
p_x = right_PN.mean()
print(f"accuracy of the OPD student on these problems {p_x:.3f}; dead groups at G = "
      + ", ".join(f"{g}: {v:.2f}" for g, v in sorted(dead_at.items()))
      + f"; the formula at G = {G_X}: {p_x ** G_X + (1 - p_x) ** G_X:.2f}")
exercises.reveal("Predict 03.b", my_guess_03b, dead_at[G_X], abs_tol=0.1)

# %% [markdown]
# Notice *which* groups are dead: for a weak student mostly all-wrong ones (no correct completion to learn from),
# for a strong student mostly all-right ones (nothing left to learn on that problem). Notebook 04 compares the two
# GRPO runs of the workflow, on the base student (cold GRPO) and on the distilled one (stage 3).
#
# ## The student along the workflow
#
# Accuracy on the eval split after each stage, with the 95% interval over problems (from the summary), and the RL
# teacher for reference:

# %%
path = ["base_student", "fkl_warmup", "opd", "student_grpo"]
acc = [100 * S["stages"][s]["accuracy"] for s in path]
ci = [S["stages"][s]["interval"]["ci"] for s in path]
fig = go.Figure(go.Bar(x=path, y=acc, name=f"avg@{K} (T=1)", marker_color="#2166ac",
                       error_y=dict(type="data", array=[100 * c[1] - a for c, a in zip(ci, acc)],
                                    arrayminus=[a - 100 * c[0] for c, a in zip(ci, acc)]),
                       text=[f"{a:.1f}" for a in acc], textposition="outside"))
greedy = [S["stages"][s]["greedy"] for s in path]  # None where the run did not measure it (eval.greedy=false)
if all(g is not None for g in greedy):
    fig.add_trace(go.Bar(x=path, y=[100 * g for g in greedy], name="greedy", marker_color="#92c5de"))
else:
    print(f"greedy accuracy: {viz.GREEDY_NOT_MEASURED}; the figure shows avg@{K} alone")
fig.add_hline(y=100 * S["stages"]["teacher_grpo"]["accuracy"], line_dash="dot",
              annotation_text=f"RL teacher avg@{K}", annotation_position="top left")
fig.update_layout(title="Student accuracy after each stage (95% intervals over problems)", yaxis_title="%",
                  barmode="group", template="plotly_white", height=380)
fig

# %% [markdown]
# Stage 3's gain over the bridge it started from is an arm comparison: `bridge_1h_stage3` (ends in `student_grpo`)
# against `bridge_1h` (ends in `opd`). The summary does not list that pair among the paper's predictions, so the
# next exercise computes the ingredient every interval of the summary is made of.
#
# ### Your turn 03.2: an accuracy interval by hand
#
# `eval.json` stores, per eval problem, how many of its k samples were correct. The summary's 95% interval for one
# seed is `mean ± 1.96 · sd / sqrt(P)` over the P per-problem scores `correct / k` (sd with Bessel's correction).
# Compute the interval of `student_grpo`.

# %%
per_problem = run.eval("student_grpo")["sets"][EVAL_SET]["per_problem"]  # problem id -> correct samples out of k
k = run.eval("student_grpo")["sets"][EVAL_SET]["k"]
print(f"{len(per_problem)} eval problems, k = {k}; the first few: {dict(list(per_problem.items())[:4])}")

# %%
# Your turn 03.2: the interval as [low, high], fractions in [0, 1].
my_interval = ...

# %%
# Check 03.2
from s2dlab import exercises

if exercises.check_03_2(my_interval, per_problem, k) == "correct":
    want = S["stages"]["student_grpo"]["interval"]["ci"]
    print(f"summary.json says [{want[0]:.4f}, {want[1]:.4f}] (s2dlab.core.diagnostics.accuracy_interval)")

# %% [markdown]
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. Two students with the same mean training reward can have very different shares of dead groups. What about the
#    problems makes the difference, and what does it do to GRPO's signal?
# 2. Intervals of two arms that overlap do not by themselves mean "no difference". Why is the paired comparison
#    (same problems, same seed) the right test, and where does the summary use it?
# 3. The paper's P3: why would stage 3 on *new* labels beat the same steps on the labels the bridge already used?
#
# **Next:** `04_bridge_vs_cold_grpo`: the same labeled pool given to GRPO straight away, every arm's budget, and
# the ablations.
