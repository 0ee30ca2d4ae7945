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
# # 02a · Stage 2a: the forward-KL warmup, and C2 (is the teacher close?)
#
# On-policy distillation (stage 2b) scores tokens *the student samples*. If the student is far from the teacher, it
# samples text the teacher would never write, and the teacher's log-probabilities there are a poor, high-variance
# signal (the paper's account of C2 failing). Condition **C2** asks that the student already be close to the teacher
# on the student's own text.
#
# The warmup gets it there with the **forward KL** on the teacher's own prefixes, against the teacher's next-token
# distributions, which are computed once and cached (the paper's stage 2a; `s2dlab.workflow.stages.fkl_warmup`):
#
# $$L_{2a} = \mathbb{E}_{s \sim d_{p_T}} \mathrm{KL}\big(p_T(\cdot|s)\,\|\,p_S(\cdot|s)\big) = \mathbb{E}_{s}\sum_v p_T(v|s)\big(\log p_T(v|s) - \log p_S(v|s)\big)$$
#
# 1. the RL teacher samples `fkl_warmup.rollouts_per_prompt` completions for every prompt of 1H (prompts only: no
#    answers are used);
# 2. its full next-token distribution at every position of those rollouts is cached;
# 3. the student minimises the forward KL against the cache.
#
# The paper has a separate arm that trains on the teacher's *sampled tokens* instead, with plain cross-entropy:
# "teacher-sample SFT" (`fkl_warmup.loss=sampled`, the `bridge_no_opd` arm). How the two losses relate is the first
# prediction of this notebook.
#
# C2 is then measured the other way round: the per-token **reverse** KL `KL(pS‖pT)` on the student's own samples,
# before and after the warmup.

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
# Stages 0-1 (if missing) and the warmup, each evaluated: `lab.build` makes the calls of `s2dlab run`; stages
# already evaluated are left as they are.
if any(run.eval(s) is None for s in ("base_teacher", "base_student", "teacher_grpo", "fkl_warmup")):
    lab.build("fkl_warmup")
print("finished stages:", lab.finished())
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary

# %% [markdown]
# ## The teacher's rollouts and its cached distributions
#
# Only rollouts that ended on their own are used (`fkl_warmup.only_correct=true` would also drop the wrong ones,
# which uses labels; off by default, as in the paper). They are not all correct: the student learns the teacher's
# *distribution*, its remaining mistakes included.

# %%
import torch

from s2dlab.workflow.stages import fkl_warmup

info = run.read_json("fkl_warmup/stage.json")
sampled = data.read_jsonl(run.stage_dir("fkl_warmup") / "teacher_rollouts.jsonl")
rows = fkl_warmup.usable(cfg, sampled, info["prompts"]["set"])  # the rollouts the cache was computed on
cache = torch.load(run.stage_dir("fkl_warmup") / "teacher_cache.pt")
grade = data.grade_fn(cfg)
answers = {r["id"]: r["answer"] for r in data.labeled(cfg, "pool")}
correct = np.mean([grade(r["completion"], answers[r["prompt_id"]]) for r in rows])
print(f"{len(sampled):,} teacher rollouts sampled for {info['prompts']['n']:,} prompts of {info['prompts']['set']}; "
      f"{len(rows):,} finished and used; {correct:.1%} of them correct (graded here, the warmup does not grade)")
print(f"cache: one [completion length, vocabulary] tensor of teacher log-probs per rollout, e.g. "
      f"{tuple(cache[0]['logp'].shape)}" + (f"; top-k {info['top_k']} plus a tail bucket" if info.get("top_k") else ""))
pd.DataFrame(rows[:6])[["prompt_id", "completion", "finished"]]

# %% [markdown]
# ## The loss by hand, checked two ways
#
# For one cached rollout: the student *before* the warmup (the base student) reads the teacher's prompt and
# completion; at each completion position its log-softmax is compared with the cached teacher distribution. The
# logits at position `j` predict token `j+1`, so the completion's tokens are predicted from the positions just
# before them. By hand, against the stage's own loss term (`fkl_warmup.forward_kl_terms`) and against
# `torch.nn.functional.kl_div` (which computes `target * (log target - input)`: with the teacher as target, the
# forward KL).
#
# The sum runs over the outcomes the cache keeps (`tutorial.cache_outcomes`): on the tiny preset the whole
# vocabulary; on `qwen3_paper` (`fkl_warmup.top_k=64`, for Qwen3's 151,669 tokens) the teacher's 64 likeliest tokens
# at each position and one tail bucket with the rest of its mass, the student's distribution lumped the same way,
# exactly as the stage's loss lumps it.

# %%
import torch.nn.functional as F

