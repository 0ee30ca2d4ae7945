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
# # 01 · Stage 1: teacher GRPO by hand, then for real, and what "reward-shaped" means (C1)
#
# Stage 1 trains the **teacher** with GRPO on the labeled half 1H (final answers only). One step:
#
# 1. take `prompts_per_step` problems and sample a **group** of G = `num_generations` completions for each;
# 2. grade each completion: reward `r_i` = 1 for a verified boxed answer, else 0 (you write this function below);
# 3. the **advantage** of completion i is its reward against its own group,
#    `A_i = (r_i - mean_group(r)) / (std_group(r) + 1e-4)` (std with Bessel's correction, as TRL computes it); a
#    group whose rewards are all equal has `A = 0` for every completion: a **dead group**, no signal at all;
# 4. the **token-mean clipped surrogate** (TRL's `loss_type="dapo"`), over every completion token of the step:
#
#    $$L = -\frac{1}{\sum_i |y_i|} \sum_i \sum_t \min\big(\rho_{i,t} A_i,\ \mathrm{clip}(\rho_{i,t}, 1-\epsilon, 1+\epsilon_{high}) A_i\big), \qquad \rho_{i,t} = \frac{\pi_\theta(y_{i,t})}{\pi_{\theta_{old}}(y_{i,t})}$$
#
#    (sign: minimising L raises the log-probability of every token of a completion with `A_i > 0` and lowers it
#    for `A_i < 0`);
# 5. one optimizer step.
#
# `θ_old` is the policy that sampled the batch; ε = 0.2 and ε_high = 0.28 on the tiny preset. What ρ and the clip
# actually do in stage 1 is the first prediction below.
#
# Section 1 writes the reward, then does one step by hand and checks every number against a real `GRPOTrainer` step. Section 2 runs
# stage 1 (the slowest stage of the workflow). Section 3 asks what stage 1 did to the teacher *as a scorer*:
# condition C1.

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

# %%
# Stage 0 (the shipped base models), evaluated: `lab.build` makes the calls of `s2dlab run`; stages already
# evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student")):
    lab.build("base_student")
print("finished stages:", lab.finished())

# %% [markdown]
# ## 1 · One GRPO step by hand
#
# ### Your turn 01.1: the reward function
#
# The sparse reward of this task: **1.0** when the content of the **last** `\boxed{...}` of the completion is a plain
# integer (digits, perhaps a leading minus) equal to the answer, **0.0** otherwise: no box, a box that never closes
# (the completion was cut off), an expression such as `\boxed{5+7}` (equal in value, but it copies the question
# instead of computing), or a wrong number. Write it with Python's `re` (no s2dlab function). The rest of this
# section grades the group and the TRL step with *your* function once the check passes.

# %%
import re


# %%
# Your turn 01.1: the reward function. Replace the ... with its body (`re` is imported above).
def my_reward(completion, answer):
    ...

# %%
# Check 01.1 (nine cases, from a worked solution to a box that never closes)
from s2dlab import exercises

exercises.check_01_1(my_reward)
# the reward used below: yours once it is written, else the task's grader (s2dlab.core.rewards, math-verify)
reward_of = my_reward if my_reward("\\boxed{1}", "1") is not None else data.grade_fn(cfg)
print("grading with", "my_reward" if reward_of is my_reward else "the task's grader (write my_reward to use yours)")

# %% [markdown]
# ### A group
#
# The base teacher (the policy before stage 1) samples a group of G completions for one problem of 1H, at the
# temperature stage 1 samples with; each is graded, and the group's rewards become advantages.

# %%
import torch

from s2dlab.core.generation import sample

