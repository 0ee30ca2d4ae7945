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
# # 01 · Stage 1: teacher GRPO, and what 'reward-shaped' means (C1)
#
# Stage 1 trains the **teacher** with GRPO on labeled problems that carry a final answer only. Per step: a few
# problems, a group of completions for each, reward 1 for a verified boxed answer and 0 otherwise; each
# completion's advantage is its reward minus its group's mean (divided by the group's spread), with PPO-style
# clipping (0.2 / 0.28), no KL penalty and a token-mean loss, as in the paper.
#
# The point of stage 1 for distillation is condition **C1**: after RL the teacher should be *reward-shaped*. Its
# per-token log-probabilities then carry information about right and wrong, so the implicit reward
# `log pT(y_t) - log pS(y_t)` it gives a student's rollout, summed over the rollout, should rank the student's
# correct rollouts above its incorrect ones. The claim is that RL makes the teacher a better scorer, not just a
# better solver.
#
# Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, step by step, the same run as `s2dlab run --ablations`. About a minute on a 2-core laptop CPU: stage 1 is the slowest stage of the workflow.

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
# Stage 0 (shipped base models) and stage 1, each evaluated.
# A finished stage is skipped and an existing eval.json is reused, so this is instant when an earlier notebook
# (or `s2dlab run`) already built them: `lab.build` makes the same calls as `s2dlab run`.
print("finished stages:", lab.build("teacher_grpo"))

# %% [markdown]
# ## Accuracy before and after
#
# Every stage is evaluated when it finishes: avg@k (mean correctness over k samples at T=1 per eval problem),
# pass@k and greedy accuracy, on eval problems no stage trains on.

# %%
results = pipeline.collect_results(cfg, run, arms)
table = pd.DataFrame(results["stages"]).T
table.loc[["base_teacher", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")

# %% [markdown]
# ## Reward and accuracy curves
#
# `reward` is the mean sparse reward of the step's completions (the training accuracy at T=1);
# `frac_reward_zero_std` the share of groups where every completion got the same reward, which therefore carry no
# learning signal at all. Every `probe.every` steps a probe samples a fixed set of eval problems:
# `probe/teacher_accuracy` is the teacher's accuracy on them, and `probe/auroc` the C1 measure below on the base
# student's probe rollouts (small, so noisy). All of it is in `teacher_grpo/metrics.jsonl`.

# %%
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "probe/teacher_accuracy", "probe/auroc"],
                        stages=["teacher_grpo"])

# %% [markdown]
# ## Seeing C1
#
# The question is whether the teacher's dense reward separates right from wrong *on the student's rollouts*,
# which is what OPD will train on. So: sample the base student on eval problems, score the very same rollouts with
# the base teacher and with the RL teacher, and compare. The number is the AUROC of the summed implicit reward as
# a predictor of correctness (0.5: no information, 1: a perfect ranking); `s2dlab.diagnostics` computes it and
# states a verdict.

# %%
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
pd.DataFrame({f"scored by {s}": c1_separation(rows) for s, rows in scored.items()}).T

# %% [markdown]
# Each dot is one student rollout, placed at its summed implicit reward. A reward-shaped teacher pushes the correct
# ones (top row) to the right of the incorrect ones (bottom row).

# %%
display(viz.c1_figure(scored["base_teacher"], title="C1 with the base teacher"))
display(viz.c1_figure(scored["teacher_grpo"], title="C1 with the RL teacher (after stage 1)"))

# %% [markdown]
# How to read it:
#
# - An AUROC clearly above 0.5 means the dense reward points the right way on average: summed over a rollout, the
#   teacher's per-token judgement ranks the student's right answers above its wrong ones. OPD relies on that.
# - Compare the two rows. Stage 1 makes the teacher a better *solver* (the accuracy table above); C1 asks whether
#   it is also a better *judge of the student's text*, which is what distillation uses. At this toy scale, expect
#   the two AUROCs to be close: the shipped base teacher, trained on worked solutions, already judges fairly well.
#   Measured on seed 0 with all 300 eval problems and 4 samples each (1,200 rollouts, so little noise), the
#   AUROC was 0.66 with either teacher; what changed is that the RL teacher is more confident, so both classes get
#   lower summed rewards and the gap between them widens slightly. With the ~200 rollouts used here, differences
#   of ±0.05 are noise. The `raw_teacher` arm in notebook 04 asks the question that matters downstream: how good is
#   a student distilled from the teacher *before* stage 1?
# - The summed implicit reward mixes two things: agreement on *style* (the layout both models learned from the same
#   data) and on *content*. Only the second should move with correctness; the heatmaps of notebook 05 show it
#   sitting on the digits of wrong intermediate results.
# - The probe in `teacher_grpo/rollouts/` records the same measure during training (`probe/auroc` in the metrics;
#   `s2dlab score RUN` prints it). The paper measures C1 with a Qwen3-8B teacher; this is the same measurement on
#   a toy.
#
# **Next:** `02a_forward_kl_warmup` moves the student toward the RL teacher before on-policy distillation.
