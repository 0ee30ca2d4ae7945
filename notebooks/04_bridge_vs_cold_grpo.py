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
# # 04 · The workflow against cold GRPO: what each arm spends, and what it buys
#
# The baseline is the obvious alternative: give the base student the labeled pool and run GRPO on it directly,
# **cold GRPO** (`cold_grpo`: the whole pool, both halves, for at least the workflow's student steps). A fair
# comparison says what every arm spends, not only what it scores:
#
# - **labels**: distinct labeled problems (final answers) the arm used anywhere, teacher side included;
# - **student steps and sequences**: optimizer steps on the student and the sequences it trained on;
# - **teacher compute**: the teacher's own RL steps, and the sequences the teacher sampled (warmup) or scored (OPD)
#   for the student.
#
# The arms are the rows of the paper's Table 2 (`s2dlab.workflow.arms.ARMS`). `s2dlab run` (and notebooks 00-04) make
# three of them: `bridge_1h_stage3` (the four-stage workflow), `bridge_1h` (the same bridge without stage 3) and
# `cold_grpo`; this notebook adds a fourth, `bridge_raw_teacher`, the bridge built from the teacher *before*
# stage 1 (about a minute). `s2dlab run --ablations` adds the rest: the full bridge on the whole pool, the bridge from the raw
# teacher (P1), without the warmup or without OPD (P2), the replay control (P3), the SFT teacher, and `gold_sft`
# (a reference that uses gold worked solutions). Every number below is read from the run's `summary.json`.

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
from s2dlab.workflow import pipeline, summary

# %%
# The other ablation rows train ten more stages, several times this notebook's budget on a laptop: run them from
# a terminal instead (`s2dlab run --ablations --out <this run folder>`, which reuses every finished stage), or set
# True here. Arms already in the run folder are shown either way.
RUN_ABLATIONS = False

# %%
# Every workflow stage (if missing), the cold-GRPO baseline and the raw teacher's bridge (its warmup and OPD from the
# base teacher), each evaluated: `lab.build` and `lab.build_arm` make the calls of `s2dlab run`; stages already
# evaluated are left as they are.
if any(run.eval(s.name) is None for s in lab.steps):
    lab.build("cold_grpo")
if any(run.eval(s) is None for s in ("raw_teacher.fkl_warmup", "raw_teacher.opd")):
    lab.build_arm("bridge_raw_teacher")
if RUN_ABLATIONS:
    for step in pipeline.plan(cfg, ablations=True)[0]:
        if run.eval(step.name) is None:
            pipeline.run_stage(cfg, run, step)
            pipeline.after_stage(cfg, run, step.name)
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary

# %% [markdown]
# ## C1 failing on purpose: the raw teacher's bridge
#
# Condition C1 asks that the teacher be reward-shaped: that its likelihood prefer right over wrong. Notebook 01
# measured it: the base teacher, pretrained on a corpus with slips, still puts a share of its probability on them,
# and stage 1 took most of it away. The paper's P1 predicts what happens when the bridge is built from the teacher
# *before* stage 1: it does not beat cold GRPO. This notebook built that bridge above (`bridge_raw_teacher`: the warmup
# and OPD with the base teacher in place of the RL teacher, the same steps and prompts).
#
# **Predict first.** Where will the raw teacher's bridge land: "above cold GRPO", "within noise" of it, or "below
# cold GRPO" (the paired interval over the eval problems decides)?

# %%
# Predict 04.c: "above cold GRPO", "within noise" or "below cold GRPO"
my_guess_04c = ...

# %%
from s2dlab import exercises

side = ["base_teacher", "raw_teacher.opd", "cold_grpo", "base_student", "teacher_grpo", "opd"]
names = {"base_teacher": "raw teacher", "raw_teacher.fkl_warmup": "its warmup", "raw_teacher.opd":
         "its bridge, bridge_raw_teacher", "cold_grpo": "cold GRPO", "base_student": "base student",
         "teacher_grpo": "RL teacher", "opd": "the RL teacher's bridge, bridge_1h"}
