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
# # 02b · Stage 2b: on-policy distillation, its loss and its gradient by hand
#
# On-policy distillation (OPD) trains the student on **its own samples**, scored token by token by the frozen
# teacher. For a student rollout `y ~ pS(.|x)`, at each position `t` (docs/DESIGN.md, "Sign conventions"):
#
# | quantity | definition | sign |
# |---|---|---|
# | implicit reward | `r_t = log pT(y_t) - log pS(y_t)` | > 0: the teacher likes the student's token more than the student does |
# | reverse KL | `KL(pS‖pT)_t = Σ_v pS(v) (log pS(v) - log pT(v))` | ≥ 0, what OPD minimises |
# | forward KL | `KL(pT‖pS)_t = Σ_v pT(v) (log pT(v) - log pS(v))` | ≥ 0, what the warmup minimised |
#
# They meet in one identity: **`E_{y_t ~ pS}[-r_t] = KL(pS‖pT)_t`**. Two losses use it (`opd.loss`):
#
# - `full_reverse_kl` (default): `Σ_t KL(pS‖pT)_t` over the full vocabulary at every sampled position (TRL's
#   `DistillationTrainer` with `beta=1`);
# - `sampled_token`: `-Σ_t A_t log pS(y_t)` with the advantage `A_t = r_t` held fixed, the score-function (REINFORCE)
#   form, which needs only the sampled token's log-probabilities.
#
# Their gradients agree in expectation: `E_{y~pS}[-A ∇ log pS(y)] = ∇ KL(pS‖pT)` (checked below with autograd). So
# minimising the reverse KL on the student's own samples *is* reinforcement learning with a dense reward, in a
# precise and limited sense: **per token, with discount 0**. Each token is credited with its own reward `r_t`
# only, never with the rewards of the tokens after it, and the prefixes the student visits are treated as fixed:
# the loss differentiates through each position's distribution, not through which positions the sampling reached.
# A sequence-level RL objective with these rewards would credit token `t` with `Σ_{t' ≥ t} r_{t'}` (discount 1). One
# step is a local, trust-region-like move at the current student (the paper's own caveat), not global optimisation
# of the sparse reward.
#
# Here the RL teacher of stage 1 scores a student that starts from the warmup; one rollout per prompt on the tiny
# preset (`opd.rollouts_per_prompt`; the paper uses 8).

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
# Stages 0-2a (if missing) and OPD, each evaluated: `lab.build` makes the calls of `s2dlab run`; stages already
# evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd")):
    lab.build("opd")
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary

# %% [markdown]
# ## The implicit reward, by hand
#
# One rollout of the student after OPD, the RL teacher, and nothing but `torch`: run each model over prompt +
# completion, take log-softmax, read off the log-probability of each sampled token. The logits at position `j`
# predict token `j+1`, so the completion's tokens are predicted from the positions just before them.

# %%
import torch

from s2dlab.core.generation import sample

tok = tokenizer_for(cfg, run)
teacher = load_stage_model(cfg, run, "teacher_grpo", tok).eval()
student = load_stage_model(cfg, run, "opd", tok).eval()
problem = data.eval_sets(cfg)[EVAL_SET][1]
r = sample(student, tok, [problem], n=1, max_new_tokens=cfg.generation.max_new_tokens, seed=0,
           prompt_suffix=cfg.task.prompt_suffix, chat_template_kwargs=data.chat_kwargs(cfg), progress=False)[0]

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
# The same rollout through `s2dlab.core.scoring.score_rollouts` (the code that writes every snapshot in the run store,
# chunked so memory does not grow with vocabulary x length) must agree to float precision:

# %%
from s2dlab.core.scoring import score_rollouts

row = score_rollouts(student, teacher, tok, [r], grade_fn=data.grade_fn(cfg),
                     answers={problem["id"]: problem["answer"]})[0]
atol = 1e-4 if cfg.models.dtype == "float32" else 5e-2  # bf16 forward passes differ in the last bits
np.testing.assert_allclose(implicit_reward.numpy(), row["implicit_reward"], atol=atol)
np.testing.assert_allclose(reverse_kl.numpy(), row["reverse_kl"], atol=atol)
print("by hand == s2dlab.core.scoring: implicit reward and reverse KL agree at every token")
pd.DataFrame({"token": row["tokens"], "pS(y_t)": np.exp(row["student_logprob"]),
              "pT(y_t)": np.exp(row["teacher_logprob"]), "implicit reward": row["implicit_reward"],
              "reverse KL": row["reverse_kl"]}).round(4).T

