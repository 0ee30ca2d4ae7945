"""Sampling backends returning rollouts with token ids and the sampler's per-token log-probs.

`hf` (default) batches over transformers' `generate`; `vllm` hands the same request to vLLM's offline `LLM`
engine and is only importable on a GPU box with the `[vllm]` extra. Both return `Rollout`s
(docs/CONTRACTS.md), which `s2dlab.core.scoring.score_rollouts` turns into run-store rows.

Training stages do not use this module for their own rollouts: TRL's trainers generate (with vLLM through
TRL's `use_vllm` options on a GPU box). This module serves evaluation, teacher rollouts for the warmup,
probe snapshots and the app's live view.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

BACKENDS = ("hf", "vllm")


@dataclass
class Rollout:
    prompt_id: str  # the problem record's id
    sample_idx: int  # 0..n-1 within the problem
    prompt: str  # the bare problem text
    prompt_text: str  # the prompt as the model saw it (chat template applied)
    prompt_ids: list[int]
    completion_ids: list[int]  # sampled tokens, eos included when the model stopped, no padding
    completion: str  # decoded completion_ids, special tokens skipped
    sampler_logprobs: list[float]  # log-prob of each sampled token under the sampling distribution
    finished: bool  # ended with eos (False: cut at max_new_tokens)
    policy: str = "student"  # who sampled it: "student" or "teacher"

    def to_dict(self) -> dict:
        return asdict(self)


def format_prompt(tokenizer, problem: str, prompt_suffix: str = "", chat_template_kwargs: dict | None = None) -> str:
    """The problem as the model sees it: one user turn in the chat template, generation prompt added."""
    content = f"{problem} {prompt_suffix}".strip() if prompt_suffix else problem
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True, **(chat_template_kwargs or {}))


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def vllm_engine(model_path, gpu_memory_utilization: float = 0.9, seed: int = 0, dtype: str = "auto", **kwargs):
    """vLLM's offline `LLM` on this process's GPU for a folder or hub id; pass it to `sample(backend="vllm")`.

    vLLM sizes its KV cache from the GPU memory left free, so torch's cached blocks (a stage that just trained in
    this process) are released first, and `gpu_memory_utilization` bounds vLLM's share when models stay loaded
    beside it. Other keyword arguments go to `vllm.LLM` as they are.
    """
    if not vllm_available():
        raise RuntimeError("backend='vllm' needs vLLM, which installs only on a CUDA machine: "
                           "pip install 's2dlab[vllm]' there, or use backend='hf'")
    import gc

    from vllm import LLM  # noqa: PLC0415 - optional dependency

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return LLM(model=str(model_path), gpu_memory_utilization=gpu_memory_utilization, seed=seed, dtype=dtype,
               **kwargs)


def _check_sampling(temperature: float, top_p: float, top_k: int, n: int, max_new_tokens: int) -> None:
    if temperature < 0:
        raise ValueError(f"temperature={temperature} must be >= 0 (0 means greedy)")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p} must be in (0, 1]")
    if top_k < 0:
        raise ValueError(f"top_k={top_k} must be >= 0 (0 disables top-k)")
    if n < 1 or max_new_tokens < 1:
        raise ValueError(f"n={n} and max_new_tokens={max_new_tokens} must both be >= 1")


def sample(model, tokenizer, records: list[dict], n: int = 1, max_new_tokens: int = 64, temperature: float = 1.0,
           top_p: float = 1.0, top_k: int = 0, batch_size: int = 64, seed: int | None = None,
           prompt_suffix: str = "", chat_template_kwargs: dict | None = None, progress: bool = True,
           backend: str = "hf", policy: str = "student") -> list[Rollout]:
    """Sample `n` completions for each problem record (`{"id", "prompt", ...}`); temperature 0 is greedy.

    `model` is a loaded model for `hf` and a model name or folder for `vllm`. With `hf` the sampling distribution
    is exactly the arguments': softmax over the tokenizer's `len(tokenizer)` tokens (an output head's padding rows get zero
    probability), then temperature, top-k, top-p; the sampling defaults of the checkpoint's generation_config.json
    are not used. Generation stops at `tokenizer.eos_token` only. `sampler_logprobs` are log-probs under that
    distribution; with `hf` they cost `[batch, vocab]` floats for one step, not for every step.
    """
    _check_sampling(temperature, top_p, top_k, n, max_new_tokens)
    if backend == "hf":
        return _sample_hf(model, tokenizer, records, n, max_new_tokens, temperature, top_p, top_k, batch_size, seed,
                          prompt_suffix, chat_template_kwargs, progress, policy)
    if backend == "vllm":
        return _sample_vllm(model, tokenizer, records, n, max_new_tokens, temperature, top_p, top_k, seed,
                            prompt_suffix, chat_template_kwargs, policy)
    raise ValueError(f"backend={backend!r} is not one of {BACKENDS}")


class _MaskRowsBeyond(LogitsProcessor):
    """Give the output head's padding rows (ids >= `n`, no token of the tokenizer) zero probability.

    Qwen3 pads its 151,669-token tokenizer to a 151,936-row head; an untrained or freshly cut model puts real
    probability there, and a sampled padding id decodes to nothing and cannot be scored. transformers'
    `SuppressTokensLogitsProcessor` would do the same, but it is also what `generate` builds from a model's own
    `suppress_tokens` setting, which a custom instance of the same type silently replaces.
    """

    def __init__(self, n: int):
        self.n = n

    def __call__(self, input_ids, scores):
        # In place: `generate` hands the processors its own float32 copy of the step's logits, and `_sample_hf`
        # asks for no raw logits that could share it (a clone costs a [B, V] copy per step).
        if scores.shape[-1] > self.n:
            scores[:, self.n:] = -float("inf")
        return scores


class _SampledLogprobs(LogitsProcessor):
    """Records `log q(y_t)` of each sampled token, q being the distribution the sampler draws from.

    Placed after every other processor, `scores` is exactly what `generate` samples from (or takes the argmax
    of): its log-softmax at the drawn token is the sampler's log-prob. The token drawn at step t is only known at
    step t+1, where it is the last column of `input_ids`, so this keeps a reference to one step's scores and
    gathers from them a step later; `finish(sequences)` handles the last step. Memory is one `[B, V]` row plus
    `[B]` floats per step, where `output_scores=True` keeps `[B, V]` per step (tokens x vocabulary).
    """

    def __init__(self):
        self.prev_BV: torch.Tensor | None = None
        self.logps: list[torch.Tensor] = []  # one [B] tensor per generated token

    def _take(self, tokens_B: torch.Tensor) -> None:
        # A [B, V] log_softmax, gathered and dropped at once: 2-4x faster on CPU than `logsumexp` (measured at
        # [8, 151936]), and the same computation as stacking every step did.
        logp_BV = torch.log_softmax(self.prev_BV.float(), dim=-1)
        self.logps.append(logp_BV.gather(-1, tokens_B[:, None]).squeeze(-1))

    def __call__(self, input_ids, scores):
        if self.prev_BV is not None:
            self._take(input_ids[:, -1])
        self.prev_BV = scores
        return scores

    def finish(self, new_BT: torch.Tensor) -> torch.Tensor:
        """`[B, T]` log-probs of the `T` generated tokens `new_BT` (the new columns of `generate`'s output)."""
        if self.prev_BV is not None:
            self._take(new_BT[:, -1])
            self.prev_BV = None
        if len(self.logps) != new_BT.shape[1]:
            raise RuntimeError(f"recorded {len(self.logps)} sampling steps for {new_BT.shape[1]} generated tokens")
        return torch.stack(self.logps, dim=1) if self.logps else torch.zeros(new_BT.shape, dtype=torch.float32)


def _sampling_processors(temperature: float, top_p: float, top_k: int) -> list[LogitsProcessor]:
    """transformers' own temperature, top-k and top-p warpers, in the order `generate` applies them.

    They are passed to `generate` as custom processors (and `generate`'s own warpers switched off) because
    `generate` appends its warpers after any custom processor, and the log-prob recorder must come last.
    """
    if temperature == 0:
        return []
    out: list[LogitsProcessor] = []
    if temperature != 1.0:
        out.append(TemperatureLogitsWarper(temperature))
    if top_k:
        out.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
    if top_p < 1.0:
        out.append(TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=1))
    return out


