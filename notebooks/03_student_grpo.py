# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %%
import os

PRESET = "tiny"  # "qwen3_paper" on a GPU box
RUN_DIR = os.environ.get("S2DLAB_RUN", f"../runs/tutorial_{PRESET}")  # one run folder for notebooks 00-05

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
if PRESET == "tiny":
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
NOTEBOOK_OVERRIDES = {
    "tiny": [],
    "qwen3_paper": [],
}
cfg = load_config(PRESET, overrides=NOTEBOOK_OVERRIDES[PRESET])
common.offline_defaults()
transformers.logging.disable_progress_bar()  # no bar for every model load
run = create_run(RUN_DIR, cfg.to_dict(), cfg.seed)
steps, arms = pipeline.plan(cfg)
K, EVAL_SET = cfg.eval.n_samples, cfg.eval.sets[0]
print(f"preset {PRESET}, run folder {run.path.resolve()}")
print("finished stages:", [s for s in run.stages() if common.stage_done(run, s)] or "none yet")

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
# (or `s2dlab run`) already built them: these are the same calls `s2dlab run` makes.
upto = [s.out for s in steps].index("student_grpo")
for step in steps[: upto + 1]:
    pipeline.run_stage(cfg, run, step)
    evaluate_stage(cfg, run, step.out, progress=False)
print("finished stages:", [s for s in run.stages() if common.stage_done(run, s)])

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
