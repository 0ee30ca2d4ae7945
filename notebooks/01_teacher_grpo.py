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
# 2. grade each completion: reward `r_i` = 1 for a verified boxed answer, else 0;
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
# One claim to check rather than believe: the batch is sampled by the current policy and used for **one**
# optimizer step, so `θ_old = θ` when the loss is computed, the ratio ρ is exactly 1 at every token, and the clip
# (ε = 0.2, ε_high = 0.28) never acts. The gradient is then the plain policy gradient
# `-(1/N) Σ A_i ∇ log πθ(y_{i,t})`. The clip would act only with several updates per batch (TRL's
# `num_iterations > 1`), which neither this lab nor the paper's code uses.
#
# Section 1 does one step by hand and checks every number against a real `GRPOTrainer` step. Section 2 runs
# stage 1 (the slowest stage of the workflow). Section 3 asks what stage 1 did to the teacher *as a scorer*:
# condition C1.

# %%
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from IPython.display import HTML, display

from s2dlab import tutorial

# The settings of `s2dlab run` (s2dlab/config.py), plus these overrides. Every notebook of one run folder must
# use the same list; to experiment, put e.g. "opd.loss=sampled_token" here and pick a new RUN_DIR (WORKSHOP.md).
NOTEBOOK_OVERRIDES = {"tiny": [], "qwen3_paper": []}
# Offline settings (tiny preset), config, run folder, seeds. On a slow or busy laptop pass threads=1 (WORKSHOP.md,
# "Slow laptops").
lab = tutorial.setup(PRESET, RUN_DIR, overrides=NOTEBOOK_OVERRIDES[PRESET])
cfg, run = lab.cfg, lab.run
K, EVAL_SET = lab.k, lab.eval_set

from s2dlab import data, summary, viz  # after setup, which sets HF_HUB_OFFLINE before transformers is imported
from s2dlab.stages.lifecycle import load_stage_model, tokenizer_for

# %%
# Stage 0 (the shipped base models), evaluated: `lab.build` makes the calls of `s2dlab run`; stages already
# evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student")):
    lab.build("base_student")
print("finished stages:", lab.finished())

# %% [markdown]
# ## 1 · One GRPO step by hand
#
# ### A group
#
# The base teacher (the policy before stage 1) samples a group of G completions for one problem of 1H, at the
# temperature stage 1 samples with; each is graded, and the group's rewards become advantages.

# %%
import torch

from s2dlab.generation import sample

