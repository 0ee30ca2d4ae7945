"""The s2dlab dashboard: browse runs, see where the teacher's dense reward lands token by token.

    s2dlab app runs                        # http://127.0.0.1:7860, no share link
    s2dlab app runs --port 8000 --share --open
    python app/app.py runs                 # the same from a clone (a Hugging Face Space's entry point)

Tabs: Token view (a student rollout beside the teacher's for the same problem, coloured by implicit reward, hover
for every number), Rollouts (a snapshot's table; pick a row to open it), Stages (curves, results, C1/C2),
Compare (one problem across stages), Live (sample and score a new problem with saved checkpoints).

Layout and event wiring live here; data access is in `s2dlab.dashboard.data`. Every handler returns a status
message as its last output: a missing, empty or corrupt run shows a sentence there, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from s2dlab.dashboard import data as cb  # noqa: E402

log = logging.getLogger("s2dlab.app")

INTRO = (
    "# s2dlab\n"
    "Colours show the **implicit reward** `log pT(y_t) − log pS(y_t)` of each token: "
    "<span style='color:#b2182b'>red</span> where the teacher likes the student's token less than the student "
    "does, <span style='color:#2166ac'>blue</span> where it likes it more. Hover a token for its probabilities, "
    "KLs, entropies and both models' top alternatives."
)


# --------------------------------------------------------------------------------------------------------------
# handler plumbing


def _message(err: Exception) -> str:
    if isinstance(err, cb.AppError):
        return f"⚠ {html.escape(str(err), quote=False)}"
    log.exception("unexpected error in an app callback")
    return f"⚠ Something went wrong: {type(err).__name__}: {html.escape(str(err), quote=False)}"


def _guard(fn, empties):
    """Call `fn`; on any error return `empties` (cleared outputs) plus the message for the status box."""

    @functools.wraps(fn)  # keeps the signature: Gradio passes event data (gr.SelectData) by annotation
    def wrapper(*args):
        try:
            out = fn(*args)
            return (*out, "")
        except Exception as err:  # every failure becomes a message in the UI
            return (*[e() if callable(e) else e for e in empties], _message(err))

    return wrapper


def _dd(choices, value=None):
    """A dropdown update; `value` defaults to the first choice."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    if value not in values:
        value = values[0] if values else None
    return gr.update(choices=choices, value=value)


def _empty_dd():
    return gr.update(choices=[], value=None)


def _empty_table():
    return pd.DataFrame(columns=cb.TABLE_COLUMNS)


# --------------------------------------------------------------------------------------------------------------
# layout


