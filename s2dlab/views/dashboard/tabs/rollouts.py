"""The Rollouts tab: one snapshot's rollouts as a table, filtered by correctness and by who sampled them; a row
opens in the token view."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from s2dlab.views.dashboard import data
from s2dlab.views.dashboard.store import AppError
from s2dlab.views.dashboard.tabs.token import TokenTab
from s2dlab.views.dashboard.ui import Context, handler, new_table, status_line, table


def empty_table() -> pd.DataFrame:
    return pd.DataFrame(columns=data.TABLE_COLUMNS)


class RolloutsTab:
    def __init__(self, ctx: Context, token: TokenTab):
        self.ctx, self.token = ctx, token
        with gr.Row():
            self.correct = gr.Radio(["all", "correct", "incorrect"], value="all", label="correct")
            self.policy = gr.Radio(["all", "student", "teacher"], value="all", label="sampled by")
        gr.Markdown("Sort from a column header (its ⋮ menu); click a row to open it in the token view.")
        self.status = status_line("rollouts-status")
        self.table = new_table(data.TABLE_COLUMNS, "rollout-table", max_height=520)
        ctx.on_snapshot.append(handler(self.refresh, self.inputs, [self.table], self.status,
                                       {self.table: empty_table}))

    @property
    def inputs(self):
        return [self.ctx.run_dd, self.ctx.stage_dd, self.ctx.step_dd, self.correct, self.policy]

    def refresh(self, run_id, stage, step, correct, policy):
        if not stage:
            return {self.table: empty_table()}
        return {self.table: table(data.rollout_table(self.ctx.store, run_id, stage, step, correct, policy))}

    def on_select(self, run_id, stage, step, color, evt: gr.SelectData):
        target = data.row_target(evt.row_value)
        if target is None:
            raise AppError("Could not read the selected row.")
        pid, policy, idx = target
        shown = self.token.show(run_id, stage, step, pid, idx if policy != "teacher" else None,
                                idx if policy == "teacher" else None, color)
        return {self.ctx.tabs: gr.Tabs(selected="token"), **shown, self.token.status: ""}

    def wire(self):
        ctx = self.ctx
        for comp in (self.correct, self.policy):
            comp.input(**handler(self.refresh, self.inputs, [self.table], self.status, {self.table: empty_table}))
        self.table.select(**handler(self.on_select, [ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.token.color],
                                    [ctx.tabs, *self.token.outputs, self.token.status], self.status,
                                    self.token.empties))
