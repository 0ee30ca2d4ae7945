"""Models and tokenizers: the tiny embedded Qwen3 pair built from config, hub/local loading, and the
teacher/student compatibility check that distillation depends on.

The tiny preset needs no download: `build_char_tokenizer()` makes a character-level tokenizer with
`tokenizers` (one token per printable ASCII character plus ChatML specials), and `build_tiny_model()` builds a
Qwen3-architecture causal LM from a `Qwen3Config`. Both save and load with the usual `save_pretrained` /
`from_pretrained`, so every stage treats tiny and real checkpoints the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

from s2dlab.errors import MissingError, S2DLabError

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END, UNK_TOKEN]
# Printable ASCII and newline: every character of the arithmetic task, the chat template and \boxed{}.
CHARACTERS = ["\n"] + [chr(c) for c in range(32, 127)]

# ChatML like Qwen3's non-thinking template, without tools or thinking blocks.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class TokenizerMismatchError(S2DLabError, ValueError):
    """Teacher and student do not share a tokenizer; per-token log-probs would compare different tokens."""


class ModelNotAvailableError(S2DLabError, RuntimeError):
    """A hub id was asked for while offline and the weights are not in the local cache."""


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer (vocab 100: 4 specials + newline + 95 printable ASCII) with a ChatML template."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    # BPE with no merges is a character model; the Split pre-tokenizer isolates every character (newline too)
    # and Fuse joins decoded tokens back without spaces.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=IM_END,
        unk_token=UNK_TOKEN,
        additional_special_tokens=[IM_START],
        padding_side="left",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 512
    return fast


@dataclass
class TinyModelSpec:
    """Size of a tiny Qwen3 model (see `TINY_TEACHER`, `TINY_STUDENT`)."""

    hidden_size: int  # width of the residual stream
    num_hidden_layers: int  # transformer blocks
    num_attention_heads: int  # query heads; head_dim = hidden_size // num_attention_heads
    num_key_value_heads: int  # grouped-query attention, as in Qwen3
    intermediate_size: int  # SwiGLU MLP width
    max_position_embeddings: int = 256  # prompt + completion never exceed this on the tiny task


TINY_TEACHER = TinyModelSpec(hidden_size=160, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=320)
TINY_STUDENT = TinyModelSpec(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             intermediate_size=128)


def build_tiny_model(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> Qwen3ForCausalLM:
    """A freshly initialised Qwen3-architecture causal LM of the given size, in float32."""
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.hidden_size // spec.num_attention_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        rope_theta=10000.0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(config)
    set_generation_defaults(model, tokenizer)
    return model


def set_generation_defaults(model, tokenizer) -> None:
    """Pad/eos ids in the generation config, and no hidden top-k (transformers' `generate` defaults to 50)."""
    gc = model.generation_config
    gc.pad_token_id = tokenizer.pad_token_id
    gc.eos_token_id = tokenizer.eos_token_id
    gc.bos_token_id = None
    gc.top_k = 0
    gc.do_sample = True


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _is_local(name_or_path: str | os.PathLike) -> bool:
    return Path(name_or_path).exists()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs) -> PreTrainedTokenizerFast:
    """Load a tokenizer from a local folder or a hub id (same rules as `load_model`)."""
    try:
        tok = AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
    except OSError as err:
        raise _not_available(name_or_path, err) from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name_or_path: str | os.PathLike, dtype: str | torch.dtype = "auto", device: str | None = None,
               **kwargs):
    """Load a causal LM by hub id (`Qwen/Qwen3-1.7B`) or local folder (`runs/x/base/model`).

    Offline (`HF_HUB_OFFLINE=1`) a hub id works only if its weights are already in the Hugging Face cache;
    otherwise the error says how to get them.
    """
    if isinstance(dtype, str) and dtype not in {"auto", "float32", "bfloat16", "float16"}:
        raise ValueError(f"dtype={dtype!r} is not one of 'auto', 'float32', 'bfloat16', 'float16'")
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    if _is_local(name_or_path) and not (Path(name_or_path) / "config.json").exists():
        raise MissingError(f"{name_or_path}: not a model folder saved with save_pretrained (no config.json)")
    try:
        model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype, **kwargs)
    except OSError as err:
        raise _not_available(name_or_path, err) from err
    if device is not None:
        model.to(device)
    return model


def _not_available(name_or_path, err: Exception) -> Exception:
    if _is_local(name_or_path):
        return MissingError(f"{name_or_path}: not a model folder saved with save_pretrained ({err})")
    how = (f"download it on a machine with internet (`hf download {name_or_path}`) and copy the Hugging Face cache "
           f"here, or pass a local folder that holds the weights")
    if _offline():
        return ModelNotAvailableError(f"{name_or_path!r} is a hub id, HF_HUB_OFFLINE=1 is set and it is not in the "
                                      f"local cache: {how}")
    return ModelNotAvailableError(f"could not load {name_or_path!r} ({err}): {how}")


def check_compatible(teacher_tokenizer, student_tokenizer, teacher_model=None, student_model=None) -> None:
    """Raise `TokenizerMismatchError` unless teacher and student share vocabulary, special tokens and chat template.

    Dense per-token rewards compare `log pT(y_t)` with `log pS(y_t)` for the same token id: with different
    tokenizers the ids name different strings and the rewards are silently wrong. Model vocab sizes may be padded
    past the tokenizer (Qwen3 pads to 151,936), so they must only cover it.
    """
    problems = []
    tv, sv = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if tv != sv:
        only_t = sorted(set(tv) - set(sv))[:5]
        only_s = sorted(set(sv) - set(tv))[:5]
        moved = sorted(k for k in set(tv) & set(sv) if tv[k] != sv[k])[:5]
        problems.append(f"vocabularies differ (teacher {len(tv)}, student {len(sv)} entries; only in teacher "
                        f"{only_t}, only in student {only_s}, different ids {moved})")
    for attr in ("eos_token", "pad_token", "bos_token"):
        t, s = getattr(teacher_tokenizer, attr), getattr(student_tokenizer, attr)
        if t != s:
            problems.append(f"{attr} differs (teacher {t!r}, student {s!r})")
    if teacher_tokenizer.chat_template != student_tokenizer.chat_template:
        problems.append("chat templates differ")
    for who, model in (("teacher", teacher_model), ("student", student_model)):
        if model is not None and model.get_output_embeddings().weight.shape[0] < len(teacher_tokenizer):
            problems.append(f"{who} output head has {model.get_output_embeddings().weight.shape[0]} rows, fewer "
                            f"than the tokenizer's {len(teacher_tokenizer)} tokens")
    if problems:
        raise TokenizerMismatchError(
            "teacher and student tokenizers are not compatible: " + "; ".join(problems)
            + ". Use a teacher and student from the same family (e.g. Qwen3-8B with Qwen3-1.7B), or the same "
              "tiny tokenizer for both.")
