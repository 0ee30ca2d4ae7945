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
# # 02b · Stage 2b: on-policy distillation, the implicit reward by hand
#
# On-policy distillation (OPD) trains the student on **its own samples**, scored token by token by the teacher.
# For a student rollout `y ~ pS(.|x)` and each position `t`:
#
# | quantity | definition | sign |
# |---|---|---|
# | implicit reward | `r_t = log pT(y_t) - log pS(y_t)` | > 0: the teacher likes the student's token more than the student does |
# | reverse KL | `KL(pS ‖ pT)_t = Σ_v pS(v) (log pS(v) - log pT(v))` | ≥ 0, what OPD minimises |
# | forward KL | `KL(pT ‖ pS)_t = Σ_v pT(v) (log pT(v) - log pS(v))` | ≥ 0, what the warmup minimised |
#
# The two meet in one identity: `E_(y_t ~ pS)[-r_t] = KL(pS ‖ pT)_t`. The sampled-token implicit reward is a
# one-sample estimate of minus the reverse KL, so minimising the reverse KL on the student's own samples **is**
# reinforcement learning with a dense, per-token reward, given by the teacher. Here the RL teacher from stage 1
# scores a student that starts from the warmup.
#
# The stage uses TRL's `DistillationTrainer` with the full-vocabulary reverse KL (`opd.loss=full_reverse_kl`,
# default), or the sampled-token implicit reward as a per-token advantage (`opd.loss=sampled_token`).
# One rollout per prompt, as in the paper.
#
# Every stage runs with the settings of `s2dlab run` (`s2dlab/config.py`): the notebooks build, step by step, the same run as `s2dlab run --ablations`. About half a minute on a 2-core laptop CPU once notebook 02a has run.

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
# Stages 0-2a (if missing) and OPD, each evaluated.
# A finished stage is skipped and an existing eval.json is reused, so this is instant when an earlier notebook
# (or `s2dlab run`) already built them: `lab.build` makes the same calls as `s2dlab run`.
print("finished stages:", lab.build("opd"))

# %% [markdown]
# ## The implicit reward, by hand
#
# One rollout of the student after OPD, the RL teacher, and nothing but `torch`: run each model over prompt +
# completion, take log-softmax, and read off the log-probability of each sampled token. The logits at position `j`
# predict token `j+1`, so the completion's tokens are predicted from the positions just before them.

# %%
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
print(f"{len(y)} tokens, summed implicit reward {implicit_reward.sum():+.3f}, mean reverse KL {reverse_kl.mean():.4f}")

# %% [markdown]
# The same rollout through `s2dlab.scoring.score_rollouts` (the code that writes every snapshot in the run
# store, chunked so memory does not grow with vocabulary x length) must agree to float precision:

# %%
from s2dlab.scoring import score_rollouts

row = score_rollouts(student, teacher, tok, [r], grade_fn=common.grade_fn(cfg),
                     answers={problem["id"]: problem["answer"]})[0]
atol = 1e-4 if cfg.models.dtype == "float32" else 5e-2  # bf16 forward passes differ in the last bits
np.testing.assert_allclose(implicit_reward.numpy(), row["implicit_reward"], atol=atol)
np.testing.assert_allclose(reverse_kl.numpy(), row["reverse_kl"], atol=atol)
print("by hand == s2dlab.scoring: implicit reward and reverse KL agree at every token")
pd.DataFrame({"token": row["tokens"], "pS(y_t)": np.exp(row["student_logprob"]),
              "pT(y_t)": np.exp(row["teacher_logprob"]), "implicit reward": row["implicit_reward"],
              "reverse KL": row["reverse_kl"]}).round(4).T

# %% [markdown]
# And the identity `E_(y_t ~ pS)[-r_t] = KL(pS ‖ pT)_t`, checked by sampling: at the position where the two
# models disagree most, draw many tokens from the student's distribution and average minus their implicit
# reward.

# %%
pos = int(reverse_kl.argmax())
logp_S_pos, logp_T_pos = logp_S[pos].cpu(), logp_T[pos].cpu()
draws = torch.multinomial(logp_S_pos.exp(), 20000, replacement=True, generator=torch.Generator().manual_seed(0))
estimate = -(logp_T_pos[draws] - logp_S_pos[draws]).mean()
print(f"position {pos} (token {row['tokens'][pos]!r}): Monte Carlo E[-r] = {estimate:.4f}, "
      f"exact KL(pS||pT) = {reverse_kl[pos]:.4f}")

# %% [markdown]
# ## The token heatmap
#
# The dashboard's renderer, `s2dlab.viz.rollout_heatmap_html`: each token coloured by its implicit reward (red:
# the teacher disagrees, blue: the teacher agrees more than the student), with every per-token number and both
# models' top alternatives on hover. Below, probe rollouts on the same problems at the first and last OPD
# snapshot.

# %%
steps_opd = run.rollout_steps("opd")
first, last = (run.rollouts("opd", s) for s in (steps_opd[0], steps_opd[-1]))
vocab = viz.vocab_from_rows(pd.concat([first, last]))
for label, df in (("start of OPD", first), ("end of OPD", last)):
    rows = df[df["policy"] == "student"].head(3)
    for _, rr in rows.iterrows():
        title = f"{label}, step {rr['step']}: {rr['prompt']}  (correct: {rr['correct']}, " \
                f"sum of implicit reward {rr['sum_implicit_reward']:+.2f})"
        display(HTML(viz.rollout_heatmap_html(rr, title=title, id_to_text=vocab)))

# %% [markdown]
# ## The reverse KL over training
#
# OPD minimises the reverse KL on the student's own samples, so its curve should fall. `probe/mean_reverse_kl` is
# measured at every probe snapshot (fixed probe problems, fresh student samples); the curve runs across the warmup
# and OPD, end to end.

# %%
viz.stage_curves_figure(run, metrics=["probe/mean_reverse_kl", "probe/mean_implicit_reward", "probe/accuracy"],
                        stages=["fkl_warmup", "opd"])

# %%
results = pipeline.collect_results(cfg, run, arms)
print("mean reverse KL per token on the probe, OPD start -> end: "
      f"{results['c2']['opd_start']['mean_reverse_kl']:.3f} -> {results['c2']['opd_end']['mean_reverse_kl']:.3f}")
table = pd.DataFrame(results["stages"]).T
table.loc[["base_student", "fkl_warmup", "opd", "teacher_grpo"], ["accuracy", "greedy", f"pass@{K}"]].rename(
    columns={"accuracy": f"avg@{K}"}).style.format("{:.1%}")

# %% [markdown]
# On the tiny preset OPD usually gives the largest single jump of the workflow. No labels were used: the teacher's
# log-probabilities were the only signal.
#
# **Next:** `03_student_grpo`: sparse-reward RL on the distilled student, with held-out labels.
