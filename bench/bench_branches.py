"""Counterfactual branches on the shipped tiny student: the cost of one branch set, and what branching says about
the implicit reward.

    python bench/bench_branches.py                       # --rollouts 32 --positions 4 --samples 16 --threads 1
    python bench/bench_branches.py --rollouts 8 --positions 2

1. Time of one `branch_values` call with N=16 continuations (at most 64 new tokens) for each of 3 branches (the
   student's token and the teacher's top-2 other tokens), median over 10 positions of 10 rollouts.
2. `probe_branch_values` over `--rollouts` student rollouts of the arithmetic task (n_terms=4, digits=1) at
   `--positions` positions each: the AUROC with which a negative implicit reward (shipped base teacher vs shipped
   base student) predicts that the student's own token lowers the Monte Carlo success rate, with a bootstrap 95%
   interval over positions.

Models: `s2dlab/assets/tiny_base/{student,teacher}`, tokenizer `s2dlab.core.models.build_char_tokenizer()`, grader
`s2dlab.core.rewards.grade(..., integer_only=True)`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s2dlab.core.diagnostics import auroc  # noqa: E402
from s2dlab.core.generation import sample  # noqa: E402
from s2dlab.core.models import build_char_tokenizer, count_parameters, load_model  # noqa: E402
from s2dlab.core.rewards import grade  # noqa: E402
from s2dlab.core.scoring import score_rollouts  # noqa: E402
from s2dlab.core.tasks.arithmetic import make_problems  # noqa: E402
from s2dlab.instruments.branches import branch_values, probe_branch_values  # noqa: E402

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "s2dlab", "assets", "tiny_base")


def grade_fn(completion, answer):
    return grade(completion, answer, integer_only=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rollouts", type=int, default=32)
    ap.add_argument("--positions", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tok = build_char_tokenizer()
    student = load_model(os.path.join(SHIPPED, "student"))
    teacher = load_model(os.path.join(SHIPPED, "teacher"))
    records = make_problems(args.rollouts, seed=1234, n_terms=4, digits=1)
    rollouts = sample(student, tok, records, n=1, max_new_tokens=48, seed=args.seed, progress=False)
    rows = score_rollouts(student, teacher, tok, rollouts, grade_fn=grade_fn,
                          answers={r["id"]: r["answer"] for r in records})
    for row, r in zip(rows, rollouts):
        row["prompt_ids"] = r.prompt_ids
    print(f"student {count_parameters(student):,} params, teacher {count_parameters(teacher):,}; "
          f"{len(rows)} rollouts, student accuracy {sum(r['correct'] for r in rows) / len(rows):.1%}")

    # 1. one branch set: N=16 x 3 branches
    times, n_branches = [], []
    rng = random.Random(args.seed)
    for row in rows[:10]:
        t = rng.randrange(len(row["token_ids"]))
        start = time.perf_counter()
        res = branch_values(student, tok, row, t, grade_fn, n_samples=16, max_new_tokens=args.max_new_tokens,
                            top_k=2, seed=args.seed)
        times.append(time.perf_counter() - start)
        n_branches.append(len(res["branches"]))
    cost = count_parameters(student) * 3 * 16 * args.max_new_tokens
    print(f"branch_values N=16 x {statistics.mode(n_branches)} branches, <= {args.max_new_tokens} new tokens: median "
          f"{statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}) over {len(times)} "
          f"positions; cost {cost:.2g} parameter-tokens")

    # 2. the probe set
    start = time.perf_counter()
    out = probe_branch_values(student, tok, rows, grade_fn, positions_per_rollout=args.positions,
                              n_samples=args.samples, max_new_tokens=args.max_new_tokens, seed=args.seed)
    elapsed = time.perf_counter() - start
    s = out["summary"]
    pos = out["positions"]
    boot = []
    brng = random.Random(args.seed)
    for _ in range(1000):
        sample_ = [pos[brng.randrange(len(pos))] for _ in pos]
        a = auroc([-p["implicit_reward"] for p in sample_], [p["delta"] < 0 for p in sample_])
        if a is not None:
            boot.append(a)
    boot.sort()
    ci = (boot[int(0.025 * len(boot))], boot[int(0.975 * len(boot)) - 1]) if boot else (None, None)
    fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
    print(f"probe: {s['n_positions']} positions ({args.rollouts} rollouts x {args.positions}), N={args.samples}, "
          f"{elapsed:.1f} s")
    print(f"  drops {s['n_drop']}, rises {s['n_rise']}, flat {s['n_flat']}")
    print(f"  AUROC(-implicit_reward -> drop) {fmt(s['auroc_drop'])} (bootstrap 95% {fmt(ci[0])}..{fmt(ci[1])}); "
          f"drop vs rise only {fmt(s['auroc_drop_vs_rise'])}; pearson(reward, delta) "
          f"{fmt(s['pearson_reward_delta'])}")
    print(f"  mean implicit reward: drops {fmt(s['mean_implicit_reward_drop'])}, "
          f"rises {fmt(s['mean_implicit_reward_rise'])}")
    drops = [p["implicit_reward"] for p in pos if p["delta"] < 0]
    rises = [p["implicit_reward"] for p in pos if p["delta"] > 0]
    if drops and rises:
        print(f"  median implicit reward: drops {statistics.median(drops):.3f}, rises {statistics.median(rises):.3f}")
    mean_se = statistics.mean(p["delta_se"] for p in pos)
    print(f"  mean Monte Carlo standard error of a delta: {mean_se:.3f}")


if __name__ == "__main__":
    main()