acc_rows = {}
for st in side:
    lo, hi = S["stages"][st]["interval"]["ci"]
    acc_rows[names[st]] = {f"avg@{K} % [95% CI]": f"{100 * S['stages'][st]['accuracy']:.1f} [{100 * lo:.1f}, "
                                                  f"{100 * hi:.1f}]", "greedy %": viz.greedy_text(S["stages"][st]["greedy"])}
raw_counts = run.eval("raw_teacher.opd")["sets"][EVAL_SET]["per_problem"]  # problem id -> correct of k
cold_counts = run.eval("cold_grpo")["sets"][EVAL_SET]["per_problem"]
k_eval = run.eval("cold_grpo")["sets"][EVAL_SET]["k"]
d_raw = np.array([(raw_counts[p] - cold_counts[p]) / k_eval for p in cold_counts])
half_raw = 1.96 * d_raw.std(ddof=1) / np.sqrt(len(d_raw))
print(f"bridge_raw_teacher minus cold_grpo: {100 * d_raw.mean():+.1f} points [{100 * (d_raw.mean() - half_raw):+.1f}, "
      f"{100 * (d_raw.mean() + half_raw):+.1f}] (paired over {len(d_raw)} problems)")
exercises.reveal("Predict 04.c", my_guess_04c, "above cold GRPO" if d_raw.mean() - half_raw > 0 else
                 "below cold GRPO" if d_raw.mean() + half_raw < 0 else "within noise",
                 choices=["above cold GRPO", "within noise", "below cold GRPO"])
pd.DataFrame(acc_rows).T

# %% [markdown]
# Why, in the slips: the same table as notebook 01's, at every slip-possible step of the eval problems' gold
# solutions, now with the raw teacher's bridge and cold GRPO beside the teachers. Read the column
# `p(slip) / (p(right) + p(slip))` down the rows.

# %%
slip_shares = None  # the table of this cell (None where the task has no slips)
if tutorial.arithmetic_only(cfg, "The slip table"):
    slips = tutorial.slip_table(cfg, run, ["base_teacher", "raw_teacher.fkl_warmup", "raw_teacher.opd",
                                           "base_student", "cold_grpo", "teacher_grpo", "opd"])
    share = slips["p(slip) / (p(right) + p(slip))"]
    print(f"{slips.attrs['steps']} slip-possible steps; task.slip_rate = {cfg.task.slip_rate}. The slip's share: raw "
          f"teacher {share['base_teacher']:.2f}, after its warmup {share['raw_teacher.fkl_warmup']:.2f}, its bridge "
          f"{share['raw_teacher.opd']:.2f}; base student {share['base_student']:.2f}, cold GRPO {share['cold_grpo']:.2f}")
    slips.index = [f"{s} ({names[s]})" for s in slips.index]
    slip_shares = slips.round(3)
slip_shares

# %% [markdown]
# Distillation copies the teacher: the warmup pulls the student's next-character distribution onto the raw
# teacher's, slips included, so after it the student puts about the teacher's share of its mass on the slips. OPD
# lowers that share only part of the way, and not at every kind of step (compare the columns per kind): its signal
# is the same teacher's likelihood, which still gives the slips a large share. Cold GRPO never sees a teacher. Its
# reward is 0 for every completion that slipped, so each slip it samples is pushed down: its slip share falls far
# below that of the base student it started from. The RL teacher had its slips removed by that same kind of reward
# in stage 1, and its bridge inherits the result. That is C1: the dense reward is only as good as the teacher's
# likelihood, and stage 1 is what makes it reward-shaped.

# %% [markdown]
# ## Every arm, with what it spent
#
# One row per arm in the paper's order: avg@k with its 95% interval (over problems; over problems and seeds for a
# folder of seeds), greedy accuracy, and the budget columns. Read the labels column before the accuracy column.

