"""The Stages tab: the run's summary.json rendered (the arms of Table 2, the paper's predictions, C1 and C2 with
their rows, the token quadrants) and every curve the stages logged; a click on a point of a curve opens that
stage's snapshot and lists its tokens with the largest |implicit reward|, and a click on one of those opens its
rollout in the token view."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from s2dlab.dashboard import data, live, summary_view
from s2dlab.dashboard.store import AppError
from s2dlab.dashboard.tabs.token import TokenTab
from s2dlab.dashboard.ui import Context, dd, empty_dd, empty_multi, handler, multi, status_line

# A click on a point of the stage curves (plotly, which Gradio's Plot renders without click events) sends the point's
# (stage, step) to Python (`pick_point`): the listener is re-attached whenever Plotly draws the figure anew.
CURVE_CLICK_JS = """
const onClick = (ev) => {
  const p = ev && ev.points && ev.points[0];
  if (p && p.customdata) trigger('pick_point', {stage: String(p.customdata[0]), step: Number(p.customdata[1])});
};
const hook = () => {
  document.querySelectorAll('#stage-curves .js-plotly-plot').forEach((plot) => {
    if (plot.on && plot.__s2dLayout !== plot._fullLayout) {
      if (plot.removeListener) plot.removeListener('plotly_click', onClick);
      plot.on('plotly_click', onClick);
      plot.__s2dLayout = plot._fullLayout;
    }
  });
};
new MutationObserver(hook).observe(document.body, {childList: true, subtree: true});
hook();
"""


def empty_top() -> pd.DataFrame:
    return pd.DataFrame(columns=data.TOP_TOKEN_COLUMNS)


class StagesTab:
    def __init__(self, ctx: Context, token: TokenTab):
        self.ctx, self.token = ctx, token
        self.status = status_line("stages-status")
        self.note = gr.Markdown(elem_id="stages-note")
        self.verdict = gr.Markdown(elem_id="verdicts")
        gr.Markdown("### The arms (the rows of the paper's Table 2)")
        self.arms = gr.Dataframe(interactive=False, elem_id="arms-table", wrap=False,
                                 column_widths=["160px", "300px", "70px", "170px", "80px", "110px", "110px", "130px",
                                                "110px", "170px", "110px"])
        self.arms_plot = gr.Plot(label="accuracy by arm", elem_id="arms-plot")
        gr.Markdown("### The paper's predictions")
        self.claims = gr.Dataframe(interactive=False, elem_id="claims-table", wrap=False,
                                   column_widths=["130px", "430px", "330px", "200px"])
        gr.Markdown("### C1: is the teacher reward-shaped?")
        self.c1_verdict = gr.Markdown(elem_id="c1-verdict")
        self.c1_status = status_line("c1-status")
        self.c1_plot = gr.Plot(label="C1", elem_id="c1-plot")
        self.c1_table = gr.Dataframe(interactive=False, label="C1 per teacher (fixed rollouts)", wrap=False)
        gr.Markdown("### C2: is the teacher close to the student? (click a row for its histogram)")
        self.c2_verdict = gr.Markdown(elem_id="c2-verdict")
        self.c2_table = gr.Dataframe(interactive=False, label="C2 per distillation stage", wrap=False,
                                     elem_id="c2-table")
        self.c2_stage = gr.Dropdown(label="C2: distillation stage", choices=[], elem_id="c2-dd")
        self.c2_status = status_line("c2-status")
        self.c2_plot = gr.Plot(label="C2", elem_id="c2-plot")
        gr.Markdown("### Where the dense signal sits")
        self.quad_plot = gr.Plot(label="token quadrants", elem_id="quad-plot")
        gr.Markdown("### Curves (click a point to open that stage's snapshot)")
        with gr.Row():
            self.metrics = gr.Dropdown(label="curves", choices=[], multiselect=True, scale=3)
            self.curve_stages = gr.Dropdown(label="stages", choices=[], multiselect=True, scale=3)
        self.curves_status = status_line("curves-status")
        self.curves = gr.Plot(label="curves across stages", elem_id="stage-curves")
        self.curve_bridge = gr.HTML("", js_on_load=CURVE_CLICK_JS, elem_id="curve-bridge")
        self.drill_note = gr.Markdown(elem_id="drill-note")
        self.drill = gr.Dataframe(value=empty_top(), interactive=False, elem_id="top-tokens", wrap=True)
        self.empties = {self.note: "", self.verdict: "", self.arms: None, self.claims: None, self.arms_plot: None,
                        self.c1_verdict: "", self.c1_plot: None, self.c1_table: None, self.c2_verdict: "",
                        self.c2_stage: empty_dd, self.c2_plot: None, self.c2_table: None, self.quad_plot: None,
                        self.metrics: empty_multi, self.curve_stages: empty_multi, self.curves: None,
                        self.drill_note: "", self.drill: None, self.c1_status: "", self.c2_status: "",
                        self.curves_status: ""}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], list(self.empties), self.status, self.empties))

    # ---- handlers

    def refresh(self, run_id) -> dict:
        """The whole tab; a part whose file is damaged says so in its own section (`stages_view`'s problems)."""
        v = summary_view.stages_view(self.ctx.store, run_id)
        said = {k: f"⚠ {html.escape(m, quote=False)}" for k, m in v["problems"].items()}
        return {self.note: v["note"], self.verdict: v["verdict"], self.arms: v["arms"], self.claims: v["claims"],
                self.arms_plot: v["arms_figure"], self.c1_verdict: v["c1_verdict"], self.c1_plot: v["c1_figure"],
                self.c1_table: v["c1_table"], self.c2_verdict: v["c2_verdict"],
                self.c2_stage: dd(v["c2_choices"], v["c2_stage"]), self.c2_plot: v["c2_figure"],
                self.c2_table: v["c2_table"], self.quad_plot: v["quadrants"],
                self.metrics: multi(v["metrics"], v["metrics_default"]),
                self.curve_stages: multi(v["curve_stages"], v["curve_stages_default"]), self.curves: v["curves"],
                self.drill_note: "", self.drill: empty_top(), self.c1_status: said.get("c1", ""),
                self.c2_status: said.get("c2", ""), self.curves_status: said.get("curves", "")}

    def on_c2_stage(self, run_id, stage):
        return {self.c2_plot: summary_view.c2_view(self.ctx.store, run_id, stage)}

    def on_c2_row(self, run_id, evt: gr.SelectData):
        row = evt.row_value or []
        if not row:
            raise AppError("Could not read the selected C2 row.")
        return {self.c2_stage: gr.update(value=str(row[0])),
                self.c2_plot: summary_view.c2_view(self.ctx.store, run_id, str(row[0]))}

    def on_curves(self, run_id, metrics, stages):
        return {self.curves: summary_view.curves_view(self.ctx.store, run_id, metrics, stages)}

    def on_drill(self, run_id, evt: gr.EventData):
        """A clicked curve point: that stage's nearest snapshot in the pickers, its largest tokens listed (the
        snapshot chain then refreshes the token view)."""
        point = getattr(evt, "_data", None) or {}
        stage, step = point.get("stage"), point.get("step")
        if not stage:
            raise AppError("Could not read the clicked point of the curves.")
        store = self.ctx.store
        snap, top, note = summary_view.drill_down(store, run_id, stage, step)
        return {self.ctx.stage_dd: dd(store.snapshot_stages(run_id), stage),
                self.ctx.step_dd: dd(store.steps(run_id, stage), snap), self.drill_note: note, self.drill: top}

    def on_top_token(self, run_id, stage, step, color, evt: gr.SelectData):
        row = evt.row_value or []
        if len(row) < 4:
            raise AppError("Could not read the selected token.")
        pid, sample, policy, position = str(row[0]), int(float(row[1])), str(row[2]), int(float(row[3]))
        token = self.token
        out = token.show(run_id, stage, step, pid, sample if policy != "teacher" else None,
                         sample if policy == "teacher" else None, color)
        if policy != "teacher":
            choices, default, info = live.branch_candidates(self.ctx.store, run_id, stage, step, pid, sample, position)
            out.update({token.branch_pos: position, token.branch_cands: gr.update(choices=choices, value=default),
                        token.branch_info: info})
        return {self.ctx.tabs: gr.Tabs(selected="token"), **out, token.status: ""}

    # ---- wiring

    def wire(self):
        ctx = self.ctx
        self.c2_stage.input(**handler(self.on_c2_stage, [ctx.run_dd, self.c2_stage], [self.c2_plot], self.c2_status,
                                      {self.c2_plot: None}))
        self.c2_table.select(**handler(self.on_c2_row, [ctx.run_dd], [self.c2_stage, self.c2_plot], self.c2_status,
                                       {self.c2_plot: None}))
        for comp in (self.metrics, self.curve_stages):
            comp.input(**handler(self.on_curves, [ctx.run_dd, self.metrics, self.curve_stages], [self.curves],
                                 self.curves_status, {self.curves: None}))
        drill = self.curve_bridge.pick_point(**handler(
            self.on_drill, [ctx.run_dd], [ctx.stage_dd, ctx.step_dd, self.drill_note, self.drill],
            self.curves_status, {self.drill_note: "", self.drill: None}))
        ctx.then_snapshot(drill)
        self.drill.select(**handler(self.on_top_token, [ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.token.color],
                                    [ctx.tabs, *self.token.outputs, self.token.status], self.curves_status,
                                    self.token.empties))
