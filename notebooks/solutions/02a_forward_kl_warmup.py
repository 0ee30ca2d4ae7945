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
