import pytest
import torch

from s2dlab.core.generation import format_prompt, sample, vllm_available
from s2dlab.core.models import TINY_STUDENT, build_char_tokenizer, build_tiny_model

RECORDS = [{"id": "a", "prompt": "12+30=?"}, {"id": "b", "prompt": "55-13+2=?"}]


@pytest.fixture(scope="module")
def pair():
    tok = build_char_tokenizer()
    return build_tiny_model(TINY_STUDENT, tok), tok


def test_rollouts_carry_ids_text_and_sampler_logprobs(pair):
    model, tok = pair
    out = sample(model, tok, RECORDS, n=3, max_new_tokens=12, seed=0, progress=False)
    assert [(r.prompt_id, r.sample_idx) for r in out] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    for r in out:
        assert len(r.completion_ids) == len(r.sampler_logprobs) <= 12
        assert r.prompt_text == format_prompt(tok, r.prompt)
        assert r.prompt_ids == tok(r.prompt_text, add_special_tokens=False).input_ids
        assert r.finished == (r.completion_ids[-1] == tok.eos_token_id)
        assert r.completion == tok.decode(r.completion_ids, skip_special_tokens=True)
        # T=1, no top-k/top-p: the sampler's log-probs are the model's own next-token log-probs
        ids = torch.tensor([r.prompt_ids + r.completion_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, len(r.prompt_ids) - 1:-1].float(), -1)
        ref = logp.gather(-1, torch.tensor(r.completion_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(r.sampler_logprobs), ref, atol=1e-4, rtol=1e-4)


def test_seed_determinism_and_greedy(pair):
    model, tok = pair
    a = sample(model, tok, RECORDS, n=2, max_new_tokens=10, seed=7, progress=False)
    b = sample(model, tok, RECORDS, n=2, max_new_tokens=10, seed=7, progress=False)
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]
    g = sample(model, tok, RECORDS, n=2, max_new_tokens=10, temperature=0, progress=False)
    assert g[0].completion_ids == g[1].completion_ids


def test_top_k_one_is_greedy(pair):
    model, tok = pair
    k1 = sample(model, tok, RECORDS[:1], n=1, max_new_tokens=8, top_k=1, seed=3, progress=False)
    g = sample(model, tok, RECORDS[:1], n=1, max_new_tokens=8, temperature=0, progress=False)
    assert k1[0].completion_ids == g[0].completion_ids
    assert all(abs(lp) < 1e-5 for lp in k1[0].sampler_logprobs)  # one allowed token: log-prob 0


def _stacked_reference(model, tok, records, n, max_new_tokens, temperature, top_p, top_k, seed):
    """The sampler's log-probs as `sample()` computed them before: every step's processed scores kept
    (`output_scores=True`), stacked to `[B, T, V]`, log-softmaxed and gathered at the sampled tokens."""
    texts = [format_prompt(tok, r["prompt"]) for r in records for _ in range(n)]
    enc = tok(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=temperature > 0, pad_token_id=tok.pad_token_id,
              eos_token_id=tok.eos_token_id, output_scores=True, return_dict_in_generate=True)
    kw.update(temperature=temperature, top_p=top_p, top_k=top_k) if temperature > 0 else kw.update(
        temperature=None, top_p=None, top_k=None)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        res = model.generate(**enc, **kw)
    new_BT = res.sequences[:, enc.input_ids.shape[1]:]
    logp_BT = torch.log_softmax(torch.stack(res.scores, dim=1).float(), -1).gather(-1, new_BT[..., None])[..., 0]
    return new_BT, logp_BT


@pytest.mark.parametrize("temperature, top_p, top_k", [(0, 1.0, 0), (1.0, 1.0, 0), (0.7, 0.9, 20), (1.3, 0.5, 0),
                                                       (0.7, 1.0, 5)])