# %% [markdown]
# ## The identity `E[-r] = KL`, and how noisy one sample is
#
# **Predict first.** At the position where the two models disagree most, one sampled token gives the one-sample
# estimate `-r` of the reverse KL. Can that estimate be negative ("yes" or "no")? How many samples N would you need
# for the estimate's sd to be within 10% of the exact KL (a number; right within a factor of 2)?
#
# The cell after your guess draws tokens from the student's distribution at that position: for each sample size N,
# 200 independent estimates (each the mean of `-r` over N draws), drawn as their mean with a band of ± 1 sd and the
# 5-95% range.

# %%
# Predict 02b.a: "yes" or "no", and a number of samples
my_guess_negative = ...
my_guess_samples = ...

# %%
from plotly.subplots import make_subplots

from s2dlab import exercises

pos = int(reverse_kl.argmax())
lpS, lpT = logp_S[pos].cpu(), logp_T[pos].cpu()
exact = reverse_kl[pos].item()
gen = torch.Generator().manual_seed(0)
sizes, repeats = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096], 200
est = {n: -(lpT - lpS)[torch.multinomial(lpS.exp(), n * repeats, replacement=True, generator=gen)].view(repeats, n)
       .mean(1) for n in sizes}
mean = np.array([est[n].mean().item() for n in sizes])
sd = np.array([est[n].std().item() for n in sizes])
q05, q95 = (np.array([est[n].quantile(q).item() for n in sizes]) for q in (0.05, 0.95))
single = est[1]
print(f"position {pos} (token {row['tokens'][pos]!r}): exact KL(pS||pT) = {exact:.4f}; one sample: mean "
      f"{single.mean():.4f}, sd {single.std():.4f}, {(single < 0).float().mean():.0%} of single estimates negative; "
      f"N = {sizes[-1]}: {mean[-1]:.4f} ± {sd[-1]:.4f}")
fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                    subplot_titles=("Monte Carlo estimate of E[-r] against N", "one sample: the values of -r"))
for lo, hi, name, alpha in ((q05, q95, "5-95% of estimates", 0.15), (mean - sd, mean + sd, "± 1 sd", 0.3)):
    fig.add_trace(go.Scatter(x=sizes + sizes[::-1], y=list(hi) + list(lo[::-1]), fill="toself", name=name,
                             line=dict(width=0), fillcolor=f"rgba(106,81,163,{alpha})"), row=1, col=1)
fig.add_trace(go.Scatter(x=sizes, y=mean, mode="lines+markers", name="mean of estimates",
                         line=dict(color="#6a51a3")), row=1, col=1)
fig.add_trace(go.Scatter(x=[sizes[0], sizes[-1]], y=[exact, exact], mode="lines", name="exact KL(pS‖pT)",
                         line=dict(color="black", dash="dot")), row=1, col=1)
fig.add_trace(go.Histogram(x=single.numpy(), nbinsx=40, name="single -r", marker_color="#969696"), row=1, col=2)
fig.update_xaxes(type="log", title_text="samples N", row=1, col=1)
fig.update_xaxes(title_text="-r = log pS(y) - log pT(y)", row=1, col=2)
fig.update_layout(template="plotly_white", height=380, legend=dict(orientation="h", y=-0.25))
# the samples needed for sd <= 10% of the exact KL: sd falls as 1 / sqrt(N), so N = (sd of one sample / 0.1 KL)^2
needed = int(np.ceil((single.std().item() / (0.1 * exact)) ** 2))
exercises.reveal("Predict 02b.a (can -r be negative?)", my_guess_negative,
                 "yes" if (single < 0).any() else "no", choices=["yes", "no"])
exercises.reveal("Predict 02b.a (samples for 10%)", my_guess_samples, needed, factor=2)
fig

# %% [markdown]
# ## The two losses and their gradients, checked with autograd
#
# At the same position, with the student's logits `z` as the variable:
#
# - the full-vocabulary loss `L_full(z) = KL(pS‖pT) = Σ_v pS(v) (log pS(v) - log pT(v))`;
# - the sampled-token loss for a token `y`, `L_y(z) = -A_y log pS(y)` with `A_y = log pT(y) - log pS(y)` detached
#   (as `s2dlab.workflow.stages.opd` computes it for `opd.loss=sampled_token`).
#
# The score-function identity says `Σ_y pS(y) ∇L_y = ∇L_full`: the sampled-token gradient is unbiased. Below, both
# sides by autograd (one backward pass per token of the vocabulary), and the closed form
# `∇L_full = pS ⊙ (log pS - log pT - KL)`; then the library's per-token numbers (`s2dlab.instruments.estimators`) for the token
# the student actually sampled.
#
# The table of sampled-token gradients is V x V and takes V backward passes: nothing on the tiny vocabulary, 92 GB
# for Qwen3's 151,669 tokens. There the cell works on a slice (`tutorial.vocab_slice`): the student's 1,024 likeliest
# tokens at this position, the sampled one among them, both distributions renormalised over the slice, on which
# the identities hold just as exactly.