tok = tokenizer_for(cfg, run)
student = load_stage_model(cfg, run, info["init"], tok).eval()
V = len(tok)
i = 0
ids = torch.tensor([rows[i]["prompt_ids"] + rows[i]["completion_ids"]])
P = len(rows[i]["prompt_ids"])
with torch.no_grad():
    logp_S_CV = student(ids).logits[0, P - 1:-1, :V].float().log_softmax(-1)  # row t predicts completion token t
# both distributions over the X outcomes the cache keeps: X = V for a full cache, the top K + a tail bucket otherwise
logp_T_CX, logp_S_CX, _ = tutorial.cache_outcomes(cache[i], logp_S_CV)
by_hand_C = (logp_T_CX.exp() * (logp_T_CX - logp_S_CX)).sum(-1)  # KL(pT || pS) at each position
library_C = fkl_warmup.forward_kl_terms(logp_S_CV, cache[i]["logp"].float(), cache[i].get("ids"), cache[i].get("tail"))
torch_C = F.kl_div(logp_S_CX, logp_T_CX, log_target=True, reduction="none").sum(-1)
assert torch.allclose(by_hand_C, library_C, atol=1e-5) and torch.allclose(by_hand_C, torch_C, atol=1e-5)
if cache[i].get("ids") is not None:
    print(f"top-k cache: {logp_T_CX.shape[1] - 1} cached tokens + 1 tail bucket per position (teacher tail mass "
          f"{cache[i]['tail'].exp().mean():.3f} on average over this rollout)")
print(repr(rows[i]["completion"]))
print(f"forward KL per position, mean over the {len(by_hand_C)} positions: by hand {by_hand_C.mean():.5f}, "
      f"forward_kl_terms {library_C.mean():.5f}, F.kl_div {torch_C.mean():.5f}")

# %% [markdown]
# **Predict first.** Teacher-sample SFT minimises `-log pS(y_t)` at the token `y_t` the teacher sampled, where the
# warmup's loss uses the teacher's whole distribution. The next cell computes, at every position of 512 cached
# teacher rollouts, both `-log pS(y_t)` and `KL(pT‖pS) + H(pT)` (the warmup's loss plus the teacher's entropy).
# Over many positions, will the mean of `-log pS(y_t)` sit "above", "on" (within its interval) or "below" the mean
# of `KL + H(pT)`? And at a single position, how far apart can the two be? (On a top-k cache both sides are over the
# cached outcomes: a sampled token outside the top K counts as the tail bucket.)

# %%
# Predict 02a.a: "above", "on" or "below"
my_guess_02a_a = ...

# %%
from s2dlab import exercises

n = min(len(rows), 512)
ce, kl_plus_h = [], []
with torch.no_grad():
    for r, c in zip(rows[:n], cache[:n]):
        x = torch.tensor([r["prompt_ids"] + r["completion_ids"]])
        p0 = len(r["prompt_ids"])
        ls_CV = student(x).logits[0, p0 - 1:-1, :V].float().log_softmax(-1)
        lt_CX, ls_CX, y_C = tutorial.cache_outcomes(c, ls_CV, r["completion_ids"])  # y_C: each token's outcome
        ce.append(-ls_CX.gather(-1, y_C[:, None]).squeeze(-1))
        kl_plus_h.append(fkl_warmup.forward_kl_terms(ls_CV, c["logp"].float(), c.get("ids"), c.get("tail"))
                         - (lt_CX.exp() * lt_CX).sum(-1))
ce, kl_plus_h = torch.cat(ce), torch.cat(kl_plus_h)
gap = ce - kl_plus_h
half = 1.96 * gap.std() / len(gap) ** 0.5
print(f"{len(ce):,} positions of {n} teacher rollouts: mean -log pS(y_t) = {ce.mean():.4f}, "
      f"mean KL(pT||pS) + H(pT) = {kl_plus_h.mean():.4f}; their difference {gap.mean():+.4f} "
      f"± {half:.4f} (95%), while one position's difference has sd {gap.std():.3f}")
exercises.reveal("Predict 02a.a", my_guess_02a_a, "on" if abs(gap.mean()) <= half else
                 "above" if gap.mean() > 0 else "below", choices=["above", "on", "below"])

# %% [markdown]
# Why they agree: the teacher sampled `y_t ~ pT`, so the expectation of `-log pS(y_t)` is the cross-entropy
# `Σ_v pT(v) (-log pS(v)) = H(pT) + KL(pT‖pS)`. Teacher-sample SFT is a one-sample estimate of the warmup's loss,
# up to the teacher's entropy, which does not depend on the student: the same expectation, very different variance
# (identity 2 of `PRINCIPLE.md`).

