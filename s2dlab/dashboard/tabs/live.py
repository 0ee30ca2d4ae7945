"""The Live tab: sample a completion of a typed problem from a saved student checkpoint and score every token
against a saved teacher, now."""

from __future__ import annotations

import gradio as gr

from s2dlab.dashboard import data, live
from s2dlab.dashboard.ui import Context, dd, empty_dd, handler


class LiveTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        gr.Markdown("Sample a completion from a saved student checkpoint and score every token against a saved "
                    "teacher, now. Needs `model/` folders in the run.")
        with gr.Row():
            self.student = gr.Dropdown(label="student checkpoint", choices=[])
            self.teacher = gr.Dropdown(label="teacher checkpoint", choices=[])
        with gr.Row():
            self.problem = gr.Textbox(label="problem", placeholder="e.g. 12+34-5=?", scale=3)
            self.answer = gr.Textbox(label="gold answer (optional, for grading)", scale=1)
        with gr.Row():
            self.allow = gr.Checkbox(label="run large models on the CPU anyway", value=False)
            self.button = gr.Button("Sample and score", variant="primary")
        self.note = gr.Markdown()
        self.html = gr.HTML(js_on_load=None, padding=True)
        self.plot = gr.Plot()
        empties = {self.student: empty_dd, self.teacher: empty_dd, self.note: ""}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], list(empties), ctx.status, empties, clear=False))

    def refresh(self, run_id) -> dict:
        store = self.ctx.store
        stages = data.model_stages(store, run_id)
        students = [s for s in stages if "teacher" not in s] or stages
        teachers = [s for s in stages if "teacher" in s] or stages
        teacher = "teacher_grpo" if "teacher_grpo" in teachers else (teachers[-1] if teachers else None)
        note = ("" if stages else "This run has no checkpoints (no `model/` folders, no linked models), so live "
                "scoring is off for it.")
        student = students[-1] if students else None
        warn = live.live_warning(store, run_id, student, teacher)
        return {self.student: dd(students, student), self.teacher: dd(teachers, teacher),
                self.note: "\n\n".join(x for x in (note, warn) if x)}

    def warn(self, run_id, student, teacher) -> dict:
        return {self.note: live.live_warning(self.ctx.store, run_id, student, teacher)}

    def run(self, run_id, student, teacher, problem, answer, allow) -> dict:
        page, fig, note = live.live_view(self.ctx.store, run_id, student, teacher, problem, answer, allow)
        return {self.html: page, self.plot: fig, self.note: note}

    def wire(self):
        ctx = self.ctx
        for comp in (self.student, self.teacher):
            comp.input(**handler(self.warn, [ctx.run_dd, self.student, self.teacher], [self.note], ctx.status,
                                 {self.note: ""}))
        self.button.click(**handler(self.run, [ctx.run_dd, self.student, self.teacher, self.problem, self.answer,
                                               self.allow], [self.html, self.plot, self.note], ctx.status,
                                    {self.html: "", self.plot: None, self.note: ""}))