def build_demo(runs_root: str | os.PathLike) -> gr.Blocks:
    """The app over the runs under `runs_root` (which it only reads)."""
    store = cb.Store(runs_root)

    with gr.Blocks(title="s2dlab") as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            run_dd = gr.Dropdown(label="run", choices=[], scale=3, elem_id="run-dd")
            stage_dd = gr.Dropdown(label="stage (with rollout snapshots)", choices=[], scale=2, elem_id="stage-dd")
            step_dd = gr.Dropdown(label="snapshot step", choices=[], scale=1, elem_id="step-dd")
            refresh_btn = gr.Button("↻ reload runs", scale=0, size="sm")
        status = gr.Markdown(elem_id="status")

        with gr.Tabs(selected="token") as tabs:
            with gr.Tab("Token view", id="token"):
                with gr.Row():
                    problem_dd = gr.Dropdown(label="problem", choices=[], scale=3, elem_id="problem-dd")
                    sample_dd = gr.Dropdown(label="student sample", choices=[], scale=1, elem_id="sample-dd")
                    teacher_dd = gr.Dropdown(label="teacher sample", choices=[], scale=1)
                    color_radio = gr.Radio(list(cb.COLOR_BY), value="implicit reward", label="colour by", scale=2)
                note_md = gr.Markdown()
                with gr.Row():
                    student_html = gr.HTML(elem_id="student-heatmap", js_on_load=None, padding=True)
                    teacher_html = gr.HTML(elem_id="teacher-heatmap", js_on_load=None, padding=True)
                chart = gr.Plot(label="per position (student rollout)", elem_id="token-chart")

            with gr.Tab("Rollouts", id="rollouts"):
                with gr.Row():
                    correct_radio = gr.Radio(["all", "correct", "incorrect"], value="all", label="correct")
                    policy_radio = gr.Radio(["all", "student", "teacher"], value="all", label="sampled by")
                gr.Markdown("Sort from a column header (its ⋮ menu); click a row to open it in the token view.")
                table = gr.Dataframe(value=_empty_table(), interactive=False, elem_id="rollout-table", wrap=True,
                                     max_height=600)

            with gr.Tab("Stages", id="stages"):
                stages_note = gr.Markdown()
                verdict_md = gr.Markdown(elem_id="verdicts")
                curves_plot = gr.Plot(label="curves across stages")
                results_df = gr.Dataframe(interactive=False, label="arms (results.json)")
                bars_plot = gr.Plot(label="accuracy by arm")
                with gr.Row():
                    c1_plot = gr.Plot(label="C1")
                    c2_plot = gr.Plot(label="C2")
                quad_plot = gr.Plot(label="token quadrants")

            with gr.Tab("Compare", id="compare"):
                with gr.Row():
                    cmp_problem = gr.Dropdown(label="problem", choices=[], scale=3)
                    cmp_stages = gr.CheckboxGroup(label="stages", choices=[], scale=3)
                    cmp_sample = gr.Number(label="student sample", value=0, precision=0, minimum=0, scale=1)
                cmp_html = gr.HTML(js_on_load=None, padding=True)

            with gr.Tab("Live", id="live"):
                gr.Markdown("Sample a completion from a saved student checkpoint and score every token against a "
                            "saved teacher, now. Needs `model/` folders in the run.")
                with gr.Row():
                    live_student = gr.Dropdown(label="student checkpoint", choices=[])
                    live_teacher = gr.Dropdown(label="teacher checkpoint", choices=[])
                with gr.Row():
                    live_problem = gr.Textbox(label="problem", placeholder="e.g. 12+34-5=?", scale=3)
                    live_answer = gr.Textbox(label="gold answer (optional, for grading)", scale=1)
                with gr.Row():
                    live_allow = gr.Checkbox(label="run large models on the CPU anyway", value=False)
                    live_btn = gr.Button("Sample and score", variant="primary")
                live_note = gr.Markdown()
                live_html = gr.HTML(js_on_load=None, padding=True)
                live_plot = gr.Plot()

        # ---------------------------------------------------------------------------------------------------
        # handlers: each computes everything downstream of what changed

        def token_outputs(run_id, stage, step, prompt_id=None, sample=None, teacher=None, color="implicit reward"):
            df = store.snapshot(run_id, stage, step)
            problems = cb.problem_choices(df)
            pids = [p for _, p in problems]
            prompt_id = prompt_id if prompt_id in pids else (pids[0] if pids else None)
            samples = cb.sample_choices(df, prompt_id, "student")
            teachers = cb.sample_choices(df, prompt_id, "teacher")
            sample = sample if sample in [s for _, s in samples] else (samples[0][1] if samples else None)
            teacher = teacher if teacher in [s for _, s in teachers] else (teachers[0][1] if teachers else None)
            s_html, t_html, fig, note = cb.token_view(store, run_id, stage, step, prompt_id, sample, teacher, color)
            return (_dd(problems, prompt_id), _dd(samples, sample), _dd(teachers, teacher), s_html, t_html, fig,
                    note)

        token_outs = [problem_dd, sample_dd, teacher_dd, student_html, teacher_html, chart, note_md]
        token_empty = [_empty_dd, _empty_dd, _empty_dd, "", "", None, ""]

        def on_step(run_id, stage, step, color, correct, policy):
            return (*token_outputs(run_id, stage, step, color=color),
                    cb.rollout_table(store, run_id, stage, step, correct, policy))

        def on_stage(run_id, stage, color, correct, policy):
            steps = store.steps(run_id, stage)
            step = steps[-1] if steps else None
            return (_dd(steps, step), *on_step(run_id, stage, step, color, correct, policy))

        def on_run(run_id, color, correct, policy):
            stages = store.snapshot_stages(run_id)
            if not stages:
                store.open(run_id)  # a missing / corrupt run says so; an intact one has no snapshots yet
                raise cb.AppError(f"Run {run_id!r} has no rollout snapshots yet: the Token view and Rollouts tabs "
                                  "fill in once a stage writes one. The Stages tab shows its curves so far.")
            stage = "opd" if "opd" in stages else stages[-1]
            return (_dd(stages, stage), *on_stage(run_id, stage, color, correct, policy))

        def on_load(current=None):
            runs = store.run_choices()
            if not runs:
                raise cb.AppError(f"No runs under {store.root}: it holds no folder with a run.json.")
            return (_dd(runs, current),)  # keeps the current run on reload when it still exists

        step_outs = [*token_outs, table]
        step_empty = [*token_empty, _empty_table]
        stage_outs = [step_dd, *step_outs]
        stage_empty = [_empty_dd, *step_empty]
        run_outs = [stage_dd, *stage_outs]
        run_empty = [_empty_dd, *stage_empty]
        filters = [color_radio, correct_radio, policy_radio]

        def stages_outputs(run_id):
            return cb.stages_view(store, run_id)

        stages_outs = [curves_plot, results_df, bars_plot, c1_plot, c2_plot, quad_plot, verdict_md, stages_note]
        stages_empty = [None, None, None, None, None, None, "", ""]

        def compare_setup(run_id):
            problems = cb.compare_problems(store, run_id)
            stages = store.snapshot_stages(run_id)
            pid = problems[0][1] if problems else None
            page = cb.compare_view(store, run_id, pid, stages) if pid else ""
            return _dd(problems, pid), gr.update(choices=stages, value=stages), page

        def compare_render(run_id, pid, stages, sample):
            return (cb.compare_view(store, run_id, pid, stages, int(sample or 0)),)

        def live_setup(run_id):
            stages = cb.model_stages(store, run_id)
            students = [s for s in stages if "teacher" not in s] or stages
            teachers = [s for s in stages if "teacher" in s] or stages
            teacher = "teacher_grpo" if "teacher_grpo" in teachers else (teachers[-1] if teachers else None)
            note = ("" if stages else "This run has no saved checkpoints (`model/` folders), so live scoring is "
                    "off for it.")
            student = students[-1] if students else None
            warn = cb.live_warning(store, run_id, student, teacher)
            return _dd(students, student), _dd(teachers, teacher), "\n\n".join(x for x in (note, warn) if x)

        def live_run(run_id, student, teacher, problem, answer, allow):
            return cb.live_view(store, run_id, student, teacher, problem, answer, allow)

        def on_select(run_id, stage, step, color, evt: gr.SelectData):
            target = cb.row_target(evt.row_value)
            if target is None:
                raise cb.AppError("Could not read the selected row.")
            pid, policy, idx = target
            outs = token_outputs(run_id, stage, step, pid, idx if policy != "teacher" else None,
                                 idx if policy == "teacher" else None, color)
            return (gr.Tabs(selected="token"), *outs)

        # ---------------------------------------------------------------------------------------------------
        # wiring (.input fires on user changes only, so updates made here do not cascade)

        g = _guard
        run_chain = dict(fn=g(on_run, run_empty), inputs=[run_dd, *filters], outputs=[*run_outs, status])
        stages_chain = dict(fn=g(stages_outputs, stages_empty), inputs=[run_dd], outputs=[*stages_outs, status])
        compare_chain = dict(fn=g(compare_setup, [_empty_dd, _empty_dd, ""]), inputs=[run_dd],
                             outputs=[cmp_problem, cmp_stages, cmp_html, status])
        live_chain = dict(fn=g(live_setup, [_empty_dd, _empty_dd, ""]), inputs=[run_dd],
                          outputs=[live_student, live_teacher, live_note, status])

        def chain(event):
            # token view first (what the user looks at), then the heavier tabs; each reports its own errors
            return (event.then(**run_chain).then(**stages_chain).then(**compare_chain).then(**live_chain))

        chain(demo.load(g(on_load, [_empty_dd]), inputs=[run_dd], outputs=[run_dd, status]))
        chain(refresh_btn.click(g(on_load, [_empty_dd]), inputs=[run_dd], outputs=[run_dd, status]))
        run_dd.input(**run_chain).then(**stages_chain).then(**compare_chain).then(**live_chain)
        stage_dd.input(g(on_stage, stage_empty), inputs=[run_dd, stage_dd, *filters], outputs=[*stage_outs, status])
        step_dd.input(g(on_step, step_empty), inputs=[run_dd, stage_dd, step_dd, *filters],
                      outputs=[*step_outs, status])
        for comp in (problem_dd, sample_dd, teacher_dd, color_radio):
            comp.input(g(token_outputs, token_empty),
                       inputs=[run_dd, stage_dd, step_dd, problem_dd, sample_dd, teacher_dd, color_radio],
                       outputs=[*token_outs, status])
        for comp in (correct_radio, policy_radio):
            comp.input(g(lambda r, s, st, c, p: (cb.rollout_table(store, r, s, st, c, p),), [_empty_table]),
                       inputs=[run_dd, stage_dd, step_dd, correct_radio, policy_radio], outputs=[table, status])
        table.select(g(on_select, [gr.update()] + token_empty), inputs=[run_dd, stage_dd, step_dd, color_radio],
                     outputs=[tabs, *token_outs, status])
        for comp in (cmp_problem, cmp_stages, cmp_sample):
            comp.input(g(compare_render, [""]), inputs=[run_dd, cmp_problem, cmp_stages, cmp_sample],
                       outputs=[cmp_html, status])
        for comp in (live_student, live_teacher):
            comp.input(g(lambda r, s, t: (cb.live_warning(store, r, s, t),), [""]),
                       inputs=[run_dd, live_student, live_teacher], outputs=[live_note, status])
        live_btn.click(g(live_run, ["", None, ""]),
                       inputs=[run_dd, live_student, live_teacher, live_problem, live_answer, live_allow],
                       outputs=[live_html, live_plot, live_note, status])
    return demo


# --------------------------------------------------------------------------------------------------------------
# entry point


def main(argv: list[str] | None = None) -> None:
    """Serve the dashboard: `main(["runs", "--port", "8000"])` (what `s2dlab app` and `app/app.py` call)."""
    ap = argparse.ArgumentParser(prog="s2dlab app", description="Browse s2dlab runs in the browser.")
    ap.add_argument("runs_root", nargs="?", default="runs", help="folder holding the runs (default: runs)")
    ap.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the first free one)")
    # a Hugging Face Space sets GRADIO_SERVER_NAME=0.0.0.0; anywhere else the app stays on this machine
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                    help="interface to bind (default 127.0.0.1; 0.0.0.0 exposes the app on your network)")
    ap.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    ap.add_argument("--open", action="store_true", help="open the app in the default web browser")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path(args.runs_root)
    if not root.is_dir():
        log.warning("%s does not exist yet; the app will say so until runs appear there", root)
    demo = build_demo(root)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, inbrowser=args.open, show_error=False)
