# %% [markdown]
# # Solutions to the exercises of 03_student_grpo
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 03.1: one number.
my_dead_share = p_bar ** G + (1 - p_bar) ** G  # all G right, or all G wrong

# %%
# Your turn 03.2: the interval as [low, high], fractions in [0, 1].
per_problem = run.eval("student_grpo")["sets"][EVAL_SET]["per_problem"]  # problem id -> correct samples out of k
k = run.eval("student_grpo")["sets"][EVAL_SET]["k"]
scores = np.array(list(per_problem.values())) / k
half = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores))
my_interval = [scores.mean() - half, scores.mean() + half]
