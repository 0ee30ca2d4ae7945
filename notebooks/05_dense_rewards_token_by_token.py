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
# # 05 · Dense rewards, token by token
#
# A sparse reward gives a completion one bit. The implicit reward gives every token a number, but not every token
# carries the same amount of signal. This notebook asks where it sits, using the scored snapshots that OPD wrote
# into the run store (`opd/rollouts/step_*.parquet`, student samples scored by the RL teacher):
#
# - **entropy / divergence quadrants**: split tokens by the student's entropy (is it unsure?) and by the per-token
#   reverse KL (does the teacher disagree?), and see which quadrant holds the reward (`s2dlab.diagnostics.token_quadrants`);
# - **which tokens**: the implicit reward grouped by token;
# - the **same heatmap renderer as the dashboard** (`s2dlab.viz.token_heatmap_html`), and how to open the
#   dashboard on this run.
#
# Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, step by step, the same run as `s2dlab run --ablations`. Reads the run store only, once stages 0-2b exist (it builds them if missing): seconds.

# %%
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display

from s2dlab import tutorial

# The settings of `s2dlab run` (s2dlab/config.py), plus these overrides. Every notebook of one run folder must
# use the same list; to experiment, add e.g. "opd.loss=sampled_token" here with a new RUN_DIR (WORKSHOP.md).
NOTEBOOK_OVERRIDES = {
    "tiny": [],
    "qwen3_paper": [],
}
# Offline settings (tiny preset), config, run folder, seeds. On a slow or busy laptop, add threads=1
# (help(tutorial.setup) says why).
lab = tutorial.setup(PRESET, RUN_DIR, overrides=NOTEBOOK_OVERRIDES[PRESET])
cfg, run, steps, arms = lab.cfg, lab.run, lab.steps, lab.arms
K, EVAL_SET = lab.k, lab.eval_set

from s2dlab import pipeline, viz  # after setup, which sets HF_HUB_OFFLINE before transformers is imported
from s2dlab.stages import common

# %%
# Stages 0-2b, built if missing and evaluated (instant when notebook 02b has run). A run folder that holds OPD
# snapshots but no model weights, such as a copy of the committed fixture (see WORKSHOP.md), is read as it is.
if run.has_model("opd") or not run.rollout_steps("opd"):
    lab.build("opd")

# %%
from s2dlab.diagnostics import token_quadrants

STAGE = "opd"  # after notebook 04's ablations, also "raw_teacher.opd" (teacher before stage 1) or "no_warmup.opd"
snapshot_steps = run.rollout_steps(STAGE)
snapshots = {"start of OPD": run.rollouts(STAGE, snapshot_steps[0]),
             "end of OPD": run.rollouts(STAGE, snapshot_steps[-1])}
students = {label: df[df["policy"] == "student"] for label, df in snapshots.items()}
print({label: f"step {df['step'].iloc[0]}, {len(df)} student rollouts, {df['length'].sum()} tokens"
       for label, df in students.items()})

# %% [markdown]
# ## Entropy x divergence quadrants
#
# Each token of the student's rollouts at the start of OPD, placed by the student's entropy at that position (x)
# and the reverse KL to the teacher (y), coloured by its implicit reward. The dotted lines are the medians. A
# token can be:
#
# - *confident, agrees* (low, low): nothing to learn;
# - *confident, teacher disagrees* (low entropy, high KL): the student is sure and wrong by the teacher's lights,
#   the most useful correction, and one a sparse reward can only hint at;
# - *unsure, agrees* (high, low): a choice between options the teacher also finds plausible;
# - *unsure, teacher disagrees* (high, high): the student is guessing and the teacher knows better.

# %%
viz.quadrant_figure(students["start of OPD"])

# %% [markdown]
# The figure splits at the medians, so each side holds half of the tokens by construction. Most tokens of this task
# are near-certain for both models (copying the problem, the layout), which puts the medians close to 0. For a
# table that compares the start and the end of OPD, fix the thresholds instead: below, a token is *unsure* when the
# student's entropy exceeds 0.1 nats and *disagreed with* when the reverse KL does.

