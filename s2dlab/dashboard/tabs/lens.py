"""The Token lens tab: one rollout of the first probe snapshot re-scored by every saved (teacher, student)
checkpoint pair (`s2dlab lens RUN` computes it once), with its export."""

from __future__ import annotations

import gradio as gr

from s2dlab.dashboard import data
from s2dlab.dashboard.ui import Context, dd, empty_dd, handler, message


class LensTab:
    def __init__(self, ctx: Context, tab: gr.Tab):
        self.ctx, self.tab = ctx, tab
        self.note = gr.Markdown(elem_id="lens-note")
        with gr.Row():
            self.rollout = gr.Dropdown(label="rollout", choices=[], scale=3, elem_id="lens-rollout")
            self.value = gr.Radio(list(data.LENS_VALUES), value="implicit reward", label="value", scale=2)
            self.pairs = gr.Dropdown(label="pairs", choices=[], scale=2, elem_id="lens-pairs")
            self.export = gr.DownloadButton("⤓ export (HTML)", value=None, size="sm", scale=0, elem_id="export-lens")
        self.table = gr.HTML(elem_id="lens-table", js_on_load=None, padding=True)
        outputs = [self.rollout, self.pairs, self.note, self.table, self.export]
        # a run without a lens says so in the tab; the status line gets it when the tab is opened
        ctx.on_run.append(dict(fn=self.refresh_quiet, inputs=[ctx.run_dd], outputs=outputs))

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

    def refresh_quiet(self, run_id) -> dict:
        try:
            return self.refresh(run_id)
        except Exception as err:  # shown in the tab; the status line gets it when the tab is opened
            return {self.rollout: empty_dd(), self.pairs: empty_dd(), self.note: message(err), self.table: "",
                    self.export: None}

    def check(self, run_id) -> dict:
        data.lens_index(self.ctx.store, run_id)  # AppError naming `s2dlab lens RUN` when the run has none
        return {}

    def wire(self):
        ctx = self.ctx
        for comp in (self.rollout, self.value, self.pairs):
            comp.input(**handler(self.render, [ctx.run_dd, self.rollout, self.value, self.pairs],
                                 [self.table, self.export], ctx.status, {self.table: "", self.export: None}))
        # opening the tab puts a missing lens in the status line (and leaves the chosen rollout as it is)
        self.tab.select(**handler(self.check, [ctx.run_dd], [], ctx.status))
