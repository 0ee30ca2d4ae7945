# %% [markdown]
# # Solutions to the exercises of 04_bridge_vs_cold_grpo
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 04.1: the mean difference and its interval [low, high], fractions.
d = np.array([(a_counts[p] - b_counts[p]) / k for p in a_counts])  # paired: one difference per problem
my_difference = d.mean()
half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
my_difference_interval = [d.mean() - half, d.mean() + half]

# %%
# Your turn 04.2: one whole number, from cfg.
my_student_sequences = (cfg.fkl_warmup.steps * cfg.fkl_warmup.batch_size + cfg.opd.steps * cfg.opd.batch_size
                        + cfg.student_grpo.steps * cfg.student_grpo.prompts_per_step * cfg.student_grpo.num_generations)