# %%
viz.arms_frame(S)

# %%
from s2dlab.core.runs import stage_sort_key

for name, arm in S["arms"].items():  # which labeled sets each arm drew on, and the stages it is made of
    print(f"{name:<20} labels {arm['labels']:>5} from {', '.join(arm.get('label_sets') or []) or 'none':<8} "
          f"stages {', '.join(sorted(arm.get('stages') or [], key=stage_sort_key))}")
viz.arms_figure(S)

# %% [markdown]
# The paper's predictions, as paired differences (same eval problems, same seed) with their 95% intervals. A
# prediction "holds" when the whole interval sits on the side the paper predicts; "within noise" when it holds 0.
# With only the default arms, one prediction can be judged; the ablations add the others.

# %%
viz.claims_frame(S)

# %% [markdown]
# ### Your turn 04.1: the paired difference by hand
#
# The first prediction compares `bridge_1h_stage3` with `cold_grpo` on the same eval problems. Per problem, the
# difference of the two arms' scores (`correct / k`); the estimate is the mean difference and, for one seed, its
# 95% interval is `mean ± 1.96 · sd / sqrt(P)` (sd with Bessel's correction). Compute both, in fractions.

# %%
a_counts = run.eval(S["arms"]["bridge_1h_stage3"]["stage"])["sets"][EVAL_SET]["per_problem"]  # id -> correct of k
b_counts = run.eval(S["arms"]["cold_grpo"]["stage"])["sets"][EVAL_SET]["per_problem"]
k = run.eval("cold_grpo")["sets"][EVAL_SET]["k"]
print(f"{len(a_counts)} problems, k = {k}")

# %%
# Your turn 04.1: the mean difference and its interval [low, high], fractions.
my_difference = ...
my_difference_interval = ...

# %%
# Check 04.1
from s2dlab import exercises

if exercises.check_04_1(my_difference, my_difference_interval, a_counts, b_counts, k) == "correct":
    claim = next(c for c in S["claims"] if c["a"] == "bridge_1h_stage3" and c["b"] == "cold_grpo")
    print(f"the summary's '{claim['claim']}': {100 * claim['difference']:+.1f} points [{100 * claim['ci'][0]:+.1f}, "
          f"{100 * claim['ci'][1]:+.1f}] ({claim['status']})")

# %% [markdown]
# ### Change X, predict, observe: the number of eval problems
#
# The interval of a paired difference narrows as more problems are evaluated. Set `N_X`, predict the half-width
# (in points) of the same difference's 95% interval had only `N_X` of the eval problems been evaluated, then run:
# it draws 200 random subsets of `N_X` problems and prints the median half-width.

# %%
N_X = 75  # X: try 30, 75, 150
# Predict 04.a: the half-width of the interval, in points, with N_X problems
my_guess_04a = ...

# %%
d_all = np.array([(a_counts[p] - b_counts[p]) / k for p in a_counts])
rng_x = np.random.default_rng(0)
halves = [100 * 1.96 * d.std(ddof=1) / np.sqrt(len(d))
          for d in (rng_x.choice(d_all, min(N_X, len(d_all)), replace=False) for _ in range(200))]
full_half = 100 * 1.96 * d_all.std(ddof=1) / np.sqrt(len(d_all))
print(f"half-width with all {len(d_all)} problems: {full_half:.1f} points; with {N_X}: median {np.median(halves):.1f} "
      f"(5-95% over subsets {np.percentile(halves, 5):.1f}-{np.percentile(halves, 95):.1f}); 1/sqrt(P) scaling "
      f"predicts {full_half * np.sqrt(len(d_all) / N_X):.1f}")
exercises.reveal("Predict 04.a", my_guess_04a, float(np.median(halves)), rel=0.2, unit=" points")

