import pytest
import torch

from s2dlab.generation import format_prompt, sample, vllm_available
from s2dlab.models import TINY_STUDENT, build_char_tokenizer, build_tiny_model

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
