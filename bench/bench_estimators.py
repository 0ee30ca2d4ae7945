"""KL estimators per token: how far each sits from the exact reverse KL on real rollouts, and what the chunked
pass costs with Qwen3's vocabulary.

    python bench/bench_estimators.py                     # both parts, 1 torch thread
    python bench/bench_estimators.py --part tiny --problems 32 --samples 4
    python bench/bench_estimators.py --part memory --lengths 512 2048 --vocab 151936

tiny:   the shipped tiny base student samples `--problems` x `--samples` arithmetic rollouts (n_terms=4, digits=1,
        T=1, at most 48 tokens); the shipped base teacher scores them; `estimators.summarize_estimators` gives each
        estimator's bias, sd, rmse and relative error over every token, the top-k tail masses, and how often the
        sampled-token gradient points the way of the exact one. Vocabulary 100, so top-64 drops little.
memory: two one-layer Qwen3 models (hidden 64, random weights, vocabulary `--vocab`) and one random rollout per
        length: `estimate_sequences` (chunked, `--chunk` positions) at each length, and the naive way (full
        `[1, L, V]` logits of both models, then `token_estimators` on all of it) at the shortest length. Each run is
        its own subprocess; peak memory is the growth of `ru_maxrss` once models and inputs are built. Random
        weights give near-uniform distributions, so this part measures cost, not truncation error.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s2dlab.instruments.estimators import (  # noqa: E402
    TOPK,
    estimate_rollouts,
    estimate_sequences,
    estimator_names,
    summarize_estimators,
    token_estimators,
)

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "s2dlab", "assets", "tiny_base")


def fmt(x, spec=".4f"):
    return "n/a" if x is None else format(x, spec)


def part_tiny(args) -> None:
    from s2dlab.core.generation import sample
    from s2dlab.core.models import build_char_tokenizer, load_model
    from s2dlab.core.tasks.arithmetic import make_problems

    tok = build_char_tokenizer()
    student = load_model(os.path.join(SHIPPED, "student"))
    teacher = load_model(os.path.join(SHIPPED, "teacher"))
    records = make_problems(args.problems, seed=4321, n_terms=4, digits=1)
    rollouts = sample(student, tok, records, n=args.samples, max_new_tokens=48, seed=0, progress=False)
    start = time.perf_counter()
    rows = estimate_rollouts(student, teacher, tok, rollouts)
    elapsed = time.perf_counter() - start
    s = summarize_estimators(rows)
    print(f"tiny: {s['n_rollouts']} student rollouts, {s['n_tokens']} tokens, estimated in {elapsed:.2f} s; "
          f"mean reverse KL {s['mean_reverse_kl']:.4f}, mean forward KL {s['mean_forward_kl']:.4f} nats/token")
    print("| estimator | mean | bias (e - exact) | se of bias | sd | rmse | relative bias | relative rmse | "
          "share < 0 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in estimator_names():
        e = s["estimators"][name]
        print(f"| {name} | {fmt(e['mean_estimate'])} | {fmt(e['bias'], '+.4f')} | {fmt(e['se_bias'])} | "
              f"{fmt(e['sd'])} | {fmt(e['rmse'])} | {fmt(e['relative_bias'], '+.3f')} | "
              f"{fmt(e['relative_rmse'], '.3f')} | {fmt(e['frac_negative'], '.3f')} |")
    tails = [(k, s["tail_mass"][f"top{k}"]) for k in TOPK]
    print("tail mass (mean, student / teacher): "
          + ", ".join(f"top{k} {fmt(t['student'], '.2e')} / {fmt(t['teacher'], '.2e')}" for k, t in tails))
    g = s["gradient"]
    print(f"gradient: cosine(exact, sampled) mean {fmt(g['mean_cosine'], '.3f')}, median "
          f"{fmt(g['median_cosine'], '.3f')}, positive at {fmt(g['frac_positive_cosine'], '.3f')} of "
          f"{g['n_defined']} tokens; same sign on the sampled token at {fmt(g['frac_same_sign_at_token'], '.3f')}")


def build_model(vocab: int, length: int, seed: int):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=length + 1, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config).eval()


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(args) -> None:
    student = build_model(args.vocab, args.length, 2)
    teacher = build_model(args.vocab, args.length, 1)
    g = torch.Generator().manual_seed(0)
    ids_BL = torch.randint(0, args.vocab, (1, args.length), generator=g)
    comp_BL = torch.ones_like(ids_BL)
    base = maxrss_mib()
    start = time.perf_counter()
    if args.mode == "chunked":
        fields, _ = estimate_sequences(student, teacher, ids_BL, comp_BL, chunk_size=args.chunk)
        err = fields["top64_tail_error"]
    else:
        with torch.no_grad():
            s_LV, t_LV = student(ids_BL).logits[0, :-1], teacher(ids_BL).logits[0, :-1]
            err = token_estimators(s_LV, t_LV, ids_BL[0, 1:])["top64_tail_error"]
    elapsed = time.perf_counter() - start
    print(json.dumps({"mode": args.mode, "length": args.length, "delta_mib": maxrss_mib() - base, "s": elapsed,
                      "mean_top64_tail_error": float(err.mean())}))


def part_memory(args) -> None:
    runs = [("chunked", L) for L in args.lengths] + [("naive", min(args.lengths))]
    print(f"memory: vocabulary {args.vocab:,}, chunk {args.chunk}, {torch.get_num_threads()} thread(s)")
    print("| mode | length | peak extra memory | wall time |")
    print("|---|---:|---:|---:|")
    for mode, L in runs:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", mode, "--length", str(L), "--vocab",
               str(args.vocab), "--chunk", str(args.chunk), "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{mode} L={L} failed:\n{proc.stderr[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"| {mode} | {L:,} | {r['delta_mib']:,.0f} MiB | {r['s']:.2f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=["tiny", "memory", "both"], default="both")
    ap.add_argument("--problems", type=int, default=32)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--lengths", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", choices=["chunked", "naive"], help=argparse.SUPPRESS)
    ap.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        args.mode = args.child
        child(args)
        return
    if args.part in ("tiny", "both"):
        part_tiny(args)
    if args.part in ("memory", "both"):
        part_memory(args)


if __name__ == "__main__":
    main()
