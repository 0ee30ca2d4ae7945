"""The Compare tab: one problem in the latest snapshot of each stage, on a shared colour range."""

from __future__ import annotations

import gradio as gr

from s2dlab.views.dashboard import data
from s2dlab.views.dashboard.ui import Context, dd, empty_dd, handler, status_line


class CompareTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        with gr.Row():
            self.problem = gr.Dropdown(label="problem", choices=[], scale=3)
            self.stages = gr.CheckboxGroup(label="stages", choices=[], scale=3)
            self.sample = gr.Number(label="student sample", value=0, scale=1, elem_id="compare-sample")
        self.status = status_line("compare-status")
        self.html = gr.HTML(js_on_load=None, padding=True, elem_id="compare-html")
        empties = {self.problem: empty_dd, self.stages: empty_dd, self.html: ""}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], list(empties), self.status, empties, needs_run=True))

    def refresh(self, run_id) -> dict:
        store = self.ctx.store
        problems = data.compare_problems(store, run_id)
        stages = store.snapshot_stages(run_id)
        pid = problems[0][1] if problems else None
        page = data.compare_view(store, run_id, pid, stages) if pid else ""
        return {self.problem: dd(problems, pid), self.stages: gr.update(choices=stages, value=stages),
                self.html: page}

    def render(self, run_id, pid, stages, sample) -> dict:
        return {self.html: data.compare_view(self.ctx.store, run_id, pid, stages, sample)}

    def wire(self):
        for comp in (self.problem, self.stages, self.sample):
            comp.input(**handler(self.render, [self.ctx.run_dd, self.problem, self.stages, self.sample], [self.html],
                                 self.status, {self.html: ""}))
