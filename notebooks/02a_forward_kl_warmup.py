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
# # 02a · Stage 2a: forward-KL warmup, the student moves into the teacher's support (C2)
#
# On-policy distillation (stage 2b) scores tokens *the student samples*. If the student is far from the teacher,
# it samples text the teacher would never write, and the teacher's log-probabilities there are not a meaningful
# signal. Condition **C2** asks that the student already sit inside the teacher's support.
#
# The warmup gets it there with the **forward KL** `KL(pT || pS) = E_(y~pT)[log pT(y) - log pS(y)]`. Its
# expectation is over the *teacher's* samples, so it is trained on teacher rollouts:
#
# 1. the RL teacher samples completions on the prompt pool (prompts only, no answers are used);
# 2. the student is fine-tuned on those samples (`fkl_warmup.loss=sampled`, SFT on the sampled tokens, which is
#    the forward KL up to the teacher's entropy), or against the teacher's full distributions
#    (`fkl_warmup.loss=full`).
#
# The forward KL is *mode covering*: the student is pushed to put mass wherever the teacher does. C2 is measured
# the other way round, on the student's own samples: the per-token reverse KL `KL(pS || pT)` should be small.
#
# Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, step by step, the same run as `s2dlab run --ablations`. About half a minute on a 2-core laptop CPU once notebook 01 has run.

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
# Stages 0-1 (if missing) and the warmup, each evaluated.
# A finished stage is skipped and an existing eval.json is reused, so this is instant when an earlier notebook
# (or `s2dlab run`) already built them: `lab.build` makes the same calls as `s2dlab run`.
print("finished stages:", lab.build("fkl_warmup"))

# %% [markdown]
# ## The teacher's rollouts
#
# The warmup samples `fkl_warmup.num_rollouts` completions from the RL teacher once and caches them in the stage
# folder. Only completions that stopped on their own are kept (`fkl_warmup.only_correct=true` would also drop the
# wrong ones, which uses labels; off by default). They are not all correct: the student learns the teacher's
# *distribution*, mistakes included.

# %%
teacher_rows = pd.DataFrame(common.read_jsonl(run.stage_dir("fkl_warmup") / "teacher_rollouts.jsonl"))
splits = common.task_splits(cfg)
answers = {r["id"]: r["answer"] for r in splits["teacher_rl"] + splits["student_rl"]}
grade = common.grade_fn(cfg)
teacher_rows["correct"] = [grade(c, answers[p]) for c, p in zip(teacher_rows["completion"], teacher_rows["prompt_id"])]
print(f"{len(teacher_rows):,} teacher rollouts, {teacher_rows['finished'].mean():.0%} finished, "
      f"{teacher_rows['correct'].mean():.0%} correct")
teacher_rows[["prompt", "completion", "finished", "correct"]].head(6)

# %% [markdown]
# ## Training curves
#
# `loss` is the cross-entropy on the teacher's tokens (the forward-KL estimate, up to the teacher's entropy).
# `probe/mean_reverse_kl` is C2 itself, measured every `probe.every` steps on the student's own samples of a fixed
# probe set: the mean per-token `KL(pS || pT)` in nats.

# %%
viz.stage_curves_figure(run, metrics=["loss", "mean_token_accuracy", "probe/mean_reverse_kl", "probe/accuracy"],
                        stages=["fkl_warmup"])

# %% [markdown]
# ## Seeing C2
#
# The probe set is small, so here is the same measurement on more problems: sample the student before the warmup
# (`base_student`) and after it (`fkl_warmup`), score each one's own rollouts against the RL teacher, and compare
# the distribution of per-token reverse KL. Mass in the left bins means the student rarely writes a token the
# teacher would not.

# %%
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
viz.c2_histogram_figure(closeness)

# %% [markdown]
# The verdict applies a fixed bar to the *mean* (`C2_MAX_MEAN_REVERSE_KL` in `s2dlab.diagnostics`, 0.3
# nats/token). The histogram says more: most tokens sit near 0 after the warmup, and the mean is carried by a tail
# of positions where the student still disagrees with the teacher. That tail is what OPD works on next, now
# from a student whose samples the teacher can judge.

# %% [markdown]
# And the accuracy: the warmup alone usually moves the student toward the teacher's accuracy, since it imitates a
# better model. (An unfiltered warmup on a *weak* teacher can also pull a student down, mistakes and all; OPD then
# recovers it. Try `fkl_warmup.only_correct=true` in a fresh run folder to compare.)

# %%
results = pipeline.collect_results(cfg, run, arms)
table = pd.DataFrame(results["stages"]).T
table.loc[["base_student", "fkl_warmup", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")

# %% [markdown]
# **Next:** `02b_on_policy_distillation`: the student samples, the teacher scores every token.