# %%
from s2dlab.instruments.estimators import token_estimators

# the vocabulary, or a slice of it when it is large (W = V on the tiny preset: nothing is cut or renormalised)
kept, lpS_w, lpT_w, yy, mass = tutorial.vocab_slice(lpS, lpT, int(y[pos]), width=1024)
W = len(kept)
exact_w = exact if W == V else float((lpS_w.exp() * (lpS_w - lpT_w)).sum())  # KL(pS||pT) on the slice
if W < V:
    print(f"V = {V:,}: a slice of the student's {W:,} likeliest tokens, holding {mass[0]:.1%} of its mass and "
          f"{mass[1]:.1%} of the teacher's, renormalised; KL(pS||pT) {exact_w:.4f} on it, {exact:.4f} on all of V")
z = lpS_w.clone().requires_grad_(True)  # log-probs work as logits: softmax(log p) = p
logq = z.log_softmax(-1)
(g_full,) = torch.autograd.grad((logq.exp() * (logq - lpT_w)).sum(), z)
g_sampled = torch.zeros(W, W)  # row y: the gradient of the sampled-token loss when y is the sampled token
for v in range(W):
    logq = z.log_softmax(-1)
    A = (lpT_w[v] - logq[v]).detach()  # the implicit reward, held fixed
    (g_sampled[v],) = torch.autograd.grad(-A * logq[v], z)
pS = lpS_w.exp()
expected = (pS[:, None] * g_sampled).sum(0)  # E_{y ~ pS}[grad L_y]
closed = pS * (lpS_w - lpT_w - exact_w)
assert torch.allclose(expected, g_full, atol=1e-6) and torch.allclose(closed, g_full, atol=1e-6)
print(f"E_y[grad of the sampled-token loss] == grad of the full reverse KL (largest difference "
      f"{(expected - g_full).abs().max():.1e}); closed form agrees ({(closed - g_full).abs().max():.1e})")
lib = token_estimators(lpS_w[None], lpT_w[None], torch.tensor([yy]))  # yy: the sampled token's index in the slice
assert abs(lib["grad_exact_at_token"].item() - g_full[yy].item()) < 1e-5
assert abs(lib["grad_sampled_at_token"].item() - g_sampled[yy, yy].item()) < 1e-5
print(f"the sampled token {row['tokens'][pos]!r}: d/dz_y of the full loss {g_full[yy]:+.5f}, of its sampled-token "
      f"loss {g_sampled[yy, yy]:+.5f} (s2dlab.instruments.estimators: {lib['grad_exact_at_token'].item():+.5f}, "
      f"{lib['grad_sampled_at_token'].item():+.5f}); cosine of the two gradients {lib['grad_cosine'].item():+.3f}")

# %% [markdown]
# Unbiased, but one sample is a noisy direction. The relative error `‖ĝ_N - ∇L_full‖ / ‖∇L_full‖` of the average of N
# sampled-token gradients, over 200 repeats per N (band: 5-95%), and the cosine between one sample's gradient and
# the exact one:

# %%
draws = torch.multinomial(pS, sizes[-1] * repeats, replacement=True, generator=gen).view(repeats, sizes[-1])
rel = {}
for n in sizes:  # the mean of n sampled gradients = (token counts / n) @ the gradient of each token
    counts_RV = torch.zeros(repeats, W).scatter_add_(1, draws[:, :n], torch.ones(repeats, n))
    rel[n] = ((counts_RV / n) @ g_sampled - g_full).norm(dim=-1) / g_full.norm()
cos_one = torch.nn.functional.cosine_similarity(g_sampled[draws[:, 0]], g_full[None], dim=-1)
fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                    subplot_titles=("relative error of the averaged sampled-token gradient",
                                    "one sample: cosine with the exact gradient"))
lo, hi = (np.array([rel[n].quantile(q).item() for n in sizes]) for q in (0.05, 0.95))
fig.add_trace(go.Scatter(x=sizes + sizes[::-1], y=list(hi) + list(lo[::-1]), fill="toself", name="5-95%",
                         line=dict(width=0), fillcolor="rgba(33,102,172,0.2)"), row=1, col=1)