tok = tokenizer_for(cfg, run)
policy = load_stage_model(cfg, run, "base_teacher", tok)
sec = cfg.teacher_grpo
G = sec.num_generations
problem = data.labeled(cfg, "1h")[0]
group = sample(policy, tok, [problem], n=G, max_new_tokens=cfg.generation.max_new_tokens,
               temperature=sec.temperature if sec.temperature is not None else cfg.generation.temperature,
               top_p=cfg.generation.top_p, top_k=cfg.generation.top_k, seed=0, prompt_suffix=cfg.task.prompt_suffix,
               chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
r_G = torch.tensor([float(reward_of(g.completion, problem["answer"])) for g in group])
A_G = (r_G - r_G.mean()) / (r_G.std() + 1e-4)  # torch's std divides by G - 1, like TRL's nanstd
print(f"{problem['prompt']}  answer {problem['answer']}: group mean reward {r_G.mean():.3f}, std {r_G.std():.3f}"
      + ("  (a dead group: every advantage is 0)" if r_G.std() == 0 else ""))
pd.DataFrame({"completion": [g.completion for g in group], "tokens": [len(g.completion_ids) for g in group],
              "reward": r_G.numpy(), "advantage": A_G.numpy().round(3)})

# %% [markdown]
# ### Your turn 01.2: the advantages of a group
#
# A group of 8 completions where only the first one is right: rewards `[1, 0, 0, 0, 0, 0, 0, 0]`. Compute the 8
# advantages by the formula above (std with Bessel's correction, `+ 1e-4` in the denominator). Then look at your
# numbers: how does the right completion's advantage compare with the size of a wrong one's?

# %%
# Your turn 01.2: a list of 8 numbers (plain Python or numpy; torch is imported above).
rewards_01 = [1, 0, 0, 0, 0, 0, 0, 0]
my_advantages = ...

# %%
# Check 01.2
from s2dlab import exercises

exercises.check_01_2(my_advantages)

# %% [markdown]
# **Predict first.** The next cells run one real `GRPOTrainer` step and then redo it by hand. Before running
# them: at every token of the batch, what is the largest ratio `ρ = πθ(y_t) / πθ_old(y_t)` when the loss is
# computed? How many tokens do you expect the clip at `1 - ε` / `1 + ε_high` to change? Write both numbers.

# %%
# Predict 01.a: two numbers
my_guess_largest_ratio = ...
my_guess_clipped_tokens = ...

# %% [markdown]
# ### One real TRL step, and every number by hand
#
# The same trainer and settings as stage 1 (`s2dlab.workflow.stages.grpo.grpo_config`), for one step, on a copy of the
# base teacher. The reward function is wrapped so that we keep what TRL sampled: the completions, their token ids
# and the problems they answer.

# %%
import copy
import dataclasses
import tempfile
from pathlib import Path

from trl import GRPOTrainer

from s2dlab.workflow.stages import grpo
from s2dlab.workflow.stages.lifecycle import quiet_progress

before = copy.deepcopy(policy)  # the policy at the start of the step (theta_old), for the checks by hand
# the reward function (yours, once 01.1 passes), keeping a copy of what TRL sampled and graded (`.calls`)
arithmetic_reward = tutorial.recording_reward(tutorial.trl_reward(reward_of))
one_step = dataclasses.replace(sec, steps=1)
args = grpo.grpo_config(cfg, one_step, Path(tempfile.mkdtemp()) / "one_grpo_step")
args.save_strategy = "no"  # nothing to resume: keep no checkpoint
trainer = GRPOTrainer(model=policy, reward_funcs=arithmetic_reward, args=args,
                      train_dataset=grpo.rl_dataset(cfg, data.labeled(cfg, "1h")), processing_class=tok)
quiet_progress(trainer, "one GRPO step")
trainer.train()
logged = trainer.state.log_history[0]  # what TRL logged for the step
batch = arithmetic_reward.calls[0]
print(f"TRL sampled {len(batch['rewards'])} completions: {len(set(batch['prompt_id']))} problems x G = {G}")

# %%
# Rewards, groups, advantages and dead groups by hand, from the completions TRL sampled. TRL's sampler puts the
# G completions of one problem next to each other, so the groups are consecutive rows.
assert all(len(set(batch["prompt_id"][i:i + G])) == 1 for i in range(0, len(batch["prompt_id"]), G))
r_BG = torch.tensor(batch["rewards"]).view(-1, G)
std_B = r_BG.std(dim=1, keepdim=True)
A_BG = (r_BG - r_BG.mean(dim=1, keepdim=True)) / (std_B + 1e-4)
dead = (std_B == 0).float().mean().item()
trl_advantages = torch.tensor(list(trainer._logs["advantages"]))  # TRL's own record of the step's advantages
by_hand = pd.DataFrame({
    "by hand": [r_BG.mean().item(), r_BG.flatten().std().item(), dead],
    "TRL logged": [logged["reward"], logged["reward_std"], logged["frac_reward_zero_std"]],
}, index=["reward (mean)", "reward_std", "frac_reward_zero_std (dead groups)"])
print("advantages: largest |by hand - TRL| =", f"{(A_BG.flatten() - trl_advantages).abs().max():.2e}")
assert torch.allclose(A_BG.flatten(), trl_advantages, atol=1e-5), "advantages differ from TRL's"
assert np.allclose(by_hand["by hand"], by_hand["TRL logged"], atol=1e-6), "rewards or dead groups differ from TRL's"
by_hand

# %% [markdown]
# Now the loss. The log-probabilities of the sampled tokens come from `θ_old` (the copy taken before the step).
# The batch is laid out as TRL lays it out: prompts padded on the left, completions on the right, and a mask that
# keeps only the completions' real tokens (the eos included).

# %%
from s2dlab.core.generation import format_prompt

prompts = {r["id"]: r["prompt"] for r in data.labeled(cfg, "1h")}
prompt_ids = [tok(format_prompt(tok, prompts[p], cfg.task.prompt_suffix, data.chat_kwargs(cfg)),
                  add_special_tokens=False)["input_ids"] for p in batch["prompt_id"]]
B, P = len(prompt_ids), max(map(len, prompt_ids))
C = max(len(c) for c in batch["completion_ids"])
ids_BL = torch.full((B, P + C), tok.pad_token_id)
prompt_mask_BP, mask_BC = torch.zeros(B, P), torch.zeros(B, C)
for b, (p, c) in enumerate(zip(prompt_ids, batch["completion_ids"])):
    ids_BL[b, P - len(p):P], prompt_mask_BP[b, P - len(p):] = torch.tensor(p), 1
    ids_BL[b, P:P + len(c)], mask_BC[b, :len(c)] = torch.tensor(c), 1
attention_BL = torch.cat([prompt_mask_BP, mask_BC], dim=1).long()

before.train()  # as the trainer runs it (the tiny models have no dropout, so this changes nothing)
logits_BCV = before(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :len(tok)]
logp_BC = torch.log_softmax(logits_BCV.float(), dim=-1).gather(-1, ids_BL[:, P:, None]).squeeze(-1)
ratio_BC = torch.exp(logp_BC - logp_BC.detach())  # pi_theta / pi_theta_old: theta_old is theta at this moment
A_B1 = A_BG.reshape(-1, 1)
clipped_BC = torch.clamp(ratio_BC, 1 - sec.epsilon, 1 + sec.epsilon_high)
per_token_BC = -torch.min(ratio_BC * A_B1, clipped_BC * A_B1)
loss = (per_token_BC * mask_BC).sum() / mask_BC.sum()  # token mean over the whole step ("dapo")
real = mask_BC.bool()
print(f"ratio over the {int(mask_BC.sum())} completion tokens: min {ratio_BC[real].min():.6f}, "
      f"max {ratio_BC[real].max():.6f}; tokens the clip changes: {int((clipped_BC != ratio_BC)[real].sum())}")
print(f"loss by hand {loss.item():+.6f}, TRL logged {logged['loss']:+.6f}; with ratio 1 it is "
      f"-sum_i A_i |y_i| / sum_i |y_i| = {(-(A_B1 * mask_BC).sum() / mask_BC.sum()).item():+.6f}")
assert abs(loss.item() - logged["loss"]) < 1e-5
exercises.reveal("Predict 01.a (largest ratio)", my_guess_largest_ratio, ratio_BC[real].max().item(), abs_tol=1e-3)
exercises.reveal("Predict 01.a (tokens clipped)", my_guess_clipped_tokens, int((clipped_BC != ratio_BC)[real].sum()),
                 abs_tol=0)

# %% [markdown]
# The optimizer step, as the trainer takes it: AdamW at the stage's learning rate (no weight decay), after
# clipping the gradient norm to `max_grad_norm`. TRL logs the norm before clipping (`grad_norm`). Then the weights
# by hand are compared with the weights TRL's step produced.

# %%
targs = trainer.args
optimizer = torch.optim.AdamW(before.parameters(), lr=targs.learning_rate, betas=(targs.adam_beta1, targs.adam_beta2),
                              eps=targs.adam_epsilon, weight_decay=targs.weight_decay)
optimizer.zero_grad()
loss.backward()
grad_norm = torch.nn.utils.clip_grad_norm_(before.parameters(), targs.max_grad_norm)
optimizer.step()
start = dict(load_stage_model(cfg, run, "base_teacher", tok).named_parameters())
mine = {n: p.detach() - start[n].detach() for n, p in before.named_parameters()}
theirs = {n: p.detach() - start[n].detach() for n, p in trainer.model.named_parameters()}
dot = sum((mine[n] * theirs[n]).sum() for n in mine)
norms = (sum((v * v).sum() for v in mine.values()) * sum((v * v).sum() for v in theirs.values())).sqrt()
cos = dot / norms if norms > 0 else None  # a step that moved no weight has no direction: the cosine is 0/0
largest = max((mine[n] - theirs[n]).abs().max() for n in mine)
print(f"grad_norm by hand {grad_norm:.6f}, TRL logged {logged['grad_norm']:.6f}")
if cos is not None:
    print(f"weight change by hand vs TRL's: cosine {cos:.7f}; largest difference {largest:.1e} (learning rate "
          f"{targs.learning_rate:g}: Adam's first step moves each weight by about lr x sign(gradient), so a weight "
          "whose gradient is near 0 can differ by up to lr)")
    assert abs(grad_norm - logged["grad_norm"]) < 1e-4 and cos > 0.999
else:  # e.g. every group dead (all rewards 0, as for untrained stand-in models): the gradient is 0, Adam moves nothing
    print(f"weight change by hand vs TRL's: cosine undefined (0/0): a step moved no weight (gradient norm "
          f"{grad_norm:.1e}: {dead:.0%} of the batch's groups were dead, mean reward {r_BG.mean().item():.3f}); "
          f"largest difference {largest:.1e}, so both steps agree that nothing moved")
    assert abs(grad_norm - logged["grad_norm"]) < 1e-4 and largest == 0

# %% [markdown]
# So the ratio was exactly 1 and the clip changed no token. The batch is sampled by the current policy and used for
# **one** optimizer step, so `θ_old = θ` when the loss is computed (TRL uses `per_token_logps.detach()`). The
# gradient is then the plain policy gradient `-(1/N) Σ A_i ∇ log πθ(y_{i,t})`: every step of stage 1 is a plain
# policy-gradient step, and TRL's logged `clip_ratio/region_mean` is 0 at every step (the curves below show it).
# The clip would act only with several updates per batch (TRL's `num_iterations > 1`), which neither this lab nor
# the paper's code uses. After the step the policy *has* moved; had we taken a second update on the same batch
# (`num_iterations = 2`), the ratio would be the one below, and the clip would start to act on the tokens outside
# `[1 - ε, 1 + ε_high]`:

# %%
with torch.no_grad():
    after_BCV = trainer.model(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :len(tok)]
    logp_after_BC = torch.log_softmax(after_BCV.float(), -1).gather(-1, ids_BL[:, P:, None]).squeeze(-1)
ratio_after = torch.exp(logp_after_BC - logp_BC.detach())[real]
outside = ((ratio_after < 1 - sec.epsilon) | (ratio_after > 1 + sec.epsilon_high)).float().mean()
print(f"ratio after one step: min {ratio_after.min():.3f}, median {ratio_after.median():.4f}, max "
      f"{ratio_after.max():.3f}; share outside the clip range {outside:.2%}")
go.Figure(go.Histogram(x=ratio_after.numpy(), nbinsx=60)).update_layout(
    title="π_θ(after one step) / π_θ_old on the same batch (what a second update would see)", xaxis_title="ratio",
    yaxis_title="tokens", yaxis_type="log", template="plotly_white", height=300)

# %% [markdown]
# ### Change X, predict, observe: the learning rate
#
# The share outside the clip range after one step depends on how far the step moved the policy. Set `LR_SCALE`
# (the step's learning rate is `LR_SCALE` times stage 1's), predict the share of tokens a second update would find
# outside `[1 - ε, 1 + ε_high]`, then run: the next cell redoes the same step by hand from the base teacher with the
# scaled rate (one forward and backward pass, seconds) and measures it.

# %%
LR_SCALE = 10  # X: try 0.1, 3, 10, 30
# Predict 01.b: the share of tokens outside the clip range after one step at LR_SCALE x the rate (0 to 1)
my_guess_outside = ...

# %%
scaled = load_stage_model(cfg, run, "base_teacher", tok).train()
opt_x = torch.optim.AdamW(scaled.parameters(), lr=targs.learning_rate * LR_SCALE,
                          betas=(targs.adam_beta1, targs.adam_beta2), eps=targs.adam_epsilon, weight_decay=0.0)
lp_x = torch.log_softmax(scaled(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :len(tok)].float(),
                         -1).gather(-1, ids_BL[:, P:, None]).squeeze(-1)
loss_x = (-(torch.exp(lp_x - lp_x.detach()) * A_B1) * mask_BC).sum() / mask_BC.sum()  # the same loss, ratio 1
opt_x.zero_grad()
loss_x.backward()
torch.nn.utils.clip_grad_norm_(scaled.parameters(), targs.max_grad_norm)
opt_x.step()
with torch.no_grad():
    lp_after = torch.log_softmax(scaled(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :len(tok)]
                                 .float(), -1).gather(-1, ids_BL[:, P:, None]).squeeze(-1)
ratio_x = torch.exp(lp_after - lp_x.detach())[real]
outside_x = ((ratio_x < 1 - sec.epsilon) | (ratio_x > 1 + sec.epsilon_high)).float().mean().item()
print(f"learning rate {targs.learning_rate * LR_SCALE:g} ({LR_SCALE} x stage 1's): ratio min {ratio_x.min():.3f}, max "
      f"{ratio_x.max():.3f}; share outside the clip range {outside_x:.2%} (at 1 x: {outside:.2%})")
exercises.reveal("Predict 01.b", my_guess_outside, outside_x, abs_tol=0.05)

# %% [markdown]
# Adam's first step moves every weight by about the learning rate whatever its gradient, so the policy's change
# grows with the rate almost linearly, and the clip, which bounds the *ratio*, starts to matter at large rates on
# a second update. With one update per batch it still never acts: the ratio is 1 when the loss is computed.
#
# ## 2 · Stage 1 for real
#
# `teacher_grpo.steps` steps of the same update, then the teacher is evaluated and the fixed C1 rollouts are
# scored (section 3). This is the slowest stage of the workflow (notebooks/README.md, "Timings"); it is skipped
# when the run folder already holds it.

# %%
if any(run.eval(s) is None for s in ("base_teacher", "base_student", "teacher_grpo")):
    lab.build("teacher_grpo")
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary

# %% [markdown]
# `reward` is the mean sparse reward of the step's completions (the training accuracy at T = 1);
# `frac_reward_zero_std` the share of dead groups; `clip_ratio/region_mean` the share of tokens the clip touched;
# `probe/teacher_accuracy` the teacher's accuracy on a small fixed probe set (16 problems: noisy). Every metric is in
# `teacher_grpo/metrics.jsonl`.

# %%
metrics = pd.DataFrame(run.metrics("teacher_grpo"))
print("largest clip_ratio/region_mean over all steps:", metrics["clip_ratio/region_mean"].max())
viz.stage_curves_figure(run, metrics=["reward", "frac_reward_zero_std", "clip_ratio/region_mean",
                                      "probe/teacher_accuracy"], stages=["teacher_grpo"])

# %% [markdown]
# Accuracy on the eval split, before and after stage 1 (from the summary; the 95% interval is over problems):

# %%
rows = {}
for stage in ("base_teacher", "teacher_grpo"):
    st = S["stages"][stage]
    lo, hi = st["interval"]["ci"]
    rows[stage] = {f"avg@{K} % [95% CI]": f"{100 * st['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                   "greedy %": viz.greedy_text(st["greedy"]), "labels": (st.get("labels") or {}).get("n", 0),
                   "steps": st.get("steps") or 0}
pd.DataFrame(rows).T

# %% [markdown]
# ### Did RL remove the slips?
#
# The base models were pretrained on a corpus whose carry, borrow and sign steps are wrong at `task.slip_rate`
# (notebook 00). At every such step of the eval problems' gold solutions, the cell below asks each model for its
# next character after `v op b=`, and compares the probability of the right result's first character with that of
# the slip's. A model that copied the corpus splits its mass between them; a reward-shaped one should not.
# (Notebook 04 puts the raw teacher's bridge and cold GRPO in the same table.)

# %%
# s2dlab.tutorial.slip_table: at each slip-possible step of the eval problems' gold solutions (`v op b=`, where
# the right result and the slip start with different characters), each model's next-character probabilities.
slip_shares = None  # the table of this cell (None where the task has no slips)
if tutorial.arithmetic_only(cfg, "The slip table"):
    slips = tutorial.slip_table(cfg, run, ["base_student", "base_teacher", "teacher_grpo"])
    print(f"{slips.attrs['steps']} slip-possible steps in the gold solutions of the eval problems; "
          f"task.slip_rate = {cfg.task.slip_rate}")
    slip_shares = slips.round(3)
slip_shares

# %% [markdown]
# ## 3 · C1: is the teacher reward-shaped?
#
# On-policy distillation will score the *student's* tokens with the teacher's implicit reward
# `r_t = log pT(y_t) - log pS(y_t)`. That only helps if the teacher's likelihood prefers right over wrong on the
# student's text: condition **C1**. The paper never measures it; the lab does, on one fixed set of base-student
# rollouts (`probe.c1_prompts` eval problems x `probe.c1_samples` samples, `diagnostics/c1/rollouts.jsonl`), scored
# by each teacher (`diagnostics/c1/<teacher>.parquet`). Two measures, both in the summary:
#
# - the **AUROC** of the summed implicit reward `Σ_t r_t` for correct against incorrect rollouts (0.5: no
#   information, 1: every correct rollout above every wrong one), per teacher with a bootstrap interval over
#   problems, and the **difference RL teacher minus raw teacher**, paired on the same rollouts, with its interval.
#   The verdict says "within noise" when that interval holds 0: no fixed bar on one side.
# - the mean implicit reward **at the first wrong character** of wrong rollouts against the rest of their tokens
#   (the picture, position by position, is in notebook 05).

# %%
print(S["c1"]["verdict"])
viz.c1_frame(S).drop(columns=["length-only AUROC"])  # the length-only column comes after Predict 01.c below

# %%
c1_rows = {t: run.read_rows(summary.c1_path(t)) for t in S["c1"]["teachers"]}
viz.c1_rollouts_figure(S["c1"], c1_rows)

# %% [markdown]
# ### The summed reward and length
#
# Each token's implicit reward has expectation minus a KL under the student: `E_{y_t~pS}[r_t] = -KL(pS‖pT)_t ≤ 0`
# (notebook 02b checks it). So `E[Σ_t r_t] = -Σ_t KL_t`: a longer rollout scores lower *on average, whatever its
# correctness*. If wrong rollouts are longer (or shorter) than right ones, length alone separates them, and a
# summed-reward AUROC could be length in disguise. The summary's **length-only AUROC** (the AUROC of minus the
# length, as if the score were `-length`) is that control.
#
# **Predict first.** Before running the next cell, guess: is the length-only AUROC of these rollouts "below 0.5",
# "near 0.5" (within 0.05) or "above 0.5"? Then compare it with each teacher's summed-reward AUROC in the table
# above.

# %%
# Predict 01.c: "below 0.5", "near 0.5" or "above 0.5"
my_guess_length_auroc = ...

# %%
from plotly.subplots import make_subplots

teachers = [t for t in ("base_teacher", "teacher_grpo") if c1_rows.get(t)]
fig = make_subplots(rows=1, cols=len(teachers), shared_yaxes=True, subplot_titles=teachers)
for j, t in enumerate(teachers, start=1):
    for ok, color in ((True, "#2166ac"), (False, "#b2182b")):
        pts = [r for r in c1_rows[t] if r["correct"] == ok]
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(pts))
        fig.add_trace(go.Scatter(x=[r["length"] for r in pts] + jitter, y=[r["sum_implicit_reward"] for r in pts],
                                 mode="markers", opacity=0.5,
                                 marker=dict(size=4, color=color), name="correct" if ok else "incorrect",
                                 showlegend=j == 1), row=1, col=j)
