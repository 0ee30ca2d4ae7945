"""Above the tabs: the run, stage and snapshot pickers every tab reads, the run list's reload button and the status
line. A new run, stage or snapshot refreshes the tabs that show it (`Context.then_run`, `Context.then_snapshot`)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from s2dlab.dashboard.store import AppError, Store
from s2dlab.dashboard.ui import Context, dd, empty_dd, handler


class Header:
    def __init__(self, store: Store, exports: Path):
        with gr.Row(equal_height=True):
            run_dd = gr.Dropdown(label="run", choices=[], scale=3, elem_id="run-dd")
            stage_dd = gr.Dropdown(label="stage (with rollout snapshots)", choices=[], scale=2, elem_id="stage-dd")
            step_dd = gr.Dropdown(label="snapshot step", choices=[], scale=1, elem_id="step-dd")
            self.reload = gr.Button("↻ reload runs", scale=0, size="sm")
        status = gr.Markdown(elem_id="status")
        self.ctx = Context(store=store, exports=exports, run_dd=run_dd, stage_dd=stage_dd, step_dd=step_dd,
                           status=status)

    # ---- handlers

    def on_load(self, current=None) -> dict:
        """The run list, keeping the current run on reload when it still exists (else a seed's run: the token views
        need one)."""
        store = self.ctx.store
        runs = store.run_options()
        if not runs:
            raise AppError(f"No runs under {store.root}: it holds no folder with a run.json.")
        if current not in [r for _, r in runs]:
            current = next((r for _, r in runs if not store.is_aggregate(r)), None)
        return {self.ctx.run_dd: dd(runs, current)}

    def on_run(self, run_id) -> dict:
        """The run's stages with snapshots (`opd` first when it has one) and the chosen stage's latest step."""
        store = self.ctx.store
        if store.is_aggregate(run_id):
            store.open(run_id)  # says: a folder of seeds; pick a seed's run for the token views
        stages = store.snapshot_stages(run_id)
        if not stages:
            store.open(run_id)  # a missing / corrupt run says so; an intact one has no snapshots yet
            raise AppError(f"Run {run_id!r} has no rollout snapshots yet: the Token view and Rollouts tabs fill in "
                           "once a stage writes one. The Stages tab shows its curves so far.")
        stage = "opd" if "opd" in stages else stages[-1]
        return {self.ctx.stage_dd: dd(stages, stage), **self.on_stage(run_id, stage)}

    def on_stage(self, run_id, stage) -> dict:
        steps = self.ctx.store.steps(run_id, stage)
        return {self.ctx.step_dd: dd(steps, steps[-1] if steps else None)}

    def on_step(self) -> dict:
        return {}

    # ---- wiring

    def wire(self, demo: gr.Blocks):
        ctx = self.ctx
        pickers = [ctx.stage_dd, ctx.step_dd]
        run_step = handler(self.on_run, [ctx.run_dd], pickers, ctx.status, {ctx.stage_dd: empty_dd,
                                                                            ctx.step_dd: empty_dd}, api_name="open_run")
        load = handler(self.on_load, [ctx.run_dd], [ctx.run_dd], ctx.status, {ctx.run_dd: empty_dd}, api_name="runs")
        for event in (demo.load(**load), self.reload.click(**load)):
            ctx.then_run(ctx.then_snapshot(event.then(**run_step)))
        ctx.then_run(ctx.then_snapshot(ctx.run_dd.input(**run_step)))
        ctx.then_snapshot(ctx.stage_dd.input(**handler(self.on_stage, [ctx.run_dd, ctx.stage_dd], [ctx.step_dd],
                                                       ctx.status, {ctx.step_dd: empty_dd})))
        ctx.then_snapshot(ctx.step_dd.input(**handler(self.on_step, [], [], ctx.status)))