def test_sampler_logprobs_match_stacked_scores(pair, temperature, top_p, top_k):
    """The recorder that keeps one step of scores gives the same tokens and log-probs as stacking every step."""
    model, tok = pair
    out = sample(model, tok, RECORDS, n=3, max_new_tokens=16, temperature=temperature, top_p=top_p, top_k=top_k,
                 seed=11, progress=False)
    new_BT, ref_BT = _stacked_reference(model, tok, RECORDS, 3, 16, temperature, top_p, top_k, seed=11)
    for i, r in enumerate(out):
        C = len(r.completion_ids)
        assert r.completion_ids == new_BT[i, :C].tolist()
        torch.testing.assert_close(torch.tensor(r.sampler_logprobs), ref_BT[i, :C], atol=1e-5, rtol=1e-5)
        assert all(-float("inf") < lp <= 0 for lp in r.sampler_logprobs)
        if temperature > 0:  # against the model's own softmax(logits / T) at the same tokens
            ids = torch.tensor([r.prompt_ids + r.completion_ids])
            with torch.no_grad():
                logits = model(ids).logits[0, len(r.prompt_ids) - 1:-1].float() / temperature
            full = torch.log_softmax(logits, -1).gather(-1, torch.tensor(r.completion_ids)[:, None]).squeeze(-1)
            if top_p < 1 or top_k:  # truncation renormalises over fewer tokens: never a lower log-prob
                assert (torch.tensor(r.sampler_logprobs) >= full - 1e-5).all()
                assert (torch.tensor(r.sampler_logprobs) > full + 1e-3).any()
            else:
                torch.testing.assert_close(torch.tensor(r.sampler_logprobs), full, atol=1e-4, rtol=1e-4)
    if temperature == 0:
        assert out[0].completion_ids == out[1].completion_ids == out[2].completion_ids


def test_padding_rows_of_the_head_are_never_sampled():
    """A head wider than the tokenizer (Qwen3 pads to a multiple of 128): padding ids get zero probability and the
    log-probs renormalise over the tokenizer's tokens."""
    tok = build_char_tokenizer()
    model = build_tiny_model(TINY_STUDENT, tok)
    model.resize_token_embeddings(len(tok) + 28)  # 128 rows
    with torch.no_grad():
        model.get_output_embeddings().weight[len(tok):] = 0.0
        model.get_output_embeddings().weight[len(tok):, 0] = 50.0  # padding rows would win almost every draw
    out = sample(model, tok, RECORDS, n=4, max_new_tokens=12, seed=0, progress=False)
    for r in out:
        assert max(r.completion_ids) < len(tok)
        ids = torch.tensor([r.prompt_ids + r.completion_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(r.prompt_ids) - 1:-1, :len(tok)].float()
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(r.completion_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(r.sampler_logprobs), ref, atol=1e-4, rtol=1e-4)


def test_checkpoint_sampling_defaults_do_not_leak_in(pair):
    """A generation_config.json with its own temperature/top-k/top-p/min-p (Qwen3 ships 0.6 / 20 / 0.95) does not
    change what `sample()` draws from: T=1 with no truncation stays the model's own distribution."""
    model, tok = pair
    gc = model.generation_config
    saved = (gc.temperature, gc.top_k, gc.top_p, gc.min_p)
    gc.temperature, gc.top_k, gc.top_p, gc.min_p = 0.6, 20, 0.95, 0.1
    try:
        out = sample(model, tok, RECORDS, n=2, max_new_tokens=10, seed=5, progress=False)
    finally:
        gc.temperature, gc.top_k, gc.top_p, gc.min_p = saved
    for r in out:
        ids = torch.tensor([r.prompt_ids + r.completion_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, len(r.prompt_ids) - 1:-1].float(), -1)
        ref = logp.gather(-1, torch.tensor(r.completion_ids)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(r.sampler_logprobs), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs, fragment", [({"temperature": -1}, "temperature=-1"), ({"top_p": 0}, "top_p=0"),
                                              ({"top_k": -2}, "top_k=-2"), ({"backend": "tgi"}, "backend='tgi'")])
def test_bad_sampling_arguments(pair, kwargs, fragment):
    model, tok = pair
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        sample(model, tok, RECORDS, progress=False, **kwargs)


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed here")
def test_vllm_backend_without_vllm_says_how(pair):
    model, tok = pair
    with pytest.raises(RuntimeError, match=r"s2dlab\[vllm\]"):
        sample("some/model", tok, RECORDS, backend="vllm")