fig.add_trace(go.Scatter(x=sizes, y=[rel[n].median().item() for n in sizes], mode="lines+markers", name="median",
                         line=dict(color="#2166ac")), row=1, col=1)
fig.add_trace(go.Histogram(x=cos_one.numpy(), nbinsx=40, name="cosine", marker_color="#969696"), row=1, col=2)
fig.update_xaxes(type="log", title_text="samples N", row=1, col=1)
fig.update_yaxes(type="log", row=1, col=1)
fig.update_layout(template="plotly_white", height=360, legend=dict(orientation="h", y=-0.25))
print(f"relative error, median over repeats: N=1 {rel[1].median():.2f}, N=64 {rel[64].median():.2f}, "
      f"N={sizes[-1]} {rel[sizes[-1]].median():.3f}; one sample's cosine: median {cos_one.median():+.2f}")
fig

# %% [markdown]
# ### Your turn 02b.1: the identity on three tokens
#
# A student `pS = [0.6, 0.3, 0.1]` and a teacher `pT = [0.1, 0.6, 0.3]`. Compute the implicit reward of each of the
# three tokens, the expectation of `-r` when the student samples, and the reverse KL `KL(pS‖pT)` (natural logs).

# %%
# Your turn 02b.1: a list of 3 rewards and two numbers.
p_s = np.array([0.6, 0.3, 0.1])
p_t = np.array([0.1, 0.6, 0.3])
my_rewards = ...
my_expected_minus_r = ...
my_reverse_kl = ...

# %%
# Check 02b.1
from s2dlab import exercises

exercises.check_02b_1(my_rewards, my_expected_minus_r, my_reverse_kl)

# %% [markdown]
# ### Your turn 02b.2: one sampled-token gradient
#
# Same `pS` and `pT`. The student sampled token 1. Write the gradient of the sampled-token loss
# `-A log pS(y)` (A fixed) with respect to the three logits. Hint: `∂ log pS(y) / ∂z = onehot(y) - pS`.

# %%
# Your turn 02b.2: a list of 3 numbers.
my_gradient = ...

# %%
# Check 02b.2
from s2dlab import exercises

exercises.check_02b_2(my_gradient)

# %% [markdown]
# ## OPD, written by you
#
# Everything so far was one position. OPD is a loop over batches of the student's own rollouts:
#
# 1. **sample**: the current student writes one completion for each prompt of a batch, at temperature 1;
# 2. **score with the teacher**: the frozen teacher reads prompt + completion and gives its next-token distribution
#    at every completion position (no labels, no grader);
# 3. **loss**: the reverse KL `KL(pS‖pT)` at every position, averaged over the real completion tokens of the batch;
# 4. **step**: backward, one optimizer step.
#
# ### Your turn 02b.3: the loss
#
# `logp_S` and `logp_T` are `[B, C, V]` log-probabilities, row `t` of each the distribution over completion token
# `t` (the student's with gradient, the teacher's without); `mask` is `[B, C]`, 1 on real completion tokens and 0
# on padding. Return the mean over the real tokens of `KL(pS‖pT)` at each position, as a torch scalar that
# `.backward()` can train on.

# %%
# Your turn 02b.3: the loss. Replace the ... with its body.
def my_opd_loss(logp_S, logp_T, mask):
    ...

# %%
# Check 02b.3 (its value and its gradient on a fixed batch with padding)
from s2dlab import exercises

exercises.check_02b_3(my_opd_loss)

# %% [markdown]
# ### Your turn 02b.4: the loop
#
# Train a fresh copy of the warmed-up student (where the library's stage starts) for `OPD_STEPS` steps, with the
# stage's batch size and learning rate, on the bridge's label-free prompts (1H), and append each step's loss to
# `my_losses`. The pieces, all in scope: `sample(model, tok, records, n=1, temperature=1.0, seed=step, **gen)`
# returns rollouts; `tutorial.rollout_batch(rollouts, tok.pad_token_id)` lays them out as one batch
# `(ids_BL, attention_BL, P, mask_BC)`, prompts padded on the left, so that
# `model(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :V]` lines up with the completions
# (take `log_softmax(-1)` in float32); `my_opd_loss` from 02b.3. Put the model in `.eval()` to sample and `.train()`
# for the loss; clip the gradient norm at 1.0 before the step, as the library's trainer does. About 15 lines; the
# 100 steps, as many as the library's stage, take about 20 seconds on two cores.