# %% [markdown]
# ### Your turn 04.2: a budget by hand
#
# How many sequences did the student of `bridge_1h_stage3` train on, over its three stages? The warmup takes
# `fkl_warmup.batch_size` sequences per step, OPD `opd.batch_size` rollouts per step, and stage 3
# `prompts_per_step x num_generations` completions per step (all in `cfg`).

# %%
# Your turn 04.2: one whole number, from cfg.
my_student_sequences = ...

# %%
# Check 04.2
from s2dlab import exercises

if exercises.check_04_2(my_student_sequences, cfg) == "correct":
    print(f"the summary (from the stages' stage.json): {S['arms']['bridge_1h_stage3']['student_sequences']:,}; "
          f"cold_grpo trained on {S['arms']['cold_grpo']['student_sequences']:,}")

# %% [markdown]
# ## Accuracy against student steps, on one axis
#
# Each arm's student stages strung end to end: the bridge's warmup, OPD and stage 3, and cold GRPO's single stage,
# all from the base student at step 0. The markers are the evaluations at the end of each stage (eval split, 95%
# intervals over problems, from the summary); the thin lines are the probe accuracy during each stage (16 fixed
# problems x 4 samples: noisy, for the shape only).

# %%
colors = {"bridge_1h_stage3": "#b2182b", "bridge_1h": "#ef8a62", "cold_grpo": "#2166ac", "bridge": "#762a83",
          "bridge_raw_teacher": "#999999", "bridge_no_warmup": "#1b7837", "bridge_no_opd": "#5aae61"}
fig = go.Figure()
for name in [a for a in ("bridge_1h_stage3", "cold_grpo", "bridge", "bridge_raw_teacher") if a in S["arms"]]:
    chain, stage = [], S["arms"][name]["stage"]
    while stage and stage != "base_student":  # follow the student's `init` back to the base student
        chain.insert(0, stage)
        stage = S["stages"][stage]["init"]
    x, points = 0, [(0, "base_student")]
    for stage in chain:
        m = pd.DataFrame(run.metrics(stage))
        if "probe/accuracy" in m:
            probe = m.dropna(subset=["probe/accuracy"])
            fig.add_trace(go.Scatter(x=x + probe["step"], y=100 * probe["probe/accuracy"], mode="lines",
                                     line=dict(color=colors.get(name), width=1), opacity=0.4, showlegend=False,
                                     hovertemplate=f"{name} · {stage} probe %{{y:.0f}}%<extra></extra>"))
        x += S["stages"][stage]["steps"]
        points.append((x, stage))
    acc = [100 * S["stages"][s]["accuracy"] for _, s in points]
    ci = [S["stages"][s]["interval"]["ci"] for _, s in points]
    fig.add_trace(go.Scatter(x=[p[0] for p in points], y=acc, mode="lines+markers", name=name,
                             line=dict(color=colors.get(name), width=2.5), text=[s for _, s in points],
                             error_y=dict(type="data", array=[100 * c[1] - a for c, a in zip(ci, acc)],
                                          arrayminus=[a - 100 * c[0] for c, a in zip(ci, acc)]),
                             hovertemplate="%{text}: %{y:.1f}%<extra>" + name + "</extra>"))
fig.update_layout(title=f"Student avg@{K} against student optimizer steps (eval split; probe accuracy as thin lines)",
                  xaxis_title="student optimizer steps, stages end to end", yaxis_title=f"avg@{K} (%)",
                  template="plotly_white", height=420, legend=dict(orientation="h", y=-0.2))
fig

# %% [markdown]
# ## What cold GRPO has to work with
#
# Both GRPO runs use the same update and the same settings; they start from different students. **Predict first:**
# which run has more dead groups, "cold_grpo" or "student_grpo"? The cell after your guess prints the logged
# training reward and dead-group share, and, from the eval counts of the student each run started from, the share
# of problems on which every sample was wrong or every sample was right: are they the same kind of dead?

# %%
# Predict 04.b: "cold_grpo" or "student_grpo"
my_guess_04b = ...