# %%
THRESHOLD = 0.1  # nats, for both entropy and reverse KL
shares = {}
for label, df in students.items():
    q = token_quadrants(df, entropy_threshold=THRESHOLD, divergence_threshold=THRESHOLD)
    for name, m in q["quadrants"].items():
        shares[(label, name)] = {"share of tokens": m["token_share"], "share of |implicit reward|": m["abs_reward_share"],
                                 "mean implicit reward": m["mean_implicit_reward"]}
pd.DataFrame(shares).T.style.format("{:.2f}", na_rep="-")

# %% [markdown]
# Read it row by row. The confident-and-agreeing tokens are the large majority and carry almost none of the reward;
# the signal sits on the minority of positions where the student is unsure and the teacher disagrees. The rare
# confident-but-disagreed tokens have the most negative reward per token: the student is sure of a digit the
# teacher considers wrong. Between the start and the end of OPD the unsure-and-disagreeing share shrinks: the
# student has absorbed part of what the teacher knew.

# %% [markdown]
# ## Which tokens carry the reward
#
# The implicit reward grouped by token text (here, characters), over the same snapshot: the total of |implicit
# reward| per token, and how often it appears.

# %%
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
fig

# %% [markdown]
# On the arithmetic task the digits of intermediate and final results carry most of it: the student copies the
# problem and the layout easily, and goes wrong in the arithmetic, which is exactly where a per-token teacher
# helps and where a 0/1 reward at the end cannot say which digit was wrong.
#
# ## The heatmap, as the dashboard draws it
#
# `viz.token_heatmap_html(tokens, values, per_token_info=...)` is the one renderer the notebooks and the app share:
# plain HTML, so it works in Jupyter, in Gradio and in a saved file. Here the same rollout is coloured twice, by
# its implicit reward and by its reverse KL (always ≥ 0); hover a token for all the numbers and both models'
# top alternatives.

# %%
df = students["start of OPD"]
row = df.loc[df["sum_implicit_reward"].idxmin()]  # the rollout the teacher likes least
vocab = viz.vocab_from_rows(snapshots["start of OPD"])
info = viz.row_token_info(row, vocab)
print(f"{row['prompt']} -> {row['completion']!r} (correct: {row['correct']})")
display(HTML(viz.token_heatmap_html(row["tokens"], row["implicit_reward"], per_token_info=info,
                                    label="implicit reward log pT - log pS", title="implicit reward")))
display(HTML(viz.token_heatmap_html(row["tokens"], row["reverse_kl"], per_token_info=info, cmap="Purples",
                                    label="reverse KL(pS || pT)", title="reverse KL")))

# %% [markdown]
# ## The same numbers from the command line and the dashboard
#
# `s2dlab score RUN` prints the C1/C2 verdicts and these quadrants for any run folder:

# %%
from s2dlab.cli import main as s2dlab_cli

_ = s2dlab_cli(["score", str(run.path)])  # the exit status, 0

# %% [markdown]
# The dashboard shows every run under a folder: stages, curves, results, and every scored rollout as a heatmap
# with the same hover details. From the repository root, in a terminal:
#
# ```bash
# pip install -e ".[app]"     # once: the dashboard needs Gradio
# s2dlab app runs             # every run under runs/, this tutorial's included; opens on http://127.0.0.1:7860
# ```
#
# It reads the run store only, so it can stay open while a notebook trains: refresh to see new snapshots. The
# exact command for this run folder:

# %%
print(f"s2dlab app {run.path.resolve().parent}")

# %% [markdown]
# **Where to go from here:** `notebooks/WORKSHOP.md` has exercises (skip stage 1, skip the warmup, change the
# OPD loss) with what you should see; `s2dlab run --ablations --seeds 3` gives the full table with error bars.
