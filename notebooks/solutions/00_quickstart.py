# %% [markdown]
# # Solutions to the exercises of 00_quickstart
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 00.1: fill in the dictionary (replace each ... with None or a (kind, wrong result) pair).
my_slips = {
    (7, "+", 8): ("carry", 5),    # 7 + 8 crosses a ten: 15, written without the carry as 5
    (13, "-", 5): ("borrow", 18),  # 13 - 5 borrows (3 < 5): 8, written without the borrow as 18
    (3, "-", 5): ("sign", 2),     # 3 - 5 goes below 0: -2, written without the sign as 2
    (6, "+", 2): None,            # 6 + 2 = 8 crosses no ten
    (15, "-", 4): None,           # 15 - 4 = 11 needs no borrow (5 >= 4)
}

# %%
# Your turn 00.2: replace ... with numbers (fractions such as 3/4 are fine).
my_pass_at_1 = 1 / 4  # one of four samples is correct
my_pass_at_2 = 1 - 3 / 6  # 1 - C(3,2)/C(4,2): of the 6 pairs, 3 hold only wrong samples