tok = tokenizer_for(cfg, run)
policy = load_stage_model(cfg, run, "base_teacher", tok)
sec = cfg.teacher_grpo
G = sec.num_generations
problem = data.labeled(cfg, "1h")[0]
group = sample(policy, tok, [problem], n=G, max_new_tokens=cfg.generation.max_new_tokens,
               temperature=sec.temperature if sec.temperature is not None else cfg.generation.temperature,
               top_p=cfg.generation.top_p, top_k=cfg.generation.top_k, seed=0, prompt_suffix=cfg.task.prompt_suffix,
               chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
grade = data.grade_fn(cfg)
r_G = torch.tensor([float(grade(g.completion, problem["answer"])) for g in group])
A_G = (r_G - r_G.mean()) / (r_G.std() + 1e-4)  # torch's std divides by G - 1, like TRL's nanstd
print(f"{problem['prompt']}  answer {problem['answer']}: group mean reward {r_G.mean():.3f}, std {r_G.std():.3f}"
      + ("  (a dead group: every advantage is 0)" if r_G.std() == 0 else ""))
pd.DataFrame({"completion": [g.completion for g in group], "tokens": [len(g.completion_ids) for g in group],
              "reward": r_G.numpy(), "advantage": A_G.numpy().round(3)})

# %% [markdown]
# ### Your turn 01.1: the advantages of a group
#
# A group of 8 completions where only the first one is right: rewards `[1, 0, 0, 0, 0, 0, 0, 0]`. Compute the 8
# advantages by the formula above (std with Bessel's correction, `+ 1e-4` in the denominator). Then look at your
# numbers: how does the right completion's advantage compare with the size of a wrong one's?

# %%
# Your turn 01.1: a list of 8 numbers (plain Python or numpy; torch is imported above).
rewards_01 = [1, 0, 0, 0, 0, 0, 0, 0]
my_advantages = ...

# %%
# Check 01.1
from trl.trainer.utils import nanstd  # the std TRL's GRPOTrainer uses

if my_advantages is ...:
    print("⏭ 01.1 skipped: replace the ... above with your 8 advantages, then run both cells again.")
else:
    r = torch.tensor(rewards_01, dtype=torch.float32)
    expected = (r - r.mean()) / (nanstd(r) + 1e-4)
    mine = torch.as_tensor(np.asarray(my_advantages, dtype=np.float32))
    assert mine.shape == expected.shape, f"01.1: give 8 advantages, one per completion (got shape {tuple(mine.shape)})"
    assert torch.allclose(mine, expected, atol=1e-3), (
        "01.1: not the advantages TRL computes; subtract the group mean, then divide by the std with Bessel's "
        "correction (divide by G - 1 = 7) plus 1e-4")
    print(f"✓ 01.1 correct: the right completion gets {expected[0]:+.3f}, each wrong one {expected[1]:+.3f} "
          "(as TRL's formula gives)")

# %% [markdown]
# **Predict first.** The next cells run one real `GRPOTrainer` step and then redo it by hand. Before running
# them: at every token of the batch, what is the ratio `ρ = πθ(y_t) / πθ_old(y_t)` when the loss is computed? How
# many tokens do you expect the clip at `1 - ε` / `1 + ε_high` to touch?
#
# ### One real TRL step, and every number by hand
#
# The same trainer and settings as stage 1 (`s2dlab.stages.grpo.grpo_config`), for one step, on a copy of the
# base teacher. The reward function is wrapped so that we keep what TRL sampled: the completions, their token ids
# and the problems they answer.

# %%
import copy
import dataclasses
import tempfile
from pathlib import Path

from trl import GRPOTrainer

from s2dlab.stages import grpo
from s2dlab.stages.lifecycle import quiet_progress

before = copy.deepcopy(policy)  # the policy at the start of the step (theta_old), for the checks by hand
# the task's reward function, keeping a copy of what TRL sampled and graded (`.calls`)
arithmetic_reward = tutorial.recording_reward(data.reward_fn(cfg))
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
from s2dlab.generation import format_prompt

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
cos = dot / (sum((v * v).sum() for v in mine.values()) * sum((v * v).sum() for v in theirs.values())).sqrt()
largest = max((mine[n] - theirs[n]).abs().max() for n in mine)
print(f"grad_norm by hand {grad_norm:.6f}, TRL logged {logged['grad_norm']:.6f}")
print(f"weight change by hand vs TRL's: cosine {cos:.7f}; largest difference {largest:.1e} (learning rate "
      f"{targs.learning_rate:g}: Adam's first step moves each weight by about lr x sign(gradient), so a weight whose "
      "gradient is near 0 can differ by up to lr)")
assert abs(grad_norm - logged["grad_norm"]) < 1e-4 and cos > 0.999

# %% [markdown]
# So the ratio was exactly 1 and the clip changed no token: every step of stage 1 is a plain policy-gradient
# step, and TRL's logged `clip_ratio/region_mean` is 0 at every step (the curves below show it). After the step the
# policy *has* moved; had we taken a second update on the same batch (`num_iterations = 2`), the ratio would be
# the one below, and the clip would start to act on the tokens outside `[1 - ε, 1 + ε_high]`:

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
# ## 2 · Stage 1 for real
#
# `teacher_grpo.steps` steps of the same update, then the teacher is evaluated and the fixed C1 rollouts are
# scored (section 3). This is the slowest stage of the workflow (notebooks/README.md, "Timings"); it is skipped
# when the run folder already holds it.

# %%
if any(run.eval(s) is None for s in ("base_teacher", "base_student", "teacher_grpo")):
    lab.build("teacher_grpo")
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.summary

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
                   "greedy %": f"{100 * st['greedy']:.1f}", "labels": (st.get("labels") or {}).get("n", 0),
                   "steps": st.get("steps") or 0}
pd.DataFrame(rows).T

# %% [markdown]
# ### Did RL remove the slips?
#
# The base models were pretrained on a corpus whose carry, borrow and sign steps are wrong at `task.slip_rate`
# (notebook 00). At every such step of the eval problems' gold solutions, the cell below asks each model for its
# next character after `v op b=`, and compares the probability of the right result's first character with that of
# the slip's. A model that copied the corpus splits its mass between them; a reward-shaped one should not.

# %%
import re

from s2dlab.generation import format_prompt
from s2dlab.tasks.arithmetic import slip_of