# %%
OPD_STEPS = 100  # as many as the library's stage on the tiny preset (cfg.opd.steps), so the curves compare whole
prompts = data.prompt_set(cfg, "1h")  # the bridge's label-free prompts (the library's OPD samples the same set)
gen = dict(max_new_tokens=cfg.generation.max_new_tokens, prompt_suffix=cfg.task.prompt_suffix,
           chat_template_kwargs=data.chat_kwargs(cfg), progress=False)
library_losses = pd.DataFrame(run.metrics("opd")).dropna(subset=["loss"]).sort_values("step")["loss"].tolist()
# for the check: fixed rollouts of the starting student on 64 eval problems, on which it compares the reverse KL of
# the student you train with the starting one's, token by token
start_student = load_stage_model(cfg, run, "fkl_warmup", tok).eval()
probe_rollouts = sample(start_student, tok, data.eval_sets(cfg)[EVAL_SET][:64], n=2, temperature=1.0, seed=12345,
                        **gen)
print(f"{len(prompts)} prompts; batch {cfg.opd.batch_size}, learning rate {cfg.opd.learning_rate:g}; the library's "
      f"stage logged {len(library_losses)} losses, the first {OPD_STEPS} averaging "
      f"{np.mean(library_losses[:OPD_STEPS]):.4f} nats/token")

# %%
# Your turn 02b.4: the loop. Replace the ... (about 15 lines).
my_student = load_stage_model(cfg, run, "fkl_warmup", tok)  # where the library's OPD starts
optimizer = torch.optim.AdamW(my_student.parameters(), lr=cfg.opd.learning_rate, weight_decay=0.0)
rng = np.random.default_rng(cfg.seed)
my_losses = []
for step in range(OPD_STEPS):
    batch = [prompts[i] for i in rng.choice(len(prompts), cfg.opd.batch_size, replace=False)]
    ...

# %%
# Check 02b.4 (your losses against the library stage's; your student against the starting one on fixed rollouts)
from s2dlab import exercises

exercises.check_02b_4(my_losses, my_student, library_losses, OPD_STEPS, start_student, teacher, probe_rollouts)

# %% [markdown]
# Your loop against the library's stage (`s2dlab.workflow.stages.opd`: TRL's `DistillationTrainer` with `beta=1`), from the
# same student, with the same teacher, batch size, learning rate and seed. The batches differ (TRL draws its own
# prompts and samples with its own generator), so the curves are two draws of the same process: the same level and
# the same trend, not the same points.

# %%
fig = go.Figure()
fig.add_trace(go.Scatter(x=list(range(1, len(library_losses) + 1)), y=library_losses, mode="lines",
                         name="library stage (opd/metrics.jsonl)", line=dict(color="#999")))
if len(my_losses):
    fig.add_trace(go.Scatter(x=list(range(1, len(my_losses) + 1)), y=my_losses, mode="lines+markers",
                             name="your loop", line=dict(color="#b2182b")))
fig.update_layout(title="OPD loss: mean reverse KL(pS‖pT) per completion token, each step's batch",
                  xaxis_title="optimizer step", yaxis_title="nats/token", template="plotly_white", height=360)
fig

# %% [markdown]
# ### Change X, predict, observe: the learning rate of your loop
#
# Rerun your loop (the `my_...` names of 02b.4) with the learning rate times `LR_X` for the same `OPD_STEPS` steps
# (about 20 seconds). Predict the mean loss of its last 10 steps (nats/token; right within 25%), then run the two
# cells below.

# %%
LR_X = 5  # X: try 0.2, 5, 20
# Predict 02b.b: the mean loss of the last 10 steps at LR_X times the learning rate
my_guess_02b_b = ...

