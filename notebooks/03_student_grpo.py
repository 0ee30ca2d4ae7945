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
# # 03 · Stage 3: student GRPO on held-out labels
#
# The last stage is sparse-reward GRPO again, now on the **student** that OPD handed off, with the *held-out*
# share of the labeled problems: the student-RL split, which the teacher never trained on. The labeled budget is
# split explicitly in the config (`task.teacher_rl_size`, `task.student_rl_size`); the direct-GRPO baseline of
# notebook 04 gets the very same student-RL problems.
#
# The paper calls this stage optional; the dense signal of OPD has already done most of the work. At toy scale it
# adds 0-4 points. What it shows well is *why* starting RL from a distilled student helps: GRPO learns only from
# groups in which some completions are right and some wrong, and a stronger student has more of them.
#
# Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, step by step, the same run as `s2dlab run --ablations`. About 20 seconds on a 2-core laptop CPU once notebook 02b has run.

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

# %% [markdown]
# The labeled splits are disjoint: no problem text is shared between the teacher's RL set, the student's RL set
# and the eval set.

# %%
splits = common.task_splits(cfg)
texts = {name: {r["prompt"] for r in splits[name]} for name in ("teacher_rl", "student_rl")}
texts["eval"] = {r["prompt"] for r in common.eval_sets(cfg)[EVAL_SET]}
print({name: len(t) for name, t in texts.items()})
print("shared between teacher_rl and student_rl:", len(texts["teacher_rl"] & texts["student_rl"]))
print("shared between RL sets and eval:", len((texts["teacher_rl"] | texts["student_rl"]) & texts["eval"]))

# %%
# Stages 0-2b (if missing) and student GRPO, each evaluated.
# A finished stage is skipped and an existing eval.json is reused, so this is instant when an earlier notebook
# (or `s2dlab run`) already built them: `lab.build` makes the same calls as `s2dlab run`.
print("finished stages:", lab.build("student_grpo"))

# %% [markdown]
# ## Curves
#
# `reward` is the student's training accuracy at T=1; `frac_reward_zero_std` the share of groups in which all
# completions got the same reward (all right or all wrong), which give GRPO no gradient. The probe scores the
# student against the RL teacher, so the reverse KL shows whether RL pulls the student away from the teacher.

# %%
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "probe/accuracy", "probe/mean_reverse_kl"],
                        stages=["student_grpo"])

# %% [markdown]
# ## The student along the workflow
#
# Accuracy on the eval set after each stage, with the RL teacher for reference:

# %%
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
fig

# %% [markdown]
# **Next:** `04_workflow_vs_direct_grpo`: the same labeled problems given to GRPO directly, and the ablations.