STEP = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)")
prefixes, kinds, right_ids, slip_ids = [], [], [], []
for rec in data.eval_sets(cfg)[EVAL_SET]:
    head, done = format_prompt(tok, rec["prompt"], cfg.task.prompt_suffix, data.chat_kwargs(cfg)), ""
    for line in rec["solution"].splitlines():
        m = STEP.fullmatch(line)
        slip = slip_of(int(m[1]), m[2], int(m[3])) if m else None
        if slip is not None and m[4][0] != str(slip[1])[0]:  # the two results start with different characters
            prefixes.append(tok(head + done + line[: line.index("=") + 1], add_special_tokens=False)["input_ids"])
            kinds.append(slip[0])
            right_ids.append(tok.convert_tokens_to_ids(m[4][0]))
            slip_ids.append(tok.convert_tokens_to_ids(str(slip[1])[0]))
L = max(map(len, prefixes))
ids_NL = torch.tensor([p + [tok.pad_token_id] * (L - len(p)) for p in prefixes])
attn_NL = (torch.arange(L)[None, :] < torch.tensor([len(p) for p in prefixes])[:, None]).long()
last_N = torch.tensor([len(p) - 1 for p in prefixes])
table = {}
for stage in ("base_student", "base_teacher", "teacher_grpo"):
    model = load_stage_model(cfg, run, stage, tok).eval()
    with torch.no_grad():
        logits_NLV = model(input_ids=ids_NL, attention_mask=attn_NL).logits[..., :len(tok)]
    p_NV = torch.softmax(logits_NLV[torch.arange(len(prefixes)), last_N].float(), dim=-1)
    p_right, p_slip = p_NV[torch.arange(len(prefixes)), right_ids], p_NV[torch.arange(len(prefixes)), slip_ids]
    table[stage] = {"p(right)": p_right.mean().item(), "p(slip)": p_slip.mean().item(),
                    "p(slip) / (p(right) + p(slip))": (p_slip.sum() / (p_right + p_slip).sum()).item(),
                    **{f"p(slip) at {k} steps": p_slip[torch.tensor([x == k for x in kinds])].mean().item()
                       for k in sorted(set(kinds))}}
print(f"{len(prefixes)} slip-possible steps in the gold solutions of the eval problems; "
      f"task.slip_rate = {cfg.task.slip_rate}")
pd.DataFrame(table).T.round(3)

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
viz.c1_frame(S)

# %%
c1_rows = {t: run.read_rows(summary.c1_path(t)) for t in S["c1"]["teachers"]}
viz.c1_rollouts_figure(S["c1"], c1_rows)

# %% [markdown]
# ### The summed reward and length
#
# Each token's implicit reward has expectation minus a KL under the student: `E_{y_t~pS}[r_t] = -KL(pS‖pT)_t ≤ 0`
# (notebook 02b checks it). So `E[Σ_t r_t] = -Σ_t KL_t`: a longer rollout scores lower *on average, whatever its
# correctness*. If wrong rollouts are longer (or shorter) than right ones, length alone separates them, and a
# summed-reward AUROC could be length in disguise. The summary's **length-only AUROC** (column above: the AUROC of
# minus the length) is that control.
#
# **Predict first.** Before running the next cell, guess: is the length-only AUROC of these rollouts near 0.5, well
# above, or below? Then compare it with each teacher's summed-reward AUROC in the table above.

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
print("length-only AUROC (from the summary):", {t: round(S["c1"]["teachers"][t]["length_auroc"], 3) for t in teachers})
fig

# %% [markdown]
# ### Your turn 01.2: an AUROC by hand
#
# Six rollouts with their summed implicit rewards and whether they were correct. The AUROC is the probability that
# a random correct rollout scores above a random incorrect one, a tie counting one half. Count the pairs.

# %%
# Your turn 01.2: one number.
scores_01 = [2.1, -0.3, 0.8, -1.5, 0.8, -0.2]
correct_01 = [True, False, True, False, False, True]
my_auroc = ...

# %%
# Check 01.2
from s2dlab.diagnostics import auroc

if my_auroc is ...:
    print("⏭ 01.2 skipped: replace the ... above with your AUROC, then run both cells again.")
else:
    expected = auroc(scores_01, correct_01)
    assert abs(my_auroc - expected) < 1e-6, (
        f"01.2: {my_auroc} is not the AUROC; there are 3 x 3 = 9 (correct, incorrect) pairs: count the pairs "
        "where the correct one scores higher, add one half for each tie, divide by 9")
    print(f"✓ 01.2 correct: matches s2dlab.diagnostics.auroc ({expected:.4f})")

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
