"""Above the tabs: the run, stage and snapshot pickers every tab reads, the run list's reload button, the status
line, and the following of a run in progress. A new run, stage or snapshot refreshes the tabs that show it
(`Context.then_run`, `Context.then_snapshot`).

Following: every `poll_seconds` the header looks at the chosen run (`s2dlab.views.dashboard.follow`); when something
changed it updates the run list and the pickers' choices (the running stage marked; their values are the user's,
never sent back, so a look answered after a pick cannot undo it) and lets each tab that follows refresh what
changed (`Context.followers`: the Stages tab's summary and curves, the Live tab's checkpoints). Nothing is sent
when nothing changed.
"""

from __future__ import annotations

import time

import gradio as gr

from s2dlab.views.dashboard import follow
from s2dlab.views.dashboard.store import AppError, Store
from s2dlab.views.dashboard.ui import Context, dd, empty_dd, guard, handler


class Header:
    def __init__(self, store: Store, exports, poll_seconds: float = 3.0):
        self.poll_seconds = poll_seconds
        with gr.Row(equal_height=True):
            run_dd = gr.Dropdown(label="run", choices=[], scale=3, elem_id="run-dd")
            stage_dd = gr.Dropdown(label="stage (with rollout snapshots)", choices=[], scale=2, elem_id="stage-dd")
            step_dd = gr.Dropdown(label="snapshot step", choices=[], scale=1, elem_id="step-dd")
            self.reload = gr.Button("↻ reload runs", scale=0, size="sm")
        status = gr.Markdown(elem_id="status")
        self.following = gr.Markdown(elem_id="follow")
        self.seen = gr.State(None)  # the run as the page last saw it (`follow.run_state`)
        self.picked = gr.Number(value=0, visible=False)  # set when following picked the first snapshot of a run
        self.ctx = Context(store=store, exports=exports, run_dd=run_dd, stage_dd=stage_dd, step_dd=step_dd,
                           status=status)

    # ---- handlers

    def on_load(self, current=None) -> dict:
        """The run list, keeping the current run on reload when it still exists (else a seed's run: the token views
        need one)."""
        store = self.ctx.store
        runs = store.run_options()
        if not runs:
            raise AppError(f"No runs under {store.root} yet: `s2dlab demo --out {store.root}/demo` makes one in a few "
                           f"minutes, or `s2dlab run --out {store.root}/NAME`; then press ↻ reload runs.")
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
        state = follow.run_state(store, run_id)
        return {self.ctx.stage_dd: dd(follow.stage_options(store, run_id, state), stage),
                **self.on_stage(run_id, stage), self.seen: state, self.following: follow.follow_line(state)}

    def on_stage(self, run_id, stage) -> dict:
        steps = self.ctx.store.steps(run_id, stage)
        return {self.ctx.step_dd: dd(steps, steps[-1] if steps else None)}

    def on_step(self) -> dict:
        return {}

    def on_tick(self, run_id, stage, step, seen, *rest) -> dict:
        """A look at the run: nothing when nothing changed; else the run list, the pickers' choices (the running
        stage marked, the chosen stage and step kept; the first snapshot of a run that had none picked) and what
        each follower refreshes. `rest`: the followers' own inputs, in order."""
        ctx, store = self.ctx, self.ctx.store
        state = follow.run_state(store, run_id)
        change = follow.changes(seen, state)
        if state is None or (seen is not None and not follow.changed(change)):
            return {}
        # the pickers get new choices, never a value the user chose: a look answered after the user picked another
        # run, stage or step (its inputs read before the pick) would put the old one back
        out = {self.seen: state, self.following: follow.follow_line(state),
               ctx.run_dd: gr.update(choices=store.run_options())}
        options = follow.stage_options(store, run_id, state)
        values = [s for _, s in options]
        if stage in values:
            if seen is None or change["stages"] or change["steps"]:
                out[ctx.stage_dd] = gr.update(choices=options)
            steps = state["stages"][stage]["steps"]
            if step not in steps:
                out[ctx.step_dd] = dd(steps, steps[-1])
            elif seen is None or stage in change["steps"]:
                out[ctx.step_dd] = gr.update(choices=steps)
        elif options and not stage:  # the run's first snapshot landed: open it
            first = "opd" if "opd" in values else values[-1]
            out.update({ctx.stage_dd: dd(options, first), ctx.step_dd: dd(state["stages"][first]["steps"], None),
                        self.picked: time.time(), ctx.status: ""})
        for fn, inputs, _ in ctx.followers:
            mine, rest = rest[:len(inputs)], rest[len(inputs):]
            out.update(fn(run_id, change, *mine))
        return out

    # ---- wiring

    def wire(self, demo: gr.Blocks):
        ctx = self.ctx
        pickers = [ctx.stage_dd, ctx.step_dd]
        run_step = handler(self.on_run, [ctx.run_dd], [*pickers, self.seen, self.following], ctx.status,
                           {ctx.stage_dd: empty_dd, ctx.step_dd: empty_dd, self.seen: None, self.following: ""},
                           needs_run=True, api_name="open_run")
        self.run_step = {**run_step, "api_name": None}  # what opening a run does, for a tab that opens one (Map)
        load = handler(self.on_load, [ctx.run_dd], [ctx.run_dd], ctx.status, {ctx.run_dd: empty_dd}, api_name="runs")
        for event in (demo.load(**load), self.reload.click(**load)):
            ctx.then_run(ctx.then_snapshot(event.then(**run_step)))
        ctx.then_run(ctx.then_snapshot(ctx.run_dd.input(**run_step)))
        ctx.then_snapshot(ctx.stage_dd.input(**handler(self.on_stage, [ctx.run_dd, ctx.stage_dd], [ctx.step_dd],
                                                       ctx.status, {ctx.step_dd: empty_dd})))
        ctx.then_snapshot(ctx.step_dd.input(**handler(self.on_step, [], [], ctx.status)))
        ctx.then_snapshot(self.picked.change(**handler(self.on_step, [], [], ctx.status)))
        if self.poll_seconds:
            timer = gr.Timer(self.poll_seconds)
            outputs = [self.seen, self.following, ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.picked, ctx.status]
            outputs += [c for _, _, outs in ctx.followers for c in outs if c not in outputs]
            inputs = [ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.seen]
            inputs += [c for _, ins, _ in ctx.followers for c in ins]
            # a look costs a listing and a stat per stage: it never waits behind other requests and shows no spinner
            timer.tick(guard(self.on_tick, {}, clear=False, status=ctx.status), inputs=inputs, outputs=outputs,
                       show_progress="hidden", concurrency_limit=None, api_name="follow")