# %%
if len(my_losses) == OPD_STEPS:  # after your loop ran
    losses_base = list(my_losses)
    my_student = load_stage_model(cfg, run, "fkl_warmup", tok)
    optimizer = torch.optim.AdamW(my_student.parameters(), lr=cfg.opd.learning_rate * LR_X, weight_decay=0.0)
    rng, my_losses = np.random.default_rng(cfg.seed), []
    for step in range(OPD_STEPS):  # your loop's body, at the new rate
        batch = [prompts[i] for i in rng.choice(len(prompts), cfg.opd.batch_size, replace=False)]
        my_student.eval()
        rollouts = sample(my_student, tok, batch, n=1, temperature=1.0, seed=step, **gen)
        ids_BL, attention_BL, P_b, mask_BC = tutorial.rollout_batch(rollouts, tok.pad_token_id)
        with torch.no_grad():
            lT = teacher(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P_b - 1:-1, :V].float().log_softmax(-1)
        my_student.train()
        lS = my_student(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P_b - 1:-1, :V].float().log_softmax(-1)
        loss = my_opd_loss(lS, lT, mask_BC)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(my_student.parameters(), 1.0)
        optimizer.step()
        my_losses.append(loss.item())
    losses_x, my_losses = my_losses, losses_base
    print(f"last 10 steps: {np.mean(losses_base[-10:]):.4f} at the stage's rate, {np.mean(losses_x[-10:]):.4f} at "
          f"{LR_X} x")
    exercises.reveal("Predict 02b.b", my_guess_02b_b, float(np.mean(losses_x[-10:])), rel=0.25)
    display(go.Figure([go.Scatter(y=losses_base, name="1 x"), go.Scatter(y=losses_x, name=f"{LR_X} x")]).update_layout(
        title="your loop at two learning rates", xaxis_title="step", yaxis_title="nats/token",
        template="plotly_white", height=320))
else:
    print("write the loop of 02b.4 first: this cell reruns it at another learning rate")

# %% [markdown]
# ## The two directions of the KL, in one dimension
#
# **Predict first.** A target with two well-separated modes (at -2.5 and +2.5), and a model that can only be one
# Gaussian. Fit it twice: by the forward KL `KL(p‖q)` (the warmup's direction, the target as `p`) and by the
# reverse KL `KL(q‖p)` (OPD's direction, an expectation over the model's own samples). Where does each fit sit,
# "between the modes" or "on one mode"?
#
# Both are computed on a grid and minimised with Adam from the same start (`tutorial.fit_gaussian`).

# %%
# Predict 02b.c: for each direction, "between the modes" or "on one mode"
my_guess_forward_fit = ...
my_guess_reverse_fit = ...

# %%
grid = torch.linspace(-6, 6, 1201)
dx = grid[1] - grid[0]
target = 0.5 * torch.exp(-0.5 * ((grid + 2.5) / 0.5) ** 2) + 0.5 * torch.exp(-0.5 * ((grid - 2.5) / 0.5) ** 2)
target = target / (target.sum() * dx)  # a density on the grid
START_LOG_SD = 0.0  # the fits start at mean 0.5, sd exp(0) = 1
fits = {d: tutorial.fit_gaussian(grid, target, d, mu=0.5, log_sd=START_LOG_SD) for d in ("forward", "reverse")}
# "on one mode": the fit's mean within 0.5 of a mode's and its spread narrower than the gap between the modes
where = {d: "on one mode" if abs(abs(f["mean"]) - 2.5) < 0.5 and f["spread"] < 1.0 else "between the modes"
         for d, f in fits.items()}

fig = go.Figure(go.Scatter(x=grid, y=target, name="target p (two modes)", line=dict(color="black", width=3)))
for (d, f), color in zip(fits.items(), ("#2166ac", "#b2182b")):
    label = "forward KL(p‖q)" if d == "forward" else "reverse KL(q‖p)"
    fig.add_trace(go.Scatter(x=grid, y=f["q"], name=f"{label}: mean {f['mean']:+.2f}, sd {f['spread']:.2f}, KL "
                                                    f"{f['kl']:.3f} nats", line=dict(color=color)))
target_mean = float((grid * target).sum() * dx)
print(f"the target: mean {target_mean:+.2f}, sd {float((((grid - target_mean) ** 2 * target).sum() * dx).sqrt()):.2f}")
fig.update_layout(title="One Gaussian fitted to a two-mode target, both ways", template="plotly_white", height=360,
                  legend=dict(orientation="h", y=-0.2))
exercises.reveal("Predict 02b.c (forward)", my_guess_forward_fit, where["forward"],
                 choices=["between the modes", "on one mode"])
exercises.reveal("Predict 02b.c (reverse)", my_guess_reverse_fit, where["reverse"],
                 choices=["between the modes", "on one mode"])
fig

# %% [markdown]
# The forward KL pays wherever the target has mass and the model has little, so it spreads over both modes (here it
# lands on the moment match: the target's mean and spread): it is **mode covering**. The reverse KL is an
# expectation over the *model's* samples; it pays where the model puts mass and the target has little, so it
# settles on one mode: **mode seeking**. For distillation: the warmup (forward) makes the student cover what the
# teacher writes; OPD (reverse) sharpens the student on the modes it already reaches, which is why it needs the
# student to start close (C2).
#
# ### Change X, predict, observe: where the reverse fit starts
#
# The reverse KL only sees where the model already puts mass. Start it wider: set `START_LOG_SD_X` (log of the
# starting sd; 0.0 was sd 1, try 1.0 for sd 2.7, or 2.0), predict where the reverse fit ends, and run (seconds).

