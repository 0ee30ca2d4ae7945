"""What each completion token shows as text: its exact bytes, and display spans of whole characters.

Byte-level BPE (GPT-2, Qwen, SmolLM2) and SentencePiece's byte fallback split a multibyte character (é, 数, 😀)
across tokens, so a token decoded on its own can be U+FFFD. `token_columns(tokenizer, ids)` gives what a reader
needs to render whole characters without the tokenizer; `s2dlab.core.scoring.score_rollouts` stores it with every row:

    tokens         list[str]    token i's own text: its bytes as UTF-8, a partial character as `\\xNN` escapes;
                                a special token's name (`<|im_end|>`)
    token_bytes    list[bytes]  the exact bytes token i contributes to `tokenizer.decode(ids)` (special tokens kept)
    token_special  list[bool]   True for the tokenizer's special tokens (eos, `<|im_end|>`, pad, ...)
    span_starts    list[int]    first token of each display span; span k covers tokens
                                span_starts[k] .. span_starts[k+1]-1 (the last one runs to the end)
    span_texts     list[str]    each span's text: `"".join(span_texts) == tokenizer.decode(ids,
                                skip_special_tokens=False, clean_up_tokenization_spaces=False)`

A display span is the shortest run of consecutive tokens whose bytes end on a character boundary; a special token
is always a span of its own. Bytes that are not valid UTF-8 (a model sampling byte garbage) show as U+FFFD in the
span text, exactly as in the tokenizer's decode, while `tokens` keeps the bytes visible as `\\xNN`.

Why our own code: `tokenizers` decodes whole sequences and exposes no per-token bytes. We mirror the decoders
causal LMs use (ByteLevel; Replace / ByteFallback / Fuse / Strip as in converted SentencePiece models; Metaspace)
and check every row against the tokenizer's own decode. Where they disagree (a decoder not mirrored here, or
invalid byte-fallback bytes, which `tokenizers` replaces byte by byte) each token is decoded on its own instead,
which is what readers showed before.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache

log = logging.getLogger(__name__)

_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{2})>")
# The decoder steps mirrored below; any other kind falls back to decoding each token on its own.
_SUPPORTED = {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"}
# What a slow SentencePiece tokenizer (no `tokenizers` backend) does when it decodes: Llama's converted decoder.
_SENTENCEPIECE_STEPS = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                        {"type": "ByteFallback"}, {"type": "Fuse"},
                        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    # GPT-2's reversible byte <-> printable-character table, as byte-level BPE vocabularies spell their tokens
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return {ch: b for b, ch in bytes_to_unicode().items()}


def _flatten(spec: dict | None) -> list[dict] | None:
    if spec is None:
        return None
    steps = spec["decoders"] if spec.get("type") == "Sequence" else [spec]
    out = []
    for step in steps:
        if step.get("type") == "Sequence":
            inner = _flatten(step)
            if inner is None:
                return None
            out += inner
        elif step.get("type") not in _SUPPORTED or (step["type"] == "Replace" and "String" not in step["pattern"]):
            return None
        else:
            out.append(step)
    return out


class TokenText:
    """Per-token bytes and display spans for one tokenizer: a transformers tokenizer or a `tokenizers.Tokenizer`.

    Build it once per tokenizer (it reads the decoder's configuration and caches the special ids).
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None and hasattr(tokenizer, "get_added_tokens_decoder"):
            backend = tokenizer  # a bare tokenizers.Tokenizer
        self._backend = backend
        self._hf = backend is not tokenizer
        special: set[int] = set()
        if self._hf:
            special |= {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
            added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
            special |= {int(i) for i, t in added.items() if getattr(t, "special", False)}
        if backend is not None:
            special |= {int(i) for i, t in backend.get_added_tokens_decoder().items() if t.special}
            decoder = backend.decoder
            self._steps = _flatten(json.loads(decoder.__getstate__())) if decoder is not None else None
        else:
            self._steps = _SENTENCEPIECE_STEPS if hasattr(tokenizer, "sp_model") else None
        self.special_ids = frozenset(special)

    # ---- one tokenizer's decode, in pieces

    def _piece(self, i: int) -> str:
        if self._backend is not None:
            piece = self._backend.id_to_token(i)
        else:
            piece = self.tokenizer.convert_ids_to_tokens(i)
        if piece is None:
            raise ValueError(f"token id {i} is not in the tokenizer's vocabulary")
        return piece

    def _decode(self, ids: Sequence[int]) -> str:
        if self._hf:
            return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return self._backend.decode(list(ids), skip_special_tokens=False)

    def _mirrored_bytes(self, ids: Sequence[int], *, alone: bool = False) -> list[bytes]:
        """Each token's bytes through the mirrored decoder; `alone`: as inside a text (no sequence-start rules)."""
        items = [self._piece(i).encode("utf-8") for i in ids]
        fused = False
        for step in self._steps:
            kind = step["type"]
            if kind == "ByteLevel":
                table = _unicode_to_byte()
                out = []
                for b in items:
                    text = b.decode("utf-8")
                    out.append(bytes(table[c] for c in text) if all(c in table for c in text) else b)
                items, fused = out, True
            elif kind == "Replace":
                old, new = step["pattern"]["String"].encode(), step["content"].encode()
                items = [b.replace(old, new) for b in items]
            elif kind == "ByteFallback":
                items = [bytes([int(m.group(1), 16)]) if (m := _BYTE_PIECE.fullmatch(b)) else b for b in items]
            elif kind == "Fuse":
                fused = True
            elif kind == "Strip" and not alone:
                content, start, stop = step["content"].encode(), int(step["start"]), int(step["stop"])
                items = _strip(items, content, start, stop, whole=fused)
            elif kind == "Metaspace":
                rep = step["replacement"].encode()
                drop_first = step.get("prepend_scheme", "always") != "never" and not alone
                items = [b.replace(rep, b"" if (k == 0 and drop_first) else b" ") for k, b in enumerate(items)]
        return items

    def token_bytes(self, ids: Sequence[int]) -> list[bytes]:
        """The exact bytes each token contributes to `tokenizer.decode(ids)` (special tokens kept, no clean-up).

        Falls back to each token decoded on its own (a partial character then reads as U+FFFD) where the
        mirrored decoder disagrees with the tokenizer's decode of the whole sequence.
        """
        ids = [int(i) for i in ids]
        if self._steps is not None:
            items = self._mirrored_bytes(ids)
            if b"".join(items).decode("utf-8", errors="replace") == self._decode(ids):
                return items
        return [self._decode([i]).encode("utf-8") for i in ids]

    def name(self, i: int) -> str:
        """One token's text as it reads inside a text (top-k alternatives; a SentencePiece word keeps its leading
        space), a partial character as `\\xNN` escapes."""
        if self._steps is None:
            return token_strings([self._decode([i]).encode("utf-8")])[0]
        return token_strings(self._mirrored_bytes([i], alone=True))[0]

    def columns(self, ids: Sequence[int]) -> dict[str, list]:
        """The five row columns of the module docstring for one completion."""
        ids = [int(i) for i in ids]
        raw = self.token_bytes(ids)
        special = [i in self.special_ids for i in ids]
        starts, texts = display_spans(raw, special)
        return {"tokens": token_strings(raw), "token_bytes": raw, "token_special": special, "span_starts": starts,
                "span_texts": texts}


def _strip(items: list[bytes], content: bytes, start: int, stop: int, *, whole: bool) -> list[bytes]:
    """`tokenizers`' Strip decoder: drop up to `start` leading and `stop` trailing `content`s, from each token or
    (after Fuse) from the whole sequence, charging each cut to the token it falls in."""
    if not whole:
        return [_strip([b], content, start, stop, whole=True)[0] for b in items]
    items = list(items)
    for n, front in ((start, True), (stop, False)):
        for k in (range(len(items)) if front else range(len(items) - 1, -1, -1)):
            while n and items[k]:
                if front and items[k].startswith(content):
                    items[k] = items[k][len(content):]
                elif not front and items[k].endswith(content):
                    items[k] = items[k][:-len(content)]
                else:
                    n = 0  # another character ends the stripping
                    break
                n -= 1
            if not n:
                break
    return items


def token_strings(token_bytes: Sequence[bytes]) -> list[str]:
    """Each token's own text: its bytes as UTF-8, bytes that are no whole character as `\\xNN` escapes."""
    return [bytes(b).decode("utf-8", errors="backslashreplace") for b in token_bytes]


def display_spans(token_bytes: Sequence[bytes], special: Sequence[bool] | None = None) -> tuple[list[int], list[str]]:
    """(span_starts, span_texts): consecutive tokens grouped until their bytes end on a character boundary.

    A special token is a span of its own. The texts concatenate to the bytes decoded as UTF-8 with
    `errors="replace"` (what `tokenizers` does): an incremental decoder is fed token by token, and a span closes
    whenever it holds no pending partial character.
    """
    special = list(special) if special is not None else [False] * len(token_bytes)
    if len(special) != len(token_bytes):
        raise ValueError(f"{len(token_bytes)} tokens but {len(special)} special flags")
    starts: list[int] = []
    texts: list[str] = []
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    start, text = None, ""
    for i, (b, is_special) in enumerate(zip(token_bytes, special)):
        if is_special:
            if start is not None:  # a partial character right before a special token reads as U+FFFD, as in decode
                starts.append(start)
                texts.append(text + decoder.decode(b"", final=True))
                decoder.reset()
                start = None
            starts.append(i)
            texts.append(bytes(b).decode("utf-8", errors="replace"))
            continue
        if start is None:
            start, text = i, ""
        text += decoder.decode(bytes(b))
        if decoder.getstate()[0] == b"":  # on a character boundary: the span is whole
            starts.append(start)
            texts.append(text)
            start = None
    if start is not None:
        starts.append(start)
        texts.append(text + decoder.decode(b"", final=True))
    return starts, texts


def token_columns(tokenizer, ids: Sequence[int]) -> dict[str, list]:
    """`TokenText(tokenizer).columns(ids)`; build a `TokenText` once when doing many rows."""
    return TokenText(tokenizer).columns(ids)