# What `generate` would otherwise take from a checkpoint's generation_config.json (Qwen3 ships temperature 0.6,
# top_k 20, top_p 0.95): neutral values, so the sampling distribution is exactly what `sample()` was asked for.
_NEUTRAL_WARPERS = dict(temperature=1.0, top_k=0, top_p=1.0, min_p=None, typical_p=1.0, epsilon_cutoff=0.0,
                        eta_cutoff=0.0, top_h=None)


@torch.no_grad()
def _sample_hf(model, tokenizer, records, n, max_new_tokens, temperature, top_p, top_k, batch_size, seed,
               prompt_suffix, chat_template_kwargs, progress, policy) -> list[Rollout]:
    device = next(model.parameters()).device
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    # One entry per (problem, sample): n copies of each prompt, batched together.
    jobs = [(rec, k) for rec in records for k in range(n)]
    texts = {rec["id"]: format_prompt(tokenizer, rec["prompt"], prompt_suffix, chat_template_kwargs) for rec in records}
    greedy = temperature == 0
    gen_kwargs = dict(max_new_tokens=max_new_tokens, do_sample=not greedy, pad_token_id=pad_id, eos_token_id=eos_id,
                      **_NEUTRAL_WARPERS)
    if greedy:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    warpers = _sampling_processors(temperature, top_p, top_k)
    was_training = model.training
    model.eval()
    out: list[Rollout] = []
    with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        if seed is not None:
            torch.manual_seed(seed)
        bar = tqdm(range(0, len(jobs), batch_size), desc=f"sampling ({policy})", disable=not progress, leave=False)
        for start in bar:
            chunk = jobs[start:start + batch_size]
            enc = tokenizer([texts[rec["id"]] for rec, _ in chunk], return_tensors="pt", padding=True,
                            padding_side="left", add_special_tokens=False).to(device)
            recorder = _SampledLogprobs()
            processors = LogitsProcessorList([_MaskRowsBeyond(len(tokenizer)), *warpers, recorder])
            sequences = model.generate(**enc, **gen_kwargs, logits_processor=processors)
            new_BT = sequences[:, enc.input_ids.shape[1]:]
            logp_BT = recorder.finish(new_BT).cpu()
            for i, (rec, k) in enumerate(chunk):
                ids = new_BT[i].tolist()
                finished = eos_id in ids
                length = ids.index(eos_id) + 1 if finished else len(ids)
                prompt_ids = enc.input_ids[i][enc.attention_mask[i].bool()].tolist()
                out.append(Rollout(
                    prompt_id=rec["id"], sample_idx=k, prompt=rec["prompt"], prompt_text=texts[rec["id"]],
                    prompt_ids=prompt_ids, completion_ids=ids[:length],
                    completion=tokenizer.decode(ids[:length], skip_special_tokens=True),
                    sampler_logprobs=logp_BT[i, :length].tolist(), finished=finished, policy=policy))
    if was_training:
        model.train()
    return out