# %%
START_LOG_SD_X = 1.0  # X
# Predict 02b.d: "between the modes" or "on one mode"
my_guess_02b_d = ...

# %%
fit_x = tutorial.fit_gaussian(grid, target, "reverse", mu=0.5, log_sd=START_LOG_SD_X)
print(f"reverse KL fit from sd {np.exp(START_LOG_SD_X):.2f}: mean {fit_x['mean']:+.2f}, sd {fit_x['spread']:.2f}, KL "
      f"{fit_x['kl']:.3f} nats (from sd 1: mean {fits['reverse']['mean']:+.2f}, KL {fits['reverse']['kl']:.3f})")
where_x = "on one mode" if abs(abs(fit_x["mean"]) - 2.5) < 0.5 and fit_x["spread"] < 1.0 else "between the modes"
exercises.reveal("Predict 02b.d", my_guess_02b_d, where_x, choices=["between the modes", "on one mode"])
go.Figure([go.Scatter(x=grid, y=target, name="target", line=dict(color="black", width=3)),
           go.Scatter(x=grid, y=fit_x["q"], name=f"reverse fit from sd {np.exp(START_LOG_SD_X):.2f}")]).update_layout(
    template="plotly_white", height=300)

# %% [markdown]
# A start much wider than the modes can stall on a wide fit between them: the gradient of the reverse KL is an
# average over the model's own mass, which sits on both modes and the gap alike. That is a local method: it
# improves on where it starts, which is the point of the warmup.
#
# ## OPD's snapshots: the token heatmap
#
# The dashboard's renderer (`s2dlab.views.viz.rollout_heatmap_html`, byte-safe display spans from the row): each token
# coloured by its implicit reward (red: the teacher likes the token less than the student does), every per-token
# number and both models' top alternatives on hover. Probe rollouts at the first and the last OPD snapshot:

# %%
steps_opd = run.rollout_steps("opd")
first, last = (run.rollouts("opd", s) for s in (steps_opd[0], steps_opd[-1]))
vocab = viz.vocab_from_rows(pd.concat([first, last]))
vmax = viz.heatmap_vmax([rr for df in (first, last) for _, rr in df[df["policy"] == "student"].head(3).iterrows()])
for label, df in (("start of OPD", first), ("end of OPD", last)):
    for _, rr in df[df["policy"] == "student"].head(3).iterrows():
        title = (f"{label}, step {rr['step']}: {rr['prompt']}  (correct: {rr['correct']}, summed implicit reward "
                 f"{rr['sum_implicit_reward']:+.2f})")
        display(HTML(viz.rollout_heatmap_html(rr, title=title, id_to_text=vocab, vmax=vmax)))

# %% [markdown]
# ## The reverse KL over the warmup and OPD
#
# `probe/mean_reverse_kl` is measured at every probe snapshot (16 fixed problems, fresh student samples) across
# the warmup and OPD, end to end. C2 for OPD, from the summary: the reverse KL on the fixed problems before OPD
# (the warmed-up student's rollouts) and after it, with the interval of the change.

# %%
viz.stage_curves_figure(run, metrics=["probe/mean_reverse_kl", "probe/mean_implicit_reward", "probe/accuracy"],
                        stages=["fkl_warmup", "opd"])

# %%
pair = next(p for p in S["c2"]["pairs"] if p["stage"] == "opd")
print(next((line for line in S["c2"]["verdict"].splitlines() if line.startswith("C2 (opd)")), "not measured"))
display(viz.c2_pair_figure(pair, run.read_rows(pair["before_file"]), run.read_rows(pair["after_file"])))
rows_acc = {}
for stage in ("base_student", "fkl_warmup", "opd", "teacher_grpo"):
    st = S["stages"][stage]
    lo, hi = st["interval"]["ci"]
    rows_acc[stage] = {f"avg@{K} % [95% CI]": f"{100 * st['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                       "greedy %": viz.greedy_text(st["greedy"]), "labels used by the stage":
                       (st.get("labels") or {}).get("n", 0)}
pd.DataFrame(rows_acc).T

