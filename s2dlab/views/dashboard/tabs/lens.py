"""The Token lens tab: one rollout of the first probe snapshot re-scored by every saved (teacher, student)
checkpoint pair (`s2dlab lens RUN` computes it once), with its export. A run without a lens says, in the tab,
which command computes it."""

from __future__ import annotations

import gradio as gr

from s2dlab.views.dashboard import data
from s2dlab.views.dashboard.ui import Context, dd, empty_dd, handler, status_line


class LensTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.status = status_line("lens-status")
        self.note = gr.Markdown(elem_id="lens-note")
        with gr.Row():
            self.rollout = gr.Dropdown(label="rollout", choices=[], scale=3, elem_id="lens-rollout")
            self.value = gr.Radio(list(data.LENS_VALUES), value="implicit reward", label="value", scale=2)
            self.pairs = gr.Dropdown(label="pairs", choices=[], scale=2, elem_id="lens-pairs")
            self.export = gr.DownloadButton("⤓ export (HTML)", value=None, size="sm", scale=0, elem_id="export-lens")
        self.table = gr.HTML(elem_id="lens-table", js_on_load=None, padding=True)
        empties = {self.rollout: empty_dd, self.pairs: empty_dd, self.note: "", self.table: "", self.export: None}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], list(empties), self.status, empties, needs_run=True))

    def render(self, run_id, key, value, pairs) -> dict:
        page = data.lens_view(self.ctx.store, run_id, key, value, pairs)
        path = data.export_file(self.ctx.exports, f"s2dlab · {run_id} · token lens · {key}", [page], run_id, "lens",
                                key, value)
        return {self.table: page, self.export: path}

    def refresh(self, run_id) -> dict:
        rollouts, filters, default, note = data.lens_choices(self.ctx.store, run_id)
        key = rollouts[0][1] if rollouts else None
        return {self.rollout: dd(rollouts, key), self.pairs: dd(filters, default), self.note: note,
                **self.render(run_id, key, "implicit reward", default)}

    def wire(self):
        ctx = self.ctx
        for comp in (self.rollout, self.value, self.pairs):
            comp.input(**handler(self.render, [ctx.run_dd, self.rollout, self.value, self.pairs],
                                 [self.table, self.export], self.status, {self.table: "", self.export: None},
                                 api_name="lens" if comp is self.rollout else None))
