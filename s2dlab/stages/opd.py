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

    s2dlab stage opd --out runs/tiny
    s2dlab stage opd --out runs/tiny opd.loss=sampled_token opd.steps=50
"""

from __future__ import annotations

import torch
from datasets import Dataset
from trl import DistillationConfig, DistillationTrainer
from trl.trainer.utils import RepeatSampler, selective_log_softmax

from s2dlab import data
from s2dlab.config import Config
from s2dlab.runs import Run
from s2dlab.stages import lifecycle


class OPDTrainer(DistillationTrainer):
    """`DistillationTrainer` with `rollouts_per_prompt` rollouts of each prompt in a step, and the sampled-token loss
    as an option."""

    def __init__(self, *args, rollouts_per_prompt: int = 1, sampled_token: bool = False, **kwargs):
        self.rollouts_per_prompt, self.sampled_token = rollouts_per_prompt, sampled_token
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

    def _compute_loss(self, unwrapped_student, inputs, num_items_in_batch):
        if not self.sampled_token:
            return super()._compute_loss(unwrapped_student, inputs, num_items_in_batch)
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
                         sampled_token=o.loss == "sampled_token")
    return st.train(trainer, steps=steps, sequences=steps * o.batch_size)