fig.update_layout(title="Summed implicit reward against length, fixed C1 rollouts (x jittered)",
                  template="plotly_white", height=380)
fig.update_xaxes(title_text="completion tokens")
fig.update_yaxes(title_text="Σ implicit reward (nats)", col=1)
length_auroc = S["c1"]["teachers"][teachers[0]]["length_auroc"]  # the same rollouts for both teachers
# None when the fixed rollouts are all wrong (or all right): no correct rollout to rank above a wrong one
lengths = {t: S["c1"]["teachers"][t]["length_auroc"] for t in teachers}
print("length-only AUROC (from the summary):", {t: "undefined" if v is None else round(v, 3) for t, v in lengths.items()})
exercises.reveal("Predict 01.c", my_guess_length_auroc, None if length_auroc is None else "near 0.5"
                 if abs(length_auroc - 0.5) <= 0.05 else "above 0.5" if length_auroc > 0.5 else "below 0.5",
                 choices=["below 0.5", "near 0.5", "above 0.5"],
                 missing="the length-only AUROC is undefined: the fixed rollouts are all wrong (or all right)")
display(viz.c1_frame(S))  # the whole C1 table, the length-only column included
fig

# %% [markdown]
# ### Your turn 01.3: an AUROC by hand
#
# Six rollouts with their summed implicit rewards and whether they were correct. The AUROC is the probability that
# a random correct rollout scores above a random incorrect one, a tie counting one half. Count the pairs.

# %%
# Your turn 01.3: one number.
scores_01 = [2.1, -0.3, 0.8, -1.5, 0.8, -0.2]
correct_01 = [True, False, True, False, False, True]
my_auroc = ...

# %%
# Check 01.3
from s2dlab import exercises

exercises.check_01_3(my_auroc)

# %% [markdown]
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. The clip never acted in stage 1. What in the set-up would have to change for it to matter, and what would it
#    then protect against?
# 2. Stage 1 raised the teacher's accuracy. Is that the same thing as C1? Could a teacher get more accurate and
#    *less* useful as a scorer of the student's rollouts?
# 3. In the slip table, where does the RL teacher's probability on slips go, compared with the base teacher's? What
#    does that predict for the implicit reward at the first wrong character of a student's slipped rollout?
#
# **Next:** `02a_forward_kl_warmup` moves the student toward the RL teacher before on-policy distillation.