# %% [markdown]
# ### Your turn 02a.1: both KLs, and the cross-entropy, by hand
#
# A teacher `pT = [0.5, 0.45, 0.05]` and a student `pS = [0.98, 0.01, 0.01]` that has almost no mass on the
# teacher's second token. Compute (in nats, natural log) the forward KL `KL(pT‖pS)`, the reverse KL `KL(pS‖pT)`, and
# the cross-entropy `H(pT, pS) = -Σ pT log pS`. Which KL punishes the missing mode more?

# %%
# Your turn 02a.1: three numbers (np.log is the natural log).
p_teacher = np.array([0.5, 0.45, 0.05])
p_student = np.array([0.98, 0.01, 0.01])
my_forward_kl = ...
my_reverse_kl = ...
my_cross_entropy = ...

# %%
# Check 02a.1
from s2dlab import exercises

exercises.check_02a_1(my_forward_kl, my_reverse_kl, my_cross_entropy)

# %% [markdown]
# ### Change X, predict, observe: the full distribution or the sampled token
#
# Both losses have the same expectation. Train two copies of the base student for `STEPS_X` steps on the same
# batches of cached teacher rollouts at the warmup's learning rate, one with the full-distribution loss (the
# warmup) and one with cross-entropy on the teacher's sampled tokens (teacher-sample SFT), and measure the forward
# KL on 256 held-out cached rollouts (half the rollouts when there are fewer than 512). Set `STEPS_X`, predict
# which ends lower, "full", "sampled" or "about the same" (within 2%), then run (seconds).

# %%
STEPS_X = 30  # X: try 10, 30, 100
# Predict 02a.c: "full", "sampled" or "about the same"
my_guess_02a_c = ...

