"""Stage 2b, `opd`: on-policy distillation. The student samples, the frozen teacher scores every token.

For a student rollout `y ~ pS(.|x)` the per-token implicit reward is `log pT(y_t) - log pS(y_t)`; its expectation
under the student is minus the reverse KL, `E_{y_t~pS}[-implicit_reward[t]] = KL(pS || pT)[t]`. One OPD step,
`-grad KL(pS || pT)` at the current student, is the policy gradient of that per-token reward with discount 0 (each
token is credited with its own reward only): a local, trust-region-like step, exact only at the current policy.
Two losses (`opd.loss`):

- `full_reverse_kl` (default): TRL's `DistillationTrainer` with `beta=1` (its generalised JSD at beta 1 is the
  reverse KL `KL(pS || pT)`), over the full vocabulary at every sampled position, chunked over the vocabulary.
- `sampled_token`: the implicit reward of the sampled token as its advantage, `loss = -sum_t A_t log pS(y_t) / T`
  with `A_t = log pT(y_t) - log pS(y_t)` held fixed (the score-function estimator of the same gradient, the form
  used when a separate engine samples). TRL has no such loss, so it is a small override of `DistillationTrainer`'s
  loss; sampling, batching, checkpoints and logging stay TRL's. The sampler is the current student (one optimizer
  step per sampled batch), so no importance ratio is needed.

Each step samples `opd.rollouts_per_prompt` rollouts (paper: 8) of `batch_size / rollouts_per_prompt` prompts from the
bridge's label-free prompt set. TRL's `DistillationTrainer` samples one rollout per prompt; we repeat each prompt of a
step with the same `RepeatSampler` GRPO uses. Probe snapshots show the dense reward and the reverse KL during
training.

**Per-step metrics of the signal** (metrics.jsonl, beside TRL's `loss` and `grad_norm`; `step_metrics`): on the
tokens the student sampled in the step, the implicit reward's mean, variance and minimum (`opd/implicit_reward_*`),
the exact per-token reverse KL (`opd/reverse_kl`), and the share of the loss carried by the top 1% of tokens
(`opd/top1pct_loss_share`). Both losses follow the gradient of the same per-token reverse KL, each through its own
per-token estimate: the exact `KL(pS || pT)[t]` (full_reverse_kl) or its one-sample estimate `-A_t = log pS(y_t) -
log pT(y_t)` (sampled_token); the share is that of the |estimate|. With `opd.grad_share=true` (one extra backward
pass per step, so off by default) also `opd/top1pct_grad_share`: the norm of the gradient of the loss restricted
to those top 1% of tokens over the norm of the whole loss's gradient. They are computed from the hidden states
the loss already has, so the default adds one output-head projection per step and no model forward.

    s2dlab stage opd --out runs/tiny
    s2dlab stage opd --out runs/tiny opd.loss=sampled_token opd.steps=50
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer
from trl.trainer.utils import RepeatSampler, selective_log_softmax

from s2dlab.core import data
from s2dlab.core.config import Config
from s2dlab.core.runs import Run
from s2dlab.workflow.stages import lifecycle

# --- the signal, measured ---------------------------------------------------------------------------------------------

TOP_FRACTION = 0.01  # "the top 1% of tokens": the ceil(1% of N) tokens with the largest |per-token loss|


def top_indices(values_N: torch.Tensor, fraction: float = TOP_FRACTION) -> torch.Tensor:
    """Indices of the `ceil(fraction * N)` entries of largest absolute value (at least one)."""
    k = max(1, math.ceil(fraction * values_N.numel()))
    return values_N.abs().topk(min(k, values_N.numel())).indices


def top_share(values_N: torch.Tensor, fraction: float = TOP_FRACTION) -> float | None:
    """Share of `sum |v|` carried by the `ceil(fraction * N)` entries of largest |v| (None when all are 0)."""
    a = values_N.detach().double().abs()
    total = a.sum().item()
    if not values_N.numel() or total == 0:
        return None
    return a[top_indices(a, fraction)].sum().item() / total


def step_metrics(implicit_reward_N: torch.Tensor, reverse_kl_N: torch.Tensor, loss_terms_N: torch.Tensor) -> dict:
    """The per-step signal metrics of OPD on the N sampled completion tokens of a step (packed, padding removed).

    `implicit_reward_N` = log pT(y_t) - log pS(y_t); `reverse_kl_N` = the exact KL(pS || pT) at each position;
    `loss_terms_N` = the loss's per-token estimate of that KL (the exact KL for full_reverse_kl, `-implicit_reward`
    for sampled_token). Variance is the population variance over the step's tokens.
    """
    r = implicit_reward_N.detach().double()
    if not r.numel():
        return {}
    return {"opd/implicit_reward_mean": r.mean().item(), "opd/implicit_reward_var": r.var(unbiased=False).item(),
            "opd/implicit_reward_min": r.min().item(), "opd/reverse_kl": reverse_kl_N.detach().double().mean().item(),
            "opd/top1pct_loss_share": top_share(loss_terms_N)}


def grad_norm_spikes(grad_norms: Sequence[float], factor: float = 5.0) -> dict:
    """Gradient-norm spikes of a run: steps whose norm exceeds `factor` x the run's median norm, and the largest
    norm over the median."""
    g = [float(x) for x in grad_norms if x is not None and math.isfinite(float(x))]
    if not g:
        return {"median": None, "max_over_median": None, "spikes": 0, "steps": 0, "factor": factor}
    median = sorted(g)[len(g) // 2] if len(g) % 2 else sum(sorted(g)[len(g) // 2 - 1:len(g) // 2 + 1]) / 2
    return {"median": median, "max_over_median": max(g) / median if median > 0 else None,
            "spikes": sum(x > factor * median for x in g), "steps": len(g), "factor": factor}


def top_grad_share(per_token_N: torch.Tensor, terms_N: torch.Tensor, params: list, n) -> float | None:
    """||grad of sum(per_token over the top 1% of `terms_N` by |value|) / n|| over ||grad of sum(per_token) / n||
    w.r.t. `params` (two backward passes through a retained graph; None when the whole gradient is 0)."""
    top = torch.zeros(per_token_N.shape, dtype=torch.bool, device=per_token_N.device)
    top[top_indices(terms_N.detach())] = True
    norms = []
    for loss in (per_token_N[top].sum() / n, per_token_N.sum() / n):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norms.append(math.sqrt(sum((g.double() ** 2).sum().item() for g in grads if g is not None)))
    return norms[0] / norms[1] if norms[1] > 0 else None


def _token_terms(s_logits_NV: torch.Tensor, t_logits_NV: torch.Tensor, ids_N: torch.Tensor):
    """(implicit reward, exact reverse KL) per position from aligned logits (float32; `s_logits` may carry grad)."""
    s_logp = torch.log_softmax(s_logits_NV.float(), dim=-1)
    t_logp = torch.log_softmax(t_logits_NV.float(), dim=-1)
    ids = ids_N.unsqueeze(-1)
    implicit = (t_logp.gather(-1, ids) - s_logp.gather(-1, ids)).squeeze(-1)
    reverse_kl = (s_logp.exp() * (s_logp - t_logp)).sum(-1)
    return implicit, reverse_kl


class OPDTrainer(DistillationTrainer):
    """`DistillationTrainer` with `rollouts_per_prompt` rollouts of each prompt in a step, the sampled-token loss as
    an option, and the per-step signal metrics (`step_metrics`; `grad_share` adds `opd/top1pct_grad_share`)."""

    def __init__(self, *args, rollouts_per_prompt: int = 1, sampled_token: bool = False, grad_share: bool = False,
                 **kwargs):
        self.rollouts_per_prompt, self.sampled_token, self.grad_share = rollouts_per_prompt, sampled_token, grad_share
        self._hidden = None
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, dataset=None):
        # As TRL's own sampler (one generation batch per optimizer step, reused across gradient accumulation), with
        # each prompt repeated `rollouts_per_prompt` times inside the batch.
        dataset = self.train_dataset if dataset is None else dataset
        generation_batch = (self.args.per_device_train_batch_size * self.accelerator.num_processes
                            * self.args.gradient_accumulation_steps)
        return RepeatSampler(data_source=dataset, mini_repeat_count=self.rollouts_per_prompt,
                             batch_size=generation_batch // self.rollouts_per_prompt,
                             repeat_count=self.args.gradient_accumulation_steps, shuffle=self.shuffle_dataset,
                             seed=self.args.seed)

    def _get_last_hidden_state(self, unwrapped_model, *args, **kwargs):
        h = super()._get_last_hidden_state(unwrapped_model, *args, **kwargs)
        if self._hidden is not None:  # inside `_compute_loss`: keep the student's, then the teacher's
            self._hidden.append(h)
        return h

    def _heads(self, unwrapped_student):
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        s_head, t_head = unwrapped_student.get_output_embeddings(), teacher.get_output_embeddings()
        return s_head, t_head, min(s_head.weight.shape[0], t_head.weight.shape[0])

    def _record(self, unwrapped_student, inputs, h_s, h_t, num_items_in_batch) -> None:
        """The signal metrics of this micro-batch (and, with `grad_share`, the top-1% gradient share)."""
        mask_BC = inputs["completion_mask"].bool().to(h_s.device)
        ids_N = inputs["completion_ids"].to(h_s.device)[mask_BC]
        s_head, t_head, V = self._heads(unwrapped_student)
        with torch.no_grad():
            implicit, rkl = [], []
            hs_N, ht_N = h_s[mask_BC], h_t[mask_BC].to(h_s.device)
            for start in range(0, ids_N.numel(), 1024):  # positions in chunks: memory is chunk x vocabulary
                sl = slice(start, start + 1024)
                i, k = _token_terms(s_head(hs_N[sl])[..., :V] / self.temperature,
                                    t_head(ht_N[sl])[..., :V] / self.temperature, ids_N[sl])
                implicit.append(i)
                rkl.append(k)
            implicit_N, rkl_N = torch.cat(implicit), torch.cat(rkl)
        terms_N = -implicit_N if self.sampled_token else rkl_N
        for key, value in step_metrics(implicit_N, rkl_N, terms_N).items():
            if value is not None:
                self._metrics["train" if self.model.training else "eval"][key].append(value)
        if self.grad_share and self.model.training and ids_N.numel():
            self._grad_share(unwrapped_student, hs_N, ht_N, ids_N, terms_N, s_head, t_head, V, num_items_in_batch)

    def _grad_share(self, unwrapped_student, hs_N, ht_N, ids_N, terms_N, s_head, t_head, V, num_items_in_batch):
        """||grad of the loss over the top 1% of tokens|| / ||grad of the whole loss||, from the same hidden states
        (two extra backward passes through the retained graph; the training step's own backward is untouched)."""
        with torch.no_grad():
            t_logits = t_head(ht_N)[..., :V] / self.temperature
        s_logits = s_head(hs_N)[..., :V] / self.temperature
        implicit, rkl = _token_terms(s_logits, t_logits, ids_N)
        if self.sampled_token:  # -A_t log pS(y_t), the advantage held fixed (as in the loss)
            s_logp_N = torch.log_softmax(s_logits.float(), -1).gather(-1, ids_N.unsqueeze(-1)).squeeze(-1)
            per_token = -implicit.detach() * s_logp_N
        else:
            per_token = rkl
        n = num_items_in_batch if num_items_in_batch is not None else per_token.numel()
        share = top_grad_share(per_token, terms_N, [p for p in unwrapped_student.parameters() if p.requires_grad], n)
        if share is not None:
            self._metrics["train"]["opd/top1pct_grad_share"].append(share)

    def _compute_loss(self, unwrapped_student, inputs, num_items_in_batch):
        if not self.sampled_token:
            self._hidden = []
            try:
                out = super()._compute_loss(unwrapped_student, inputs, num_items_in_batch)
                h_s, h_t = self._hidden
            finally:
                self._hidden = None
            self._record(unwrapped_student, inputs, h_s, h_t, num_items_in_batch)
            return out
        ids_BL = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
        attn_BL = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        completion_BC, mask_BC = inputs["completion_ids"], inputs["completion_mask"].float()
        C = completion_BC.size(1)
        h_s_BCH = self._get_last_hidden_state(unwrapped_student, ids_BL, attn_BL, C)
        teacher = self.accelerator.unwrap_model(self.teacher_model)
        self.teacher_model.eval()
        with torch.no_grad():
            h_t_BCH = self._forward_redirection(self.teacher_model, teacher, self._get_last_hidden_state, teacher,
                                                ids_BL, attn_BL, C)
            t_logits_BCV = teacher.get_output_embeddings()(h_t_BCH).float() / self.temperature
        s_logits_BCV = unwrapped_student.get_output_embeddings()(h_s_BCH).float() / self.temperature
        s_logp_BC = selective_log_softmax(s_logits_BCV, completion_BC)
        t_logp_BC = selective_log_softmax(t_logits_BCV, completion_BC)
        advantage_BC = (t_logp_BC - s_logp_BC).detach()  # implicit reward log pT(y_t) - log pS(y_t), a constant
        n = num_items_in_batch if num_items_in_batch is not None else mask_BC.sum().clamp(min=1)
        loss = -(advantage_BC * s_logp_BC * mask_BC).sum() / n
        with torch.no_grad():
            p_BCV = torch.softmax(s_logits_BCV, dim=-1)
            entropy_sum = -(p_BCV * torch.log_softmax(s_logits_BCV, dim=-1)).sum(-1).mul(mask_BC).sum()
        self._record(unwrapped_student, inputs, h_s_BCH, h_t_BCH, num_items_in_batch)
        return loss, entropy_sum, mask_BC.sum()


def run(cfg: Config, run: Run, *, out: str, init: str, teacher: str, prompts: str, steps: int | None = None
        ) -> dict:
    """Distil `teacher` into the student handed off by `init` on the prompts of `prompts` (pool | 1h). `steps`
    overrides `opd.steps` (the OPD-only arm runs for the bridge's student steps)."""
    if info := lifecycle.finished(run, out):
        return info
    o, g = cfg.opd, cfg.generation
    steps = steps or o.steps
    st = lifecycle.begin(cfg, run, out, student_from=init, teacher_from=teacher, trained="student", teacher=teacher,
                         loss=o.loss, rollouts_per_prompt=o.rollouts_per_prompt,
                         prompts=lifecycle.prompts_info(cfg, prompts))
    args = DistillationConfig(
        **lifecycle.training_args(cfg, st.dir, steps=steps, learning_rate=o.learning_rate,
                                  batch_size=o.batch_size, save_every=o.save_every),
        beta=1.0,  # DistillationTrainer's beta selects the divergence: 1.0 = reverse KL(pS || pT)
        max_completion_length=g.max_new_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
        use_vllm=g.use_vllm, vllm_mode=g.vllm_mode, vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        chat_template_kwargs=data.chat_kwargs(cfg) or None,
    )
    # DistillationTrainer wants a prompt-only dataset.
    dataset = Dataset.from_list([{"prompt": data.user_message(cfg, r["prompt"])} for r in data.prompt_set(cfg, prompts)])
    trainer = OPDTrainer(model=st.student, teacher_model=st.teacher, args=args, train_dataset=dataset,
                         processing_class=st.tokenizer, rollouts_per_prompt=o.rollouts_per_prompt,
                         sampled_token=o.loss == "sampled_token", grad_share=o.grad_share)
    return st.train(trainer, steps=steps, sequences=steps * o.batch_size)
