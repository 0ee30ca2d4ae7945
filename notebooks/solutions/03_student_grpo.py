# %% [markdown]
# # Solutions to the exercises of 03_student_grpo
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 03.1: three numbers.
my_all_right = p_bar ** G  # each of the G completions right, independently
my_all_wrong = (1 - p_bar) ** G  # each of them wrong
my_dead_share = my_all_right + my_all_wrong  # a group is dead either way

# %%
# Your turn 03.2: the interval as [low, high], fractions in [0, 1].
scores = np.array(list(per_problem.values())) / k  # each problem's share of correct samples
half = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores))
my_interval = [scores.mean() - half, scores.mean() + half]
