"""Chunked scoring vs full logits: peak memory and wall time of scoring one long rollout, side by side.

    python bench/bench_scoring.py                                  # 4,096 tokens, 151,936-token vocabulary
    python bench/bench_scoring.py --length 1024 --vocab 32000 --chunk 128

Two one-layer Qwen3 models (hidden size 64, random weights) with Qwen3's vocabulary size stand in for teacher and
student: the body costs almost nothing, so what is measured is the part that grows with vocab x length.

- naive:   `model(input_ids).logits` for both models ([1, L, V] float32 each), then `token_scores` on all of it.
- chunked: `score_sequences`, which runs each body once and projects `--chunk` positions at a time.

Each mode runs in its own subprocess. Peak memory is the growth of the process's maximum resident set
(`ru_maxrss`) over its value once models and inputs are built, so allocator state of one mode cannot leak into
the other; `tracemalloc` would not see torch's allocations. Time is the best of `--repeats` runs. The outputs
of both modes are compared (max abs difference over the per-token scores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s2dlab.core.scoring import PER_TOKEN_FIELDS, score_sequences, token_scores  # noqa: E402

GOAL_MEMORY_RATIO = 4.0  # chunked peak at most 1/4 of naive
GOAL_SPEED_RATIO = 0.8  # chunked at least 0.8x as fast as naive


# --- one mode, in a child process -------------------------------------------------------------------------------


def build_model(vocab: int, length: int, seed: int) -> Qwen3ForCausalLM:
    config = Qwen3Config(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=length + 1, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config).eval()


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_mode(args) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    teacher = build_model(args.vocab, args.length, seed=1)
    student = build_model(args.vocab, args.length, seed=2)
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, args.vocab, (1, args.length), generator=g)
    completion_mask = torch.ones_like(input_ids)  # score every position that has a predecessor, in both modes

    def naive():
        with torch.no_grad():
            s_logits = student(input_ids=input_ids).logits
            t_logits = teacher(input_ids=input_ids).logits
            return token_scores(s_logits[:, :-1], t_logits[:, :-1], input_ids[:, 1:], top_k=args.top_k)

    def chunked():
        return score_sequences(student, teacher, input_ids, completion_mask, chunk_size=args.chunk, top_k=args.top_k)

    fn = naive if args.mode == "naive" else chunked
    baseline = maxrss_mib()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        scores = fn()
        times.append(time.perf_counter() - start)
        if _ < args.repeats - 1:
            del scores
    peak = maxrss_mib()
    torch.save({name: getattr(scores, name) for name in PER_TOKEN_FIELDS + ("teacher_topk_ids", "student_topk_ids")},
               args.out)
    print(json.dumps({"mode": args.mode, "baseline_mib": baseline, "peak_mib": peak, "delta_mib": peak - baseline,
                      "best_s": min(times), "times_s": times, "threads": torch.get_num_threads()}))


# --- driver -----------------------------------------------------------------------------------------------------


def mem_available_mib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096, help="rollout length in tokens")
    parser.add_argument("--vocab", type=int, default=151936, help="vocabulary size (Qwen3: 151,936)")
    parser.add_argument("--chunk", type=int, default=256, help="positions per lm_head chunk in score_sequences")
    parser.add_argument("--top-k", type=int, default=5, help="top-k alternatives kept per position")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per mode; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--mode", choices=["naive", "chunked"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_mode(args)
        return

    # naive holds two [L, V] float32 logits plus ~3 more of token_scores' buffers at its peak.
    need_mib = 5 * args.length * args.vocab * 4 / 2**20
    available = mem_available_mib()
    if available is not None and need_mib > 0.9 * available:
        sys.exit(f"naive mode needs about {need_mib:,.0f} MiB and only {available:,.0f} MiB is available; "
                 f"lower --length or --vocab")

    results, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("naive", "chunked"):
            out = os.path.join(tmp, f"{mode}.pt")
            cmd = [sys.executable, os.path.abspath(__file__), "--mode", mode, "--out", out,
                   "--length", str(args.length), "--vocab", str(args.vocab), "--chunk", str(args.chunk),
                   "--top-k", str(args.top_k), "--repeats", str(args.repeats), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{mode} run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            outputs[mode] = torch.load(out)

    naive, chunked = results["naive"], results["chunked"]
    max_diff = max(float((outputs["naive"][n] - outputs["chunked"][n]).abs().max()) for n in PER_TOKEN_FIELDS)
    topk_agree = float(torch.cat([(outputs["naive"][n] == outputs["chunked"][n]).flatten()
                                  for n in ("teacher_topk_ids", "student_topk_ids")]).float().mean())
    memory_ratio = naive["delta_mib"] / max(chunked["delta_mib"], 1e-9)
    speed_ratio = naive["best_s"] / chunked["best_s"]

    print(f"scoring one {args.length:,}-token rollout, vocabulary {args.vocab:,}, chunk {args.chunk}, "
          f"top-k {args.top_k}, {naive['threads']} threads, best of {args.repeats}")
    print(f"{'mode':<9}{'peak extra memory (MiB)':>25}{'wall time (s)':>16}")
    for mode in ("naive", "chunked"):
        print(f"{mode:<9}{results[mode]['delta_mib']:>25,.0f}{results[mode]['best_s']:>16.3f}")
    ok_mem = memory_ratio >= GOAL_MEMORY_RATIO
    ok_speed = speed_ratio >= GOAL_SPEED_RATIO
    print(f"memory: chunked uses 1/{memory_ratio:.1f} of naive (goal <= 1/{GOAL_MEMORY_RATIO:.0f}: "
          f"{'met' if ok_mem else 'NOT met'})")
    print(f"speed:  chunked runs at {speed_ratio:.2f}x naive (goal >= {GOAL_SPEED_RATIO}x: "
          f"{'met' if ok_speed else 'NOT met'})")
    print(f"agreement: max abs diff over per-token scores {max_diff:.2e}; top-k ids equal at {100 * topk_agree:.2f}% "
          f"of slots")


if __name__ == "__main__":
    main()
