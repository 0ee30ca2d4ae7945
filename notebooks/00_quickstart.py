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
# # 00 · Quickstart: the task, the tiny models, sampling and grading, dense rewards
#
# This lab reproduces, at toy scale, the **sparse-to-dense reward principle** of LM post-training
# (arXiv 2605.12483): train a *larger teacher* with a sparse reward (right or wrong at the end), then hand what it
# learned to a *small student* as a dense reward, one number per token.
#
# ```
# stage 1  teacher_grpo   sparse-reward GRPO on the teacher
# stage 2a fkl_warmup     forward KL on teacher rollouts
# stage 2b opd            on-policy distillation: the student samples, the teacher scores every token
# stage 3  student_grpo   sparse-reward GRPO on the student, held-out labels
# baseline direct_grpo    GRPO on the student straight away, same labels
# ```
#
# This notebook trains nothing. It looks at the pieces: the task and its grader, the two tiny models, sampling,
# and one first look at what a dense reward is. Runs in well under a minute on a laptop CPU.
#
# The first cell picks the preset: `tiny` (CPU, everything local) or `qwen3_paper` (Qwen3-8B teacher,
# Qwen3-1.7B student, DAPO-Math, on a GPU box). `RUN_DIR` is the run folder that notebooks 00-05 share
# (`runs/tutorial_tiny` at the repository root unless `S2DLAB_RUN` says otherwise).

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
# ## The task
#
# On the tiny preset the task is synthetic arithmetic: `task.n_terms` numbers of `task.digits` digits joined by `+`
# or `-` (by default four one-digit numbers, such as `7+3-5+8=?`). Each problem record carries the prompt, the
# final answer and a worked solution, one operation per line, ending in `\boxed{...}`.
# The labeled data of the RL stages are **final answers only**; worked solutions are used only to make the base
# models (stage 0), the way pretraining would. The splits are disjoint and fixed by `task.data_seed`.

# %%
splits = common.task_splits(cfg)
print({name: len(records) for name, records in splits.items()})
record = splits["teacher_rl"][0]
print("prompt:  ", record["prompt"])
print("answer:  ", record["answer"])
print("solution:")
print(record["solution"])

# %% [markdown]
# ## Grading: the sparse reward
#
# A completion earns reward 1 when the content of its **last** `\boxed{}` verifies against the answer
# (math-verify), else 0. On the arithmetic task the box must hold a plain integer, so copying the question into
# the box earns nothing even though it has the right value.

# %%
grade = common.grade_fn(cfg)
examples = {
    "worked solution": record["solution"],
    "answer only": f"\\boxed{{{record['answer']}}}",
    "off by one": f"\\boxed{{{int(record['answer']) + 1}}}" if PRESET == "tiny" else "\\boxed{0}",
    "question in the box": f"\\boxed{{{record['prompt'].rstrip('=?')}}}",
    "no box": record["answer"],
}
pd.DataFrame({"completion": examples.values(), "reward": [float(grade(c, record["answer"])) for c in examples.values()]},
             index=list(examples))

# %% [markdown]
# ## The models
#
# Stage 0 (`base`) gives the run its starting teacher and student. On the tiny preset these are small
# Qwen3-architecture models with a character-level tokenizer, trained from scratch on worked solutions and
# shipped with the package, so this step only copies them into the run folder. On `qwen3_paper` it points at the
# pretrained checkpoints. Teacher and student must share a tokenizer: a dense reward compares
# `log pT(y_t)` with `log pS(y_t)` for the same token id.

# %%
for step in steps[:2]:  # base_teacher, base_student
    pipeline.run_stage(cfg, run, step)

tok = common.tokenizer_for(cfg, run)
teacher = common.load_stage_model(cfg, run, "base_teacher", tok).eval()
student = common.load_stage_model(cfg, run, "base_student", tok).eval()
common.check_pair(teacher, student, tok)  # raises if they could not be compared token by token
for name, model in (("teacher", teacher), ("student", student)):
    c = model.config
    print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, {c.num_hidden_layers} layers, "
          f"hidden {c.hidden_size}")
print(f"shared tokenizer: {len(tok)} tokens")

# %% [markdown]
# What the model actually reads is the problem inside the chat template, and generation continues after
# `<|im_start|>assistant`:

# %%
from s2dlab.generation import format_prompt, sample

print(format_prompt(tok, record["prompt"], cfg.task.prompt_suffix, common.chat_kwargs(cfg)))

# %% [markdown]
# ## Sampling
#
# `s2dlab.generation.sample` draws `n` completions per problem and keeps the token ids and the sampler's
# log-probabilities. Temperature 1 with no top-k or top-p is the model's own distribution, which is what
# on-policy training needs; temperature 0 is greedy decoding.

# %%
problems = common.eval_sets(cfg)[EVAL_SET]
gen = dict(max_new_tokens=cfg.generation.max_new_tokens, prompt_suffix=cfg.task.prompt_suffix,
           chat_template_kwargs=common.chat_kwargs(cfg), progress=False)
rollouts = sample(student, tok, problems[:3], n=3, temperature=1.0, seed=0, **gen)
answers = {p["id"]: p["answer"] for p in problems}
pd.DataFrame([{"problem": r.prompt, "sample": r.sample_idx, "completion": r.completion,
               "reward": float(grade(r.completion, answers[r.prompt_id]))} for r in rollouts])

# %% [markdown]
# A quick accuracy check on a slice of the eval problems, greedy and sampled (the real evaluation, avg@k over all
# eval problems, runs after every stage in the next notebooks):

# %%
subset = problems[:64]
rows = []
for name, model in (("teacher", teacher), ("student", student)):
    for label, temperature in (("greedy", 0.0), ("sampled T=1", 1.0)):
        outs = sample(model, tok, subset, n=1, temperature=temperature, seed=1, **gen)
        rows.append({"model": name, "decoding": label,
                     "accuracy": np.mean([grade(r.completion, answers[r.prompt_id]) for r in outs])})
pd.DataFrame(rows).pivot(index="model", columns="decoding", values="accuracy").style.format("{:.0%}")

# %% [markdown]
# ## One glance at a dense reward
#
# The sparse reward gives a whole completion one bit. A teacher can instead score **every token** of a student's
# completion. For a student sample `y ~ pS(.|x)` the *implicit reward* of token `t` is
#
# $$r_t = \log p_T(y_t \mid x, y_{<t}) - \log p_S(y_t \mid x, y_{<t})$$
#
# positive where the teacher likes the student's token more than the student does, negative where it likes it
# less. `s2dlab.scoring.score_rollouts` computes it (with the per-token KLs and entropies) for any rollouts.
# Below: one student completion coloured by its implicit reward under the base teacher; hover a token for the
# numbers and both models' top alternatives.

# %%
from s2dlab.scoring import score_rollouts

scored = score_rollouts(student, teacher, tok, rollouts, grade_fn=grade, answers=answers)
row = max(scored, key=lambda r: r["length"])
print(f"{row['prompt']}  ->  reward {row['reward']:.0f}, summed implicit reward {row['sum_implicit_reward']:+.2f}")
display(HTML(viz.rollout_heatmap_html(row, id_to_text=viz.vocab_from_rows(pd.DataFrame(scored)))))

# %%
viz.per_token_figure(row)

# %% [markdown]
# Red tokens are where the teacher disagrees with the student: on this task, mostly the digits of a wrong
# intermediate result. Whether such numbers can be trusted as a reward, that is whether they tell right from wrong,
# is condition C1, the subject of notebook 01.
#
# **Next:** `01_teacher_grpo` trains the teacher with the sparse reward.
