# %% [markdown]
# # Solutions to the exercises of 05_dense_rewards_token_by_token
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 05.1: two whole numbers.
# the first index where the characters differ, or where the shorter string stops
my_first_wrong_char = next((i for i, (a, b) in enumerate(zip(completion, gold)) if a != b),
                           min(len(completion), len(gold)))
lengths = np.cumsum([len(t) for t in tokens])  # characters up to the end of each token
my_first_wrong_token = int(np.searchsorted(lengths, my_first_wrong_char, side="right"))

# %%
# Your turn 05.2: a number (nats) and True / False.
my_log_ratio = float(np.sum(implicit_reward))  # sum over tokens of log pT - log pS = log pT(y) - log pS(y)
my_teacher_finds_it_more_likely = my_log_ratio > 0  # below 0: the RL teacher puts less probability on it