def _sample_vllm(model, tokenizer, records, n, max_new_tokens, temperature, top_p, top_k, seed, prompt_suffix,
                 chat_template_kwargs, policy) -> list[Rollout]:
    if not vllm_available():
        raise RuntimeError("backend='vllm' needs vLLM, which installs only on a CUDA machine: "
                           "pip install 's2dlab[vllm]' there, or use backend='hf'")
    from vllm import LLM, SamplingParams  # noqa: PLC0415 - optional dependency

    llm = model if isinstance(model, LLM) else vllm_engine(model, seed=seed or 0)
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k if top_k > 0 else -1,
                            max_tokens=max_new_tokens, logprobs=0, seed=seed)
    texts = [format_prompt(tokenizer, rec["prompt"], prompt_suffix, chat_template_kwargs) for rec in records]
    results = llm.generate([{"prompt": t} for t in texts], params)
    out = []
    for rec, text, res in zip(records, texts, results):
        for k, comp in enumerate(res.outputs):
            ids = list(comp.token_ids)
            logps = [lp[t].logprob for lp, t in zip(comp.logprobs or [], ids)]
            out.append(Rollout(prompt_id=rec["id"], sample_idx=k, prompt=rec["prompt"], prompt_text=text,
                               prompt_ids=list(res.prompt_token_ids), completion_ids=ids,
                               completion=tokenizer.decode(ids, skip_special_tokens=True), sampler_logprobs=logps,
                               finished=comp.finish_reason == "stop", policy=policy))
    return out
