# %% [markdown]
# # Solutions to the exercises of 02a_forward_kl_warmup
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 02a.1: three numbers (np.log is the natural log).
p_teacher = np.array([0.5, 0.45, 0.05])
p_student = np.array([0.98, 0.01, 0.01])
my_forward_kl = float(np.sum(p_teacher * (np.log(p_teacher) - np.log(p_student))))  # weighted by the teacher
my_reverse_kl = float(np.sum(p_student * (np.log(p_student) - np.log(p_teacher))))  # weighted by the student
my_cross_entropy = float(-np.sum(p_teacher * np.log(p_student)))  # = H(pT) + KL(pT || pS)
# the forward KL is the larger one: the teacher puts 0.45 where the student has 0.01, and pays log(45) there

# %%
# Your turn 02a.2: three numbers, nats per token.
tokens_before = [x for r in before_rows for x in r["reverse_kl"]]  # every token of every rollout, once
tokens_after = [x for r in after_rows for x in r["reverse_kl"]]
my_c2_before = float(np.sum(tokens_before) / len(tokens_before))
my_c2_after = float(np.sum(tokens_after) / len(tokens_after))
my_c2_change = my_c2_after - my_c2_before
# the mean of per-rollout means counts a 5-token rollout as much as a 40-token one: it favours short rollouts