# %% [markdown]
# ## Provoke C2: a student far from the teacher
#
# Everything above started from a student *close* to the teacher: both were pretrained on the same corpus, so the
# student writes what the teacher would write and the dense reward only has to fix its slips. The tiny preset ships
# two more students, trained the same way on the same problems written in other layouts (`base.student`, README
# "A student far from the teacher"). The far one writes only the operation and its result after the first step
# (`3-7=-4`, `-6=-10`, `+8=-2`): about as accurate as the close one, but a text the teacher never learned to write.
#
# Below, the RL teacher of this run distils into the far student in a run folder of its own: OPD straight from the
# base student (the `bridge_no_warmup` arm), then the warmup and OPD (the workflow), each for `FAR_STEPS` steps
# (about two minutes in all on a laptop). Every OPD step logs the signal it trains on: the implicit reward's
# variance over the step's tokens (`opd/implicit_reward_var`), the exact reverse KL (`opd/reverse_kl`) and the
# share of the loss carried by the top 1% of tokens (`opd/top1pct_loss_share`).

# %%
# Predict 02b.e: from the far student, does OPD without the warmup end "above" or "below" the base student's accuracy?
my_guess_02b_e = ...

# %%
FAR_STEPS = 40
if cfg.task.name != "arithmetic":
    print(f"The students at graded distance exist for the tiny preset's arithmetic task (task.name={cfg.task.name}); "
          "on this preset, measure the distance of your own pair with `s2dlab check` instead.")
else:
    from s2dlab.core.config import load_config

    far_overrides = [*NOTEBOOK_OVERRIDES[PRESET], "base.student=far", f"fkl_warmup.steps={FAR_STEPS}",
                     f"opd.steps={FAR_STEPS}"]
    far_dir = run.path.with_name(run.path.name + "_far")
    if not (far_dir / "run.json").exists():  # the RL teacher trained above comes along; nothing else is shared
        far_cfg = load_config(PRESET, overrides=[*far_overrides, *tutorial.env_overrides()])  # as setup makes it
        tutorial.copy_stages(run, far_dir, ["base_teacher", "teacher_grpo"], config=far_cfg.to_dict())
    far = tutorial.setup(PRESET, far_dir, overrides=far_overrides, verbose=False)
    far.build_arm("bridge_no_warmup")
    far.build("opd")
    S_far = summary.read_summary(far.run.path)
    acc = {stage: S_far["stages"][stage]["accuracy"] for stage in ("base_student", "no_warmup.opd", "fkl_warmup", "opd")}
    for stage, a in acc.items():
        print(f"{stage:>14}: avg@{K} {100 * a:.1f}%")
    c2 = S_far["c2"]["start"].get("teacher_grpo") or {}
    if c2:
        print(f"C2 of the far student to the RL teacher: {c2['mean']:.2f} nats/token (the close one's is in the C2 line above)")
    display(viz.stage_curves_figure(far.run, metrics=["opd/implicit_reward_var", "opd/reverse_kl",
                                                      "opd/top1pct_loss_share"], stages=["no_warmup.opd", "opd"]))

# %%
if cfg.task.name == "arithmetic":
    exercises.reveal("Predict 02b.e", my_guess_02b_e,
                     "below" if acc["no_warmup.opd"] < acc["base_student"] else "above", choices=["above", "below"])

# %% [markdown]
# What to see. Far from the teacher the implicit reward's variance is many times the close student's (compare the
# curves of this notebook's `opd` stage), as the paper's account of a C2 failure says; but no few tokens dominate
# the loss: its top 1% carries a small share, because the far student's loss is spread over every line its layout
# writes differently. OPD alone moves the student's mass among the characters it already writes, towards the one
# the teacher dislikes least, and the accuracy falls (README, "The mechanism, measured": the gradient of the reverse
# KL at a token is proportional to the student's own probability of it, so a token the student never writes gets no
# push). The warmup's forward KL is the gradient that raises a token the student gives no mass: with it, OPD starts
# closer and ends far above OPD alone. That is C2, provoked: the dense reward helps only a student near the teacher.

# %% [markdown]
# No labels were used by the warmup or by OPD: the teacher's log-probabilities were the only signal.
#
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. The sampled-token loss is unbiased. Why does the default use the full-vocabulary loss anyway, and when would
#    you have to use the sampled one?
# 2. "OPD is RL with a dense reward, discount 0." What does a token *not* get credit for, and why might that be
#    fine for distillation but not for sparse-reward RL?
# 3. With the one-dimensional picture in mind: what would OPD do from a student that sits on a mode the teacher
#    does not have?
#
# **Next:** `03_student_grpo`: sparse-reward RL on the distilled student, with the held-out labels.
