import pytest
import torch

from s2dlab.models import (
    TINY_STUDENT,
    TINY_TEACHER,
    ModelNotAvailableError,
    TokenizerMismatchError,
    build_char_tokenizer,
    build_tiny_model,
    check_compatible,
    count_parameters,
    load_model,
    load_tokenizer,
)


@pytest.fixture(scope="module")
def tok():
    return build_char_tokenizer()


def test_char_tokenizer_round_trip_and_chat_template(tok):
    text = "73-67=6\n6+70=76\n\\boxed{76}"
    ids = tok(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text)  # one token per character
    assert tok.decode(ids) == text
    prompt = tok.apply_chat_template([{"role": "user", "content": "1+2=?"}], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\n1+2=?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, add_special_tokens=False).input_ids
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and tok.eos_token == "<|im_end|>"
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.decode(tok("é", add_special_tokens=False).input_ids) != "é"  # outside ASCII -> unk, not a crash


def test_tiny_models_are_qwen3_and_teacher_is_larger(tok):
    teacher, student = build_tiny_model(TINY_TEACHER, tok), build_tiny_model(TINY_STUDENT, tok)
    assert teacher.config.model_type == student.config.model_type == "qwen3"
    assert count_parameters(teacher) > 5 * count_parameters(student)
    assert 0.5e6 < count_parameters(teacher) < 5e6 and 0.05e6 < count_parameters(student) < 1e6
    same = build_tiny_model(TINY_STUDENT, tok, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(student.parameters(), same.parameters()))


def test_save_and_load_round_trip(tmp_path, tok):
    model = build_tiny_model(TINY_STUDENT, tok)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_model(tmp_path), load_tokenizer(tmp_path)
    ids = torch.tensor([tok("12+3=?", add_special_tokens=False).input_ids])
    torch.testing.assert_close(model(ids).logits, again(ids).logits)
    assert tok2.get_vocab() == tok.get_vocab() and tok2.chat_template == tok.chat_template
    check_compatible(tok, tok2, model, again)


def test_hub_id_offline_says_how_to_get_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="hf download"):
        load_model("Qwen/Qwen3-0.6B-does-not-exist")
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        load_model(tmp_path)


def test_mismatched_tokenizers_raise_named_error(tok):
    other = build_char_tokenizer()
    other.add_tokens(["<extra>"])
    with pytest.raises(TokenizerMismatchError, match="vocabularies differ"):
        check_compatible(tok, other)
    other = build_char_tokenizer()
    other.chat_template = "{{ messages }}"
    with pytest.raises(TokenizerMismatchError, match="chat templates differ"):
        check_compatible(tok, other)
