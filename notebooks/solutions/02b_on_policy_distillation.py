# %% [markdown]
# # Solutions to the exercises of 02b_on_policy_distillation
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 02b.1: a list of 3 rewards and two numbers.
p_s = np.array([0.6, 0.3, 0.1])
p_t = np.array([0.3, 0.6, 0.1])
my_rewards = list(np.log(p_t) - np.log(p_s))  # [-log 2, +log 2, 0]: teacher first
my_expected_minus_r = float(np.sum(p_s * -(np.log(p_t) - np.log(p_s))))  # weighted by the student's sampling
my_reverse_kl = float(np.sum(p_s * (np.log(p_s) - np.log(p_t))))  # the same sum: 0.3 log 2 = 0.208

# %%
# Your turn 02b.2: a list of 3 numbers.
A = np.log(p_t[1]) - np.log(p_s[1])  # the implicit reward of the sampled token 1: log 2 > 0
my_gradient = list(-A * (np.eye(3)[1] - p_s))  # -A (onehot(y) - pS)
