"""The Live tab: sample a completion of a problem from a saved student checkpoint and score every token against a
saved teacher, now. Students and teachers are offered by the role their stage records; the default pair is the
workflow's (its final student, its RL teacher); the problem comes from the run's eval set or is typed; every click
draws a new sample (its seed shown, and settable)."""

from __future__ import annotations

import random

import gradio as gr

from s2dlab.views.dashboard import live
from s2dlab.views.dashboard.store import whole_number
from s2dlab.views.dashboard.ui import (
    Context,
    clear_on_input,
    dd,
    empty_dd,
    handler,
    status_line,
)


class LiveTab:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        gr.Markdown("Sample a completion from a saved student checkpoint and score every token against a saved "
                    "teacher, now. Needs `model/` folders in the run (or models its stages link).")
        with gr.Row():
            self.student = gr.Dropdown(label="student checkpoint", choices=[], elem_id="live-student")
            self.teacher = gr.Dropdown(label="teacher checkpoint", choices=[], elem_id="live-teacher")
        self.example = gr.Dropdown(label="a problem of this run's eval set", choices=[], elem_id="live-example")
        with gr.Row():
            self.problem = gr.Textbox(label="problem", scale=3, elem_id="live-problem")
            self.answer = gr.Textbox(label="gold answer (optional, for grading)", scale=1, elem_id="live-answer")
        with gr.Row():
            self.seed = gr.Number(label="seed", value=None, precision=None, scale=1, elem_id="live-seed")
            self.new_seed = gr.Checkbox(label="a new seed each click", value=True, scale=1, elem_id="live-new-seed")
            self.allow = gr.Checkbox(label="run large models on the CPU anyway", value=False, scale=1)
            self.button = gr.Button("Sample and score", variant="primary", scale=1, elem_id="live-btn")
        self.status = status_line("live-status")
        self.note = gr.Markdown(elem_id="live-note")
        self.html = gr.HTML(js_on_load=None, padding=True, elem_id="live-html")
        self.plot = gr.Plot(elem_id="live-plot")
        empties = {self.student: empty_dd, self.teacher: empty_dd, self.example: empty_dd, self.note: ""}
        ctx.on_run.append(handler(self.refresh, [ctx.run_dd], [*empties, self.problem, self.answer], self.status,
                                  empties, needs_run=True, api_name="live_setup"))
        ctx.followers.append((self.follow, [self.student, self.teacher], [self.student, self.teacher]))

    def refresh(self, run_id) -> dict:
        setup = live.live_setup(self.ctx.store, run_id)
        return {self.student: dd(setup["students"], setup["student"]),
                self.teacher: dd(setup["teachers"], setup["teacher"]),
                self.example: dd(setup["examples"], 0 if setup["examples"] else None),
                self.problem: setup["problem"], self.answer: setup["answer"], self.note: setup["note"]}

    def follow(self, run_id, change, student, teacher) -> dict:
        """A run in progress changed: stages that appeared or finished join the choices (the chosen pair kept)."""
        if not (change["new"] or change["stages"]):
            return {}
        setup = live.live_setup(self.ctx.store, run_id)
        return {self.student: dd(setup["students"], student if student in setup["students"] else setup["student"]),
                self.teacher: dd(setup["teachers"], teacher if teacher in setup["teachers"] else setup["teacher"])}

    def on_example(self, run_id, index) -> dict:
        problems = live.eval_problems(self.ctx.store, run_id)
        chosen = problems[int(index)] if index is not None and 0 <= int(index) < len(problems) else None
        if chosen is None:
            return {}
        return {self.problem: chosen["prompt"], self.answer: chosen["answer"]}

    def warn(self, run_id, student, teacher) -> dict:
        return {self.note: live.live_warning(self.ctx.store, run_id, student, teacher)}

    def run(self, run_id, student, teacher, problem, answer, allow, seed, new_seed) -> dict:
        """One new sample: a fresh seed when `new_seed` (or none is set), else the seed typed; the seed used is
        written back into the box, so unticking "a new seed each click" repeats it."""
        if new_seed or seed in (None, ""):
            seed = random.randrange(2 ** 31)
        else:
            seed = whole_number(seed, "the seed", 0, 2 ** 31 - 1)
        page, fig, note = live.live_view(self.ctx.store, run_id, student, teacher, problem, answer, allow, seed=seed)
        return {self.html: page, self.plot: fig, self.note: note, self.seed: seed}

    def wire(self):
        ctx = self.ctx
        clear_on_input(self.status, self.problem, self.answer, self.seed, self.new_seed, self.allow)
        for comp in (self.student, self.teacher):
            comp.input(**handler(self.warn, [ctx.run_dd, self.student, self.teacher], [self.note], self.status,
                                 {self.note: ""}))
        self.example.input(**handler(self.on_example, [ctx.run_dd, self.example], [self.problem, self.answer],
                                     self.status))
        self.button.click(**handler(self.run, [ctx.run_dd, self.student, self.teacher, self.problem, self.answer,
                                               self.allow, self.seed, self.new_seed],
                                    [self.html, self.plot, self.note, self.seed], self.status,
                                    {self.html: "", self.plot: None, self.note: ""}, models=True, api_name="live"))
