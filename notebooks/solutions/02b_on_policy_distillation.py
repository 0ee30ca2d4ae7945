# %% [markdown]
# # Solutions to the exercises of 02b_on_policy_distillation
#
# Each code cell replaces the exercise cell of the same first line (`python notebooks/solutions/solve.py` writes
# the solved notebooks; `ANSWERS.md` explains each answer).

# %%
# Your turn 02b.1: a list of 3 rewards and two numbers.
p_s = np.array([0.6, 0.3, 0.1])
p_t = np.array([0.1, 0.6, 0.3])
my_rewards = list(np.log(p_t) - np.log(p_s))  # [log 1/6, log 2, log 3] = [-1.792, +0.693, +1.099]: teacher first
my_expected_minus_r = float(np.sum(p_s * -(np.log(p_t) - np.log(p_s))))  # weighted by the student's sampling
my_reverse_kl = float(np.sum(p_s * (np.log(p_s) - np.log(p_t))))  # the same sum: 0.757 (the forward KL is 0.566)

# %%
# Your turn 02b.2: a list of 3 numbers.
A = np.log(p_t[1]) - np.log(p_s[1])  # the implicit reward of the sampled token 1: log 2 > 0
my_gradient = list(-A * (np.eye(3)[1] - p_s))  # -A (onehot(y) - pS)

# %%
# Your turn 02b.3: the loss. Replace the ... with its body.
def my_opd_loss(logp_S, logp_T, mask):
    reverse_kl = (logp_S.exp() * (logp_S - logp_T)).sum(-1)  # KL(pS || pT) at every position, [B, C]
    return (reverse_kl * mask).sum() / mask.sum()  # the mean over the real completion tokens

# %%
# Your turn 02b.4: the loop. Replace the ... (about 15 lines).
my_student = load_stage_model(cfg, run, "fkl_warmup", tok)  # where the library's OPD starts
optimizer = torch.optim.AdamW(my_student.parameters(), lr=cfg.opd.learning_rate, weight_decay=0.0)
rng = np.random.default_rng(cfg.seed)
my_losses = []
for step in range(OPD_STEPS):
    batch = [prompts[i] for i in rng.choice(len(prompts), cfg.opd.batch_size, replace=False)]
    my_student.eval()  # 1. sample: the student's own rollouts, at temperature 1
    rollouts = sample(my_student, tok, batch, n=1, temperature=1.0, seed=step, **gen)
    ids_BL, attention_BL, P, mask_BC = tutorial.rollout_batch(rollouts, tok.pad_token_id)
    with torch.no_grad():  # 2. score with the teacher: its next-token distribution at every position
        logp_T = teacher(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :V].float().log_softmax(-1)
    my_student.train()  # 3. the loss at the student's distribution
    logp_S = my_student(input_ids=ids_BL, attention_mask=attention_BL).logits[:, P - 1:-1, :V].float().log_softmax(-1)
    loss = my_opd_loss(logp_S, logp_T, mask_BC)
    optimizer.zero_grad()  # 4. one step
    loss.backward()
    torch.nn.utils.clip_grad_norm_(my_student.parameters(), 1.0)  # as the library's trainer (max_grad_norm)
    optimizer.step()
    my_losses.append(loss.item())