# %%
m_cold = pd.DataFrame(run.metrics("cold_grpo")).dropna(subset=["reward"])
m_stage3 = pd.DataFrame(run.metrics("student_grpo")).dropna(subset=["reward"])
fig = go.Figure()
for label, m, color in (("cold_grpo (from the base student)", m_cold, "#2166ac"),
                        ("student_grpo (stage 3, from the OPD student)", m_stage3, "#b2182b")):
    for col, dash in (("reward", "solid"), ("frac_reward_zero_std", "dot")):
        fig.add_trace(go.Scatter(x=m["step"], y=m[col].rolling(10, min_periods=1).mean(), mode="lines",
                                 name=f"{label}: {col}", line=dict(color=color, dash=dash)))
fig.update_layout(title="Training reward (solid) and share of dead groups (dotted), rolling mean of 10 steps",
                  xaxis_title="GRPO step", template="plotly_white", height=380, legend=dict(orientation="h", y=-0.3))
for label, m, start in (("cold_grpo", m_cold, "base_student"), ("student_grpo", m_stage3, "opd")):
    counts = np.array(list(run.eval(start)["sets"][EVAL_SET]["per_problem"].values()))
    k = run.eval(start)["sets"][EVAL_SET]["k"]
    print(f"{label}: training reward {m['reward'].head(20).mean():.2f} (first 20 steps) -> "
          f"{m['reward'].tail(20).mean():.2f} (last 20); {1 - m['frac_reward_zero_std'].mean():.0%} of its groups "
          f"carried signal. Its start, {start}: all {k} eval samples wrong on {np.mean(counts == 0):.0%} of the "
          f"problems, all right on {np.mean(counts == k):.0%}")
exercises.reveal("Predict 04.b", my_guess_04b, "cold_grpo" if m_cold["frac_reward_zero_std"].mean() >
                 m_stage3["frac_reward_zero_std"].mean() else "student_grpo", choices=["cold_grpo", "student_grpo"])
vs = S["arms"]["cold_grpo"]["vs_base_student"]
print(f"cold_grpo minus the base student: {100 * vs['mean']:+.1f} points [{100 * vs['ci'][0]:+.1f}, "
      f"{100 * vs['ci'][1]:+.1f}] ({vs['verdict']})")
fig

# %% [markdown]
# Read the printout before reaching for the usual explanation ("GRPO starves on a weak student"). If most of cold
# GRPO's groups carried signal and it moved the base student by more than its interval (both printed above),
# starvation is not what holds it back. What it lacks is *information per sample*: one bit per completion, shared by
# every token, from a student that must stumble on right answers to learn from them. The bridge first gives the
# student the teacher's per-token judgement (the warmup and OPD use no labels), so stage 3 starts higher than cold
# GRPO gets in its whole budget (the figure above), and the dead groups it meets are the other kind: look at the
# all-right share of its start.

# %% [markdown]
# ## Your run among the five-seed reference results
#
# One seed is one draw of training noise. The reference results are five seeds of the same tiny preset, run with
# `s2dlab run --ablations --seeds 5 --out runs/table2` and committed as `docs/results/table2_5seeds.json` (the
# aggregate summary that `s2dlab.workflow.summary.write_aggregate` writes). Each arm below: every reference seed as a dot,
# the five-seed mean with its 95% interval (over problems and seeds), and this run as a diamond with its own
# interval.

# %%
import json
from pathlib import Path

import s2dlab

results_dir = Path(s2dlab.__file__).resolve().parents[1] / "docs" / "results"
ref_path = results_dir / "table2_5seeds.json"
if not ref_path.is_file():
    print(f"{ref_path} is not there yet: the five-seed reference results have not been committed to this checkout. "
          "Make them with `s2dlab run --ablations --seeds 5 --out runs/table2` (hours on a laptop) and read "
          "runs/table2/summary.json instead.")
