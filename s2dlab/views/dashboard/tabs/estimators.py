"""The Estimators tab: for the snapshot chosen above, every estimate of the reverse KL that on-policy distillation
might train on beside the exact value (`s2dlab.instruments.estimators`), per token and per snapshot."""

from __future__ import annotations

import gradio as gr

from s2dlab.views.dashboard import live
from s2dlab.views.dashboard.ui import (
    Context,
    dd,
    empty_dd,
    handler,
    new_table,
    status_line,
    table,
)


class EstimatorsTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        gr.Markdown("Every estimate of the reverse KL on-policy distillation might train on, beside the exact value, "
                    "for the snapshot chosen above, re-scored with the checkpoints that took it "
                    "(`s2dlab.instruments.estimators`): k1 = −implicit reward, k2, k3, and top-k truncations (renormalised, with "
                    "a tail bucket, raw) for k = 1, 8, 64 with their tail masses; and how often the sampled-token "
                    "gradient points the way of the exact one.")
        with gr.Row():
            self.rollout = gr.Dropdown(label="rollout (per-token view)", choices=[], scale=3, elem_id="est-rollout")
            self.allow = gr.Checkbox(label="run large models on the CPU anyway", value=False, scale=1)
            self.button = gr.Button("Estimate on this snapshot", variant="primary", scale=1, elem_id="est-btn")
        self.status = status_line("est-status")
        self.note = gr.Markdown(elem_id="est-note")
        self.bias = new_table(live.ESTIMATOR_COLUMNS, "est-bias", label="bias and spread per estimator (every token)")
        with gr.Row():
            self.tail = new_table(live.TAIL_COLUMNS, "est-tail", label="mean tail mass outside the student's top k")
            self.grad = gr.Markdown()
        self.plot = gr.Plot(elem_id="est-plot")
        self.tokens = new_table(["position", "token"], "est-tokens", label="per token", max_height=400)
        self.empties = {self.bias: None, self.tail: None, self.grad: "", self.tokens: None, self.plot: None,
                        self.note: ""}
        ctx.on_snapshot.append(handler(self.refresh, [ctx.run_dd, ctx.stage_dd, ctx.step_dd], [self.rollout],
                                       self.status, {self.rollout: empty_dd}))

    def refresh(self, run_id, stage, step) -> dict:
        if not stage:
            return {self.rollout: empty_dd()}
        store = self.ctx.store
        return {self.rollout: dd(live.estimator_rollouts(store, run_id, stage, self.ctx.step(run_id, stage, step)))}

    def estimate(self, run_id, stage, step, rollout, allow) -> dict:
        bias, tail, grad, tokens, fig, note = live.estimators_view(self.ctx.store, run_id, stage,
                                                                   self.ctx.step(run_id, stage, step), rollout, allow)
        return {self.bias: table(bias), self.tail: table(tail), self.grad: grad, self.tokens: table(tokens),
                self.plot: fig, self.note: note}

    def wire(self):
        ctx = self.ctx
        for event, name in ((self.button.click, "estimators"), (self.rollout.input, None)):
            event(**handler(self.estimate, [ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.rollout, self.allow],
                            list(self.empties), self.status, self.empties, models=True, api_name=name))
