# %% [markdown]
# # Solutions to the exercises of 01_teacher_grpo
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 01.1: the reward function. Replace the ... with its body (`re` is imported above).
def my_reward(completion, answer):
    starts = [m.end() for m in re.finditer(r"\\boxed\{", completion)]
    if not starts:
        return 0.0  # no box: no answer
    content = completion[starts[-1]:]  # only the last box counts
    if "}" not in content:
        return 0.0  # a box that never closes: the completion was cut off
    content = content[:content.index("}")].strip()
    if not re.fullmatch(r"-?\d+", content):
        return 0.0  # an expression such as 5+7 copies the question instead of computing
    return float(int(content) == int(answer))

# %%
# Your turn 01.2: a list of 8 numbers (plain Python or numpy; torch is imported above).
rewards_01 = [1, 0, 0, 0, 0, 0, 0, 0]
r = torch.tensor(rewards_01, dtype=torch.float32)
my_advantages = ((r - r.mean()) / (r.std() + 1e-4)).tolist()  # mean 1/8, std sqrt(1/8) = 0.354 (G - 1 = 7)
# the right completion gets (1 - 1/8) / 0.354 = +2.47, each wrong one -(1/8) / 0.354 = -0.35: rare successes
# are pushed up hard, and the seven failures share the push down

# %%
# Your turn 01.3: one number.
scores_01 = [2.1, -0.3, 0.8, -1.5, 0.8, -0.2]
correct_01 = [True, False, True, False, False, True]
# correct: 2.1, 0.8, -0.2; incorrect: -0.3, -1.5, 0.8. Pairs won: 2.1 beats all 3; 0.8 beats -0.3 and -1.5 and
# ties 0.8 (2.5); -0.2 beats -0.3 and -1.5 (2). (3 + 2.5 + 2) / 9 pairs:
my_auroc = 7.5 / 9