else:
    ref = json.loads(ref_path.read_text())
    if ref.get("eval") != S.get("eval"):
        print(f"note: the reference was evaluated on {ref.get('eval')}, this run on {S.get('eval')}")
    arms = [a for a in viz.ordered_arms(ref) if a in S["arms"] or ref["arms"][a].get("interval")]
    fig = go.Figure()
    for j, a in enumerate(arms):  # one row per arm: the reference just above the row, this run just below
        iv = ref["arms"][a].get("interval") or {}
        seeds = iv.get("per_seed") or []
        fig.add_trace(go.Scatter(x=[100 * v for v in seeds], y=[j - 0.15] * len(seeds), mode="markers",
                                 name="reference: each seed", marker=dict(color="#999", size=7), showlegend=j == 0))
        if iv.get("mean") is not None:
            fig.add_trace(go.Scatter(x=[100 * iv["mean"]], y=[j - 0.15], mode="markers",
                                     name="reference: mean, 95% CI", showlegend=j == 0,
                                     marker=dict(color="#2166ac", size=12, symbol="line-ns-open", line_width=3),
                                     error_x=dict(type="data", array=[100 * (iv["ci"][1] - iv["mean"])],
                                                  arrayminus=[100 * (iv["mean"] - iv["ci"][0])])))
        mine = S["arms"].get(a) or {}
        if mine.get("accuracy") is not None:
            lo, hi = mine["interval"]["ci"]
            fig.add_trace(go.Scatter(x=[100 * mine["accuracy"]], y=[j + 0.15], mode="markers",
                                     name="this run, 95% CI", showlegend=j == 0,
                                     marker=dict(color="#b2182b", size=11, symbol="diamond"),
                                     error_x=dict(type="data", array=[100 * (hi - mine["accuracy"])],
                                                  arrayminus=[100 * (mine["accuracy"] - lo)])))
    fig.update_layout(title=f"avg@{K} by arm: this run against the {len(ref.get('seeds', []))}-seed reference",
                      xaxis_title=f"avg@{K} (%)", template="plotly_white", height=140 + 45 * len(arms),
                      yaxis=dict(tickvals=list(range(len(arms))), ticktext=arms, autorange="reversed"))
    display(fig)
    display(viz.claims_frame(ref))

# %% [markdown]
# ## Labels against accuracy
#
# How much does each arm gain per labeled problem? The label sweep reruns the arms with the labeled pool cut to
# `task.label_budget` problems (`docs/results/label_sweep.json`, written by `scripts/label_sweep.py`). The budget
# cuts the prompts of the label-free stages too (they are the pool's problems), so a small budget starves the
# bridge of prompts as well as of labels.

# %%
sweep_path = results_dir / "label_sweep.json"
if not sweep_path.is_file():
    print(f"{sweep_path} is not there yet: the label sweep has not been committed to this checkout.")
else:
    sweep = json.loads(sweep_path.read_text())  # scripts/label_sweep.py: one point per (labels, arm)
    points = [p for p in sweep.get("points", []) if p.get("mean") is not None]
    fig = go.Figure()
    for a in dict.fromkeys(p["arm"] for p in points):
        pts = sorted((p for p in points if p["arm"] == a), key=lambda p: p["labels"])
        fig.add_trace(go.Scatter(x=[p["labels"] for p in pts], y=[100 * p["mean"] for p in pts],
                                 mode="lines+markers", name=a, line=dict(color=colors.get(a)),
                                 error_y=dict(type="data", array=[100 * (p["ci"][1] - p["mean"]) for p in pts],
                                              arrayminus=[100 * (p["mean"] - p["ci"][0]) for p in pts])))
    fig.update_layout(title=f"avg@{K} against the labeled problems available ({sweep.get('seeds')} seeds each)",
                      xaxis_title="labeled problems (pool)", xaxis_type="log", yaxis_title=f"avg@{K} (%)",
                      template="plotly_white", height=400)
    if points:
        display(fig)
    else:
        print(f"{sweep_path}: no points in it")

