"""The Stages tab: the run's summary.json rendered (the arms of Table 2, the paper's predictions, C1 and C2 with
their rows, the token quadrants) and every curve the stages logged; a click on a point of a curve opens that
stage's snapshot and lists its tokens with the largest |implicit reward|, and a click on one of those opens its
rollout in the token view."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from s2dlab.views import viz
from s2dlab.views.dashboard import data, follow, live, summary_view
from s2dlab.views.dashboard.store import AppError
from s2dlab.views.dashboard.tabs.token import TokenTab
from s2dlab.views.dashboard.ui import (
    Context,
    dd,
    empty_dd,
    empty_multi,
    handler,
    multi,
    new_table,
    status_line,
    table,
)

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
    """The summary in sections that fold: the arms and the predictions open, C1, C2, the quadrants and the curves
    a click away, each with its own status line."""

    def __init__(self, ctx: Context, token: TokenTab):
        self.ctx, self.token = ctx, token
        self.status = status_line("stages-status")
        self.note = gr.Markdown(elem_id="stages-note")
        self.verdict = gr.Markdown(elem_id="verdicts")
        with gr.Accordion("The arms (the rows of the paper's Table 2)", open=True, elem_id="arms-section"):
            self.arms = new_table(viz.arms_frame({}).columns, "arms-table", max_height=420)
            self.arms_plot = gr.Plot(label="accuracy by arm", elem_id="arms-plot")
        with gr.Accordion("The paper's predictions", open=True, elem_id="claims-section"):
            self.claims = new_table(viz.claims_frame({}).columns, "claims-table", max_height=420)
        with gr.Accordion("C1: is the teacher reward-shaped?", open=False, elem_id="c1-section"):
            self.c1_verdict = gr.Markdown(elem_id="c1-verdict")
            self.c1_status = status_line("c1-status")
            self.c1_plot = gr.Plot(label="C1", elem_id="c1-plot")
            self.c1_table = new_table(viz.c1_frame({}).columns, "c1-table", label="C1 per teacher (fixed rollouts)")
        with gr.Accordion("C2: is the teacher close to the student? (click a row for its histogram)", open=False,
                          elem_id="c2-section"):
            self.c2_verdict = gr.Markdown(elem_id="c2-verdict")
            self.c2_table = new_table(viz.c2_frame({}).columns, "c2-table", label="C2 per distillation stage",
                                      max_height=420)
            self.c2_stage = gr.Dropdown(label="C2: distillation stage", choices=[], elem_id="c2-dd")
            self.c2_status = status_line("c2-status")
            self.c2_plot = gr.Plot(label="C2", elem_id="c2-plot")
        with gr.Accordion("Where the dense signal sits", open=False, elem_id="quad-section"):
            self.quad_plot = gr.Plot(label="token quadrants", elem_id="quad-plot")
        with gr.Accordion("Curves (click a point to open that stage's snapshot)", open=False,
                          elem_id="curves-section"):
            with gr.Row():
                self.metrics = gr.Dropdown(label="curves", choices=[], multiselect=True, scale=3)
                self.curve_stages = gr.Dropdown(label="stages", choices=[], multiselect=True, scale=3)
            self.curves_status = status_line("curves-status")
            self.curves = gr.Plot(label="curves across stages", elem_id="stage-curves")
            self.curve_bridge = gr.HTML("", js_on_load=CURVE_CLICK_JS, elem_id="curve-bridge")
            self.drill_note = gr.Markdown(elem_id="drill-note")
            self.drill = new_table(data.TOP_TOKEN_COLUMNS, "top-tokens")
        self.empties = {self.note: "", self.verdict: "", self.arms: None, self.claims: None, self.arms_plot: None,
                        self.c1_verdict: "", self.c1_plot: None, self.c1_table: None, self.c2_verdict: "",
                        self.c2_stage: empty_dd, self.c2_plot: None, self.c2_table: None, self.quad_plot: None,
                        self.metrics: empty_multi, self.curve_stages: empty_multi, self.curves: None,
                        self.drill_note: "", self.drill: None, self.c1_status: "", self.c2_status: "",
                        self.curves_status: ""}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], list(self.empties), self.status, self.empties,
                                  needs_run=True))
        ctx.followers.append((self.follow, [self.metrics, self.curve_stages, self.c2_stage],
                              [self.note, self.verdict, self.arms, self.claims, self.arms_plot, self.c1_verdict,
                               self.c1_plot, self.c1_table, self.c2_verdict, self.c2_stage, self.c2_plot,
                               self.c2_table, self.quad_plot, self.c1_status, self.c2_status, self.metrics,
                               self.curve_stages, self.curves, self.curves_status]))

    # ---- handlers

    def refresh(self, run_id) -> dict:
        """The whole tab; a part whose file is damaged says so in its own section (`stages_view`'s problems)."""
        v = summary_view.stages_view(self.ctx.store, run_id)
        said = {k: f"⚠ {html.escape(m, quote=False)}" for k, m in v["problems"].items()}
        return {self.note: v["note"], self.verdict: v["verdict"], self.arms: table(v["arms"], intervals=True),
                self.claims: table(v["claims"], intervals=True), self.arms_plot: v["arms_figure"],
                self.c1_verdict: v["c1_verdict"], self.c1_plot: v["c1_figure"],
                self.c1_table: table(v["c1_table"], intervals=True), self.c2_verdict: v["c2_verdict"],
                self.c2_stage: dd(v["c2_choices"], v["c2_stage"]), self.c2_plot: v["c2_figure"],
                self.c2_table: table(v["c2_table"], intervals=True), self.quad_plot: v["quadrants"],
                self.metrics: multi(v["metrics"], v["metrics_default"]),
                self.curve_stages: multi(v["curve_stages"], v["curve_stages_default"]), self.curves: v["curves"],
                self.drill_note: "", self.drill: empty_top(), self.c1_status: said.get("c1", ""),
                self.c2_status: said.get("c2", ""), self.curves_status: said.get("curves", "")}

    def follow(self, run_id, change, metrics, curve_stages, c2_stage) -> dict:
        """A run in progress changed: a new summary redraws the summary's parts (the chosen C2 stage kept); new
        metric lines redraw the curves with the chosen curves and stages, a stage that appeared added to them."""
        store, out = self.ctx.store, {}
        try:
            if change["summary"]:
                shown = self.refresh(run_id)
                keep = (self.note, self.verdict, self.arms, self.claims, self.arms_plot, self.c1_verdict, self.c1_plot,
                        self.c1_table, self.c2_verdict, self.c2_table, self.quad_plot, self.c1_status, self.c2_status)
                out.update({c: shown[c] for c in keep})
                choices = shown[self.c2_stage]["choices"]
                if c2_stage in [c[1] if isinstance(c, tuple) else c for c in choices]:
                    out[self.c2_stage] = dd(choices, c2_stage)
                    out[self.c2_plot] = summary_view.c2_view(store, run_id, c2_stage)
                else:
                    out.update({self.c2_stage: shown[self.c2_stage], self.c2_plot: shown[self.c2_plot]})
            if change["metrics"] or change["new"]:
                names, with_metrics = summary_view.logged_curves(store, run_id)
                chosen = [s for s in (curve_stages or []) if s in with_metrics]
                chosen += [s for s in change["new"] if s in with_metrics and s not in chosen]
                out.update({self.metrics: multi(names, metrics or []), self.curve_stages: multi(with_metrics, chosen),
                            self.curves: summary_view.curves_view(store, run_id, metrics, chosen),
                            self.curves_status: ""})
        except AppError as e:  # a file being written: said in the tab, looked at again next time
            out[self.curves_status] = f"⚠ {html.escape(str(e), quote=False)}"
        return out

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
        return {self.ctx.stage_dd: dd(follow.stage_options(store, run_id), stage),
                self.ctx.step_dd: dd(store.steps(run_id, stage), snap), self.drill_note: note, self.drill: table(top)}

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