# %%
n_held = min(256, len(rows) // 2)
held_out = list(range(len(rows) - n_held, len(rows)))  # rollouts the two copies never train on
rng_x = np.random.default_rng(0)
batch_x = min(cfg.fkl_warmup.batch_size, len(rows) - n_held)
batches = [rng_x.choice(len(rows) - n_held, batch_x, replace=False) for _ in range(STEPS_X)]
heldout_kl = {}
for loss_name in ("full", "sampled"):
    copy_x = load_stage_model(cfg, run, info["init"], tok).train()
    opt_x = torch.optim.AdamW(copy_x.parameters(), lr=cfg.fkl_warmup.learning_rate, weight_decay=0.0)
    for batch_idx in batches:
        terms = []
        for j in batch_idx:
            x = torch.tensor([rows[j]["prompt_ids"] + rows[j]["completion_ids"]])
            p0 = len(rows[j]["prompt_ids"])
            ls_CV = copy_x(x).logits[0, p0 - 1:-1, :V].float().log_softmax(-1)
            if loss_name == "full":  # KL(pT || pS) against the cached teacher distribution
                terms.append(fkl_warmup.forward_kl_terms(ls_CV, cache[j]["logp"].float(), cache[j].get("ids"),
                                                         cache[j].get("tail")))
            else:  # -log pS of the token the teacher sampled
                terms.append(-ls_CV.gather(-1, torch.tensor(rows[j]["completion_ids"])[:, None]).squeeze(-1))
        loss_x = torch.cat(terms).mean()
        opt_x.zero_grad()
        loss_x.backward()
        opt_x.step()
    copy_x.eval()
    with torch.no_grad():
        kls = [fkl_warmup.forward_kl_terms(
            copy_x(torch.tensor([rows[j]["prompt_ids"] + rows[j]["completion_ids"]])).logits[
                0, len(rows[j]["prompt_ids"]) - 1:-1, :V].float().log_softmax(-1), cache[j]["logp"].float(),
            cache[j].get("ids"), cache[j].get("tail")) for j in held_out]
    heldout_kl[loss_name] = torch.cat(kls).mean().item()
print(f"held-out forward KL after {STEPS_X} steps: full {heldout_kl['full']:.4f}, sampled {heldout_kl['sampled']:.4f} "
      "nats/token")
ratio_x = heldout_kl["sampled"] / heldout_kl["full"]
exercises.reveal("Predict 02a.c", my_guess_02a_c, "about the same" if abs(ratio_x - 1) <= 0.02 else
                 "full" if ratio_x > 1 else "sampled", choices=["full", "sampled", "about the same"])

# %% [markdown]
# The full distribution gives the student every alternative's weight at every position, the sampled token one draw
# of it: the same target on average, with sampling noise on top. How much that noise costs depends on how peaked
# the teacher's distributions are (a near-deterministic teacher's sample *is* its distribution) and on the number
# of steps.

# %% [markdown]
# ## C2 before and after the warmup
#
# The summary measures C2 on fixed problems (`probe.c1_prompts` x `probe.c1_samples` rollouts): before the warmup,
# the base student's C1 rollouts scored by the RL teacher; after it, fresh rollouts of the warmed-up student scored
# by the same teacher. The change comes with a bootstrap interval; "lower" means the student moved closer.
#
# **Predict first.** The warmup trained the *forward* KL on the *teacher's* samples. Will the *reverse* KL on the
# *student's own* samples go "down", "stay" (the interval of the change holds 0), or go "up"? Where in the
# histogram should the change show? Write the guess before the training curves below: one of them shows it.

# %%
# Predict 02a.b: "down", "stay" or "up"
my_guess_02a_b = ...

# %% [markdown]
# ## Training curves
#
# `loss` is the mean forward KL per cached position (nats). The probe samples the *student* on 16 fixed eval
# problems every `probe.every` steps and scores its rollouts with the RL teacher: `probe/mean_reverse_kl` is C2 on
# that small set, `probe/mean_forward_kl` the forward KL at the student's own positions.

# %%
viz.stage_curves_figure(run, metrics=["loss", "probe/mean_reverse_kl", "probe/mean_forward_kl", "probe/accuracy"],
                        stages=["fkl_warmup"])

# %%
# The C2 measurement's scored rollouts: the base student's before the warmup, the warmed-up student's after it
pair = next(p for p in S["c2"]["pairs"] if p["stage"] == "fkl_warmup")
before_rows, after_rows = run.read_rows(pair["before_file"]), run.read_rows(pair["after_file"])
print(f"{len(before_rows)} rollouts before, {len(after_rows)} after")

# %% [markdown]
# ### Your turn 02a.2: C2 by hand
#
# Each scored rollout in `before_rows` and `after_rows` (lists of dicts) holds `reverse_kl`, one value per token
# of the completion: `KL(pS‖pT)` over the whole vocabulary at that position. C2 is the **token-weighted** mean:
# every token of every rollout counts once, so a long rollout weighs more than a short one. Compute it before and
# after the warmup, and the change after − before. Then compare with the mean of the per-rollout means: which
# rollouts does that second average favour? (Your numbers also answer the prediction above: the next cells reveal
# it with the interval of the change.)

# %%
# Your turn 02a.2: three numbers, nats per token.
my_c2_before = ...
my_c2_after = ...
my_c2_change = ...

# %%
# Check 02a.2
from s2dlab import exercises

exercises.check_02a_2(my_c2_before, my_c2_after, my_c2_change, before_rows, after_rows)

# %%
lo_c, hi_c = pair["change"]["ci"]
exercises.reveal("Predict 02a.b", my_guess_02a_b, "down" if hi_c < 0 else "up" if lo_c > 0 else "stay",
                 choices=["down", "stay", "up"])
print(next((line for line in S["c2"]["verdict"].splitlines() if line.startswith("C2 (fkl_warmup)")), "not measured"))
viz.c2_pair_figure(pair, before_rows, after_rows)

# %% [markdown]
# Look at the "before" number: how far the base student was from the RL teacher *before* any warmup. On this toy
# not far. Both models were pretrained on the same corpus with the same tokenizer, so the student starts close to
# the teacher (0.12-0.15 nats/token on its own rollouts over five seeds: `s2dlab run --ablations --seeds 5 --out
# runs/table2`, then `s2dlab score runs/table2/seed_0` and the other seeds). C2 holds before the warmup has done
# anything, so dropping the warmup costs nothing measurable here (P2 in notebook 04; `ANSWERS.md`, "Where the toy
# agrees with the paper, and where it does not"), unlike the paper's 1.7B student and 8B teacher. The warmup's
# effect is still visible, as the change above.

# %% [markdown]
# And the accuracy (95% intervals over problems): the warmup alone moves the student toward the teacher it
# imitates, mistakes included.

# %%
rows_acc = {}
for stage in ("base_student", "fkl_warmup", "teacher_grpo"):
    st = S["stages"][stage]
    lo, hi = st["interval"]["ci"]
    rows_acc[stage] = {f"avg@{K} % [95% CI]": f"{100 * st['accuracy']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]",
                       "greedy %": viz.greedy_text(st["greedy"])}
pd.DataFrame(rows_acc).T

# %% [markdown]
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. Why is the warmup trained on the *teacher's* prefixes, and what would go wrong if OPD started from the base
#    student instead (the `bridge_no_warmup` arm of notebook 04)?
# 2. The full-distribution loss and teacher-sample SFT have the same expectation. Why would the full distribution
#    still be the better target on the same rollouts?
# 3. C2 is judged on the reverse KL on the student's samples, not on the warmup's own loss. Why that direction?
#
# **Next:** `02b_on_policy_distillation`: the student samples, the teacher scores every token.