# %% [markdown]
# ## What the paper reports at scale
#
# arXiv 2605.12483 (v4), Table 2, Qwen3-1.7B student, RL'd Qwen3-8B teacher, avg@16 (%), as the paper prints them
# (the rows mapped to this lab's arm names):

# %%
paper_table2 = pd.DataFrame(
    [("bridge", 79.3, 25.2, 20.2), ("bridge_raw_teacher", 71.5, 15.0, 10.6), ("bridge_no_warmup", 77.6, 23.0, 18.9),
     ("bridge_no_opd", 76.0, 22.4, 19.4), ("cold_grpo", 75.9, 19.8, 17.1), ("bridge_1h_stage3", 78.5, 23.7, 18.5),
     ("bridge_1h", 75.4, 22.0, 16.7), ("bridge_1h_replay", 75.7, 21.6, 17.0)],
    columns=["arm", "MATH-500", "AIME 2024", "AIME 2025"]).set_index("arm")  # arXiv 2605.12483 v4, Table 2 (8B teacher)
paper_table2

# %% [markdown]
# On a GPU box, `PRESET = "qwen3_paper"` in the first cell (or `s2dlab run --preset qwen3_paper`) runs the same
# arms at that scale; its hyperparameters come from the paper's Tables 8-9 where it gives them and from the
# authors' code elsewhere (`s2dlab/presets/qwen3_paper.yaml` says which is which).
#
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. Cold GRPO used every label of the pool; the workflow used the same number, split between teacher and
#    student. Which arm used more *teacher* compute, and how would you make a comparison that charges for it?
# 2. Your run's arms against the five-seed reference: is your seed typical? What would you need to claim that one
#    arm beats another from a single seed?
# 3. The raw teacher's bridge and cold GRPO started from the same base student with the same student steps. One
#    copies a teacher, the other follows a reward. Which of the two would you pick if the teacher could not be
#    trained with RL first, and what would you measure before deciding (notebook 01)?
#
# **Next:** `05_dense_rewards_token_by_token`: where in a rollout the dense signal sits.

# %% [markdown]
# ## The C1 x C2 map: when does the bridge win?
#
# The paper never measures its two conditions; it tests them only through P1-P3. `s2dlab map` measures them: it
# runs this notebook's comparison, the bridge (warmup + OPD) against cold GRPO on the same student at equal
# student steps, for every pair of a grid of teachers (`raw`; `rl@10`, `rl@30`, `rl@120`: one RL run's
# checkpoints; `sft`) and students (`close`, `middle`, `far`: base students within a few points of each other,
# pretrained on the same problems in layouts further and further from the teacher's). Every cell records **C1**
# (the AUROC of the teacher's summed implicit reward minus the raw teacher's: is the teacher reward-shaped?),
# **C2** (the per-token reverse KL from the student to the teacher before the bridge: does the student start
# close?) and the **gain** (bridge − cold GRPO, points), each with its 95% interval. The paper's account predicts a gain only where C1 is
# high and C2 is low. Below is the committed map, the three seeds of `s2dlab map --out runs/map_3seeds --seeds 3`
# (about 10 minutes a seed here; the README's "The C1 x C2 map"), read back from
# `docs/results/map_3seeds.json`, not recomputed;
# a map of your own opens in the dashboard's Map tab (`s2dlab app runs`). Where does the gain not follow C1 and
# C2, and is the difference larger than its interval?

# %%
from s2dlab.views.viz.map import map_figure
from s2dlab.workflow.cmap import map_table, read_map

map_path = results_dir / "map_3seeds.json"
if not map_path.is_file():
    print(f"{map_path} is not in this checkout: make a map with `s2dlab map --out runs/map_3seeds --seeds 3`.")
else:
    cmap = read_map(map_path)  # the map.json `s2dlab map` wrote: cells [{teacher, student, c1, c2, gain}]
    print(cmap["command"])
    print(map_table(cmap))
    display(map_figure(cmap))
