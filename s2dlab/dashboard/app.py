"""The s2dlab dashboard: browse runs, see where the teacher's dense reward lands token by token.

    s2dlab app runs                        # http://127.0.0.1:7860, no share link
    s2dlab app runs --port 8000 --share --open
    python app/app.py runs                 # the same from a clone (a Hugging Face Space's entry point)

Tabs:
- Token view: a student rollout beside the teacher's for the same problem, coloured by implicit reward, hover for
  every number; click a token of the student's to sample counterfactual branches there; export the view as one
  self-contained HTML file.
- Rollouts: a snapshot's table; pick a row to open it.
- Stages: the run's summary.json rendered: the arms with intervals and budgets, the paper's predictions, C1 and
  C2 with their intervals, the token quadrants, the curves (click a point: that stage's snapshot, its largest
  |implicit reward| tokens). A folder of seeds shows its aggregate.
- Token lens: one rollout re-scored by every saved checkpoint pair (`s2dlab lens RUN` computes it once).
- Estimators: exact KLs beside k1 / k2 / k3 and top-k truncations per token, bias and spread per snapshot.
- Compare (one problem across stages), Live (sample and score a new problem with saved checkpoints).

Layout and event wiring live here; data access is in `s2dlab.dashboard.data` (reading the run store) and
`s2dlab.dashboard.live` (running saved checkpoints). Every handler returns a status message as its last output: a
missing, empty or corrupt run, a run without checkpoints or lens, or a bad position shows a sentence there, never
a traceback. Everything shown comes from the run store or from the one module that defines it; nothing is judged
here.
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from s2dlab.dashboard import data as cb  # noqa: E402
from s2dlab.dashboard import live  # noqa: E402
from s2dlab.errors import S2DLabError  # noqa: E402

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
    if isinstance(err, S2DLabError):  # AppError and every other expected problem (InputError, MissingError, ...)
        return f"⚠ {html.escape(str(err), quote=False)}"
    log.exception("unexpected error in an app callback")
    return f"⚠ Something went wrong: {type(err).__name__}: {html.escape(str(err), quote=False)}"


def _guard(fn, empties, clear: bool = True):
    """Call `fn`; on any error return `empties` (cleared outputs) plus the message for the status box. On success
    the status is cleared (`clear`, the first handler of a user action) or left as it is (the handlers chained
    after it, so an earlier message stays visible)."""

    @functools.wraps(fn)  # keeps the signature: Gradio passes event data (gr.SelectData) by annotation
    def wrapper(*args):
        try:
            out = fn(*args)
            return (*out, "" if clear else gr.update())
        except Exception as err:  # every failure becomes a message in the UI
            return (*[e() if callable(e) else e for e in empties], _message(err))

    return wrapper


def _dd(choices, value=None):
    """A dropdown update; `value` defaults to the first choice."""
    values = [c[1] if isinstance(c, tuple) else c for c in choices]
    if value not in values:
        value = values[0] if values else None
    return gr.update(choices=choices, value=value)


def _multi(choices, value):
    return gr.update(choices=choices, value=[v for v in value if v in choices])


def _empty_dd():
    return gr.update(choices=[], value=None)


def _empty_table():
    return pd.DataFrame(columns=cb.TABLE_COLUMNS)


def _first_position(data_i) -> int | None:
    """The first token of a clicked span (`data-i` is "7" or "7–9" for a character split over tokens)."""
    text = str(data_i or "").replace("–", "-").split("-")[0].strip()
    return int(text) if text.isdigit() else None


# A click on a token of the student heatmap sends its position (data-i) to Python (`pick_token`); the span stays
# outlined. Heatmaps hold no script of their own: this listener belongs to the app.
TOKEN_CLICK_JS = """
element.addEventListener('click', (e) => {
  const tok = e.target.closest('.s2d-tok');
  if (!tok || !element.contains(tok)) return;
  element.querySelectorAll('.s2d-picked').forEach(x => x.classList.remove('s2d-picked'));
  tok.classList.add('s2d-picked');
  trigger('pick_token', {i: tok.dataset.i});
});
"""
# the probe-set AUROC button: positions per student rollout and continuations per side (a few seconds on a CPU)
PROBE_POSITIONS, PROBE_SAMPLES = 2, 8
PICKED_CSS = ".s2d-picked{outline:3px solid #f39c12 !important;outline-offset:1px;z-index:6}"
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


# --------------------------------------------------------------------------------------------------------------
# layout


def build_demo(runs_root: str | os.PathLike) -> gr.Blocks:
    """The app over the runs under `runs_root` (which it only reads; exports go to a temporary folder)."""
    # the bounds on branches live with the sampler, which imports torch: so building the app does, importing it not
    from s2dlab.branches import MAX_BRANCH_SAMPLES, MAX_BRANCH_TOKENS

    store = cb.Store(runs_root)
    exports = Path(tempfile.mkdtemp(prefix="s2dlab-export-"))

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
                with gr.Row():
                    note_md = gr.Markdown()
                    export_btn = gr.DownloadButton("⤓ export this view (HTML)", value=None, size="sm", scale=0,
                                                   elem_id="export-token")
                with gr.Row():
                    student_html = gr.HTML(elem_id="student-heatmap", js_on_load=TOKEN_CLICK_JS,
                                           css_template=PICKED_CSS, padding=True)
                    teacher_html = gr.HTML(elem_id="teacher-heatmap", js_on_load=None, padding=True)
                chart = gr.Plot(label="per position (student rollout)", elem_id="token-chart")
                with gr.Accordion("Counterfactual branches: click a token of the student rollout", open=True):
                    gr.Markdown("Force the student's token, or one of the teacher's top alternatives, at that "
                                "position, let the student finish N times and grade every finish: each branch's "
                                "success rate with its 95% Wilson interval, beside its implicit reward there "
                                "(`s2dlab.branches`).")
                    with gr.Row():
                        branch_pos = gr.Number(label="position", precision=0, value=None, elem_id="branch-pos",
                                               scale=1)
                        branch_n = gr.Slider(1, MAX_BRANCH_SAMPLES, value=16, step=1, label="N continuations per "
                                             f"branch (≤ {MAX_BRANCH_SAMPLES})", scale=2)
                        branch_len = gr.Slider(1, MAX_BRANCH_TOKENS, value=48, step=1,
                                               label=f"max new tokens (≤ {MAX_BRANCH_TOKENS})", scale=2)
                        branch_seed = gr.Number(label="seed", value=0, precision=0, scale=1)
                    branch_info = gr.Markdown(elem_id="branch-info")
                    branch_cands = gr.CheckboxGroup(label="branches", choices=[], elem_id="branch-cands")
                    with gr.Row():
                        branch_allow = gr.Checkbox(label="run large models on the CPU anyway", value=False)
                        branch_btn = gr.Button("Sample branches", variant="primary", elem_id="branch-btn")
                        probe_btn = gr.Button(f"Probe-set AUROC ({PROBE_POSITIONS} positions of every student "
                                              f"rollout, {PROBE_SAMPLES} continuations each)", elem_id="probe-btn")
                    branch_note = gr.Markdown(elem_id="branch-note")
                    branch_table = gr.Dataframe(value=pd.DataFrame(columns=live.BRANCH_COLUMNS), interactive=False,
                                                elem_id="branch-table", wrap=True)
                    branch_plot = gr.Plot(elem_id="branch-plot")
                    probe_note = gr.Markdown(elem_id="probe-note")
                    probe_table = gr.Dataframe(value=pd.DataFrame(columns=live.PROBE_COLUMNS), interactive=False,
                                               elem_id="probe-table")

            with gr.Tab("Rollouts", id="rollouts"):
                with gr.Row():
                    correct_radio = gr.Radio(["all", "correct", "incorrect"], value="all", label="correct")
                    policy_radio = gr.Radio(["all", "student", "teacher"], value="all", label="sampled by")
                gr.Markdown("Sort from a column header (its ⋮ menu); click a row to open it in the token view.")
                table = gr.Dataframe(value=_empty_table(), interactive=False, elem_id="rollout-table", wrap=True,
                                     max_height=600)

            with gr.Tab("Stages", id="stages"):
                stages_note = gr.Markdown(elem_id="stages-note")
                verdict_md = gr.Markdown(elem_id="verdicts")
                gr.Markdown("### The arms (the rows of the paper's Table 2)")
                arms_df = gr.Dataframe(interactive=False, elem_id="arms-table", wrap=False,
                                       column_widths=["160px", "300px", "70px", "170px", "80px", "110px", "110px",
                                                      "130px", "110px", "170px", "110px"])
                bars_plot = gr.Plot(label="accuracy by arm", elem_id="arms-plot")
                gr.Markdown("### The paper's predictions")
                claims_df = gr.Dataframe(interactive=False, elem_id="claims-table", wrap=False,
                                         column_widths=["130px", "430px", "330px", "200px"])
                gr.Markdown("### C1: is the teacher reward-shaped?")
                c1_verdict = gr.Markdown(elem_id="c1-verdict")
                c1_plot = gr.Plot(label="C1", elem_id="c1-plot")
                c1_df = gr.Dataframe(interactive=False, label="C1 per teacher (fixed rollouts)", wrap=False)
                gr.Markdown("### C2: is the teacher close to the student? (click a row for its histogram)")
                c2_verdict = gr.Markdown(elem_id="c2-verdict")
                c2_df = gr.Dataframe(interactive=False, label="C2 per distillation stage", wrap=False,
                                     elem_id="c2-table")
                c2_dd = gr.Dropdown(label="C2: distillation stage", choices=[], elem_id="c2-dd")
                c2_plot = gr.Plot(label="C2", elem_id="c2-plot")
                gr.Markdown("### Where the dense signal sits")
                quad_plot = gr.Plot(label="token quadrants", elem_id="quad-plot")
                gr.Markdown("### Curves (click a point to open that stage's snapshot)")
                with gr.Row():
                    metric_dd = gr.Dropdown(label="curves", choices=[], multiselect=True, scale=3)
                    curve_stage_dd = gr.Dropdown(label="stages", choices=[], multiselect=True, scale=3)
                curves_plot = gr.Plot(label="curves across stages", elem_id="stage-curves")
                curve_bridge = gr.HTML("", js_on_load=CURVE_CLICK_JS, elem_id="curve-bridge")
                drill_note = gr.Markdown(elem_id="drill-note")
                drill_df = gr.Dataframe(value=pd.DataFrame(columns=cb.TOP_TOKEN_COLUMNS), interactive=False,
                                        elem_id="top-tokens", wrap=True)

            with gr.Tab("Token lens", id="lens") as lens_tab:
                lens_note = gr.Markdown(elem_id="lens-note")
                with gr.Row():
                    lens_rollout = gr.Dropdown(label="rollout", choices=[], scale=3, elem_id="lens-rollout")
                    lens_value = gr.Radio(list(cb.LENS_VALUES), value="implicit reward", label="value", scale=2)
                    lens_student = gr.Dropdown(label="pairs", choices=[], scale=2, elem_id="lens-pairs")
                    lens_export = gr.DownloadButton("⤓ export (HTML)", value=None, size="sm", scale=0,
                                                    elem_id="export-lens")
                lens_html = gr.HTML(elem_id="lens-table", js_on_load=None, padding=True)

            with gr.Tab("Estimators", id="estimators"):
                gr.Markdown("Every estimate of the reverse KL on-policy distillation might train on, beside the exact "
                            "value, for the snapshot chosen above, re-scored with the checkpoints that took it "
                            "(`s2dlab.estimators`): k1 = −implicit reward, k2, k3, and top-k truncations "
                            "(renormalised, "
                            "with a tail bucket, raw) for k = 1, 8, 64 with their tail masses; and how often the "
                            "sampled-token gradient points the way of the exact one.")
                with gr.Row():
                    est_rollout = gr.Dropdown(label="rollout (per-token view)", choices=[], scale=3,
                                              elem_id="est-rollout")
                    est_allow = gr.Checkbox(label="run large models on the CPU anyway", value=False, scale=1)
                    est_btn = gr.Button("Estimate on this snapshot", variant="primary", scale=1, elem_id="est-btn")
                est_note = gr.Markdown(elem_id="est-note")
                est_bias = gr.Dataframe(interactive=False, label="bias and spread per estimator (every token)",
                                        elem_id="est-bias", wrap=True)
                with gr.Row():
                    est_tail = gr.Dataframe(interactive=False, label="mean tail mass outside the student's top k")
                    est_grad = gr.Markdown()
                est_plot = gr.Plot(elem_id="est-plot")
                est_tokens = gr.Dataframe(interactive=False, label="per token", elem_id="est-tokens", max_height=400)

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
            step_shown = step if step not in (None, "") else store.steps(run_id, stage)[-1]
            path = cb.export_file(exports, f"s2dlab · {run_id} · {stage} step {step_shown} · problem {prompt_id}",
                                  [s_html, t_html], run_id, stage, step_shown, prompt_id, sample, "token-view")
            return (_dd(problems, prompt_id), _dd(samples, sample), _dd(teachers, teacher), s_html, t_html, fig,
                    note, path, None, gr.update(choices=[], value=[]), "Click a token of the student rollout.")

        token_outs = [problem_dd, sample_dd, teacher_dd, student_html, teacher_html, chart, note_md, export_btn,
                      branch_pos, branch_cands, branch_info]
        token_empty = [_empty_dd, _empty_dd, _empty_dd, "", "", None, "", None, None,
                       lambda: gr.update(choices=[], value=[]), ""]

        def on_step(run_id, stage, step, color, correct, policy):
            return (*token_outputs(run_id, stage, step, color=color),
                    cb.rollout_table(store, run_id, stage, step, correct, policy))

        def on_stage(run_id, stage, color, correct, policy):
            steps = store.steps(run_id, stage)
            step = steps[-1] if steps else None
            return (_dd(steps, step), *on_step(run_id, stage, step, color, correct, policy))

        def on_run(run_id, color, correct, policy):
            if store.is_aggregate(run_id):
                store.open(run_id)  # says: a folder of seeds; pick a seed's run for the token views
            stages = store.snapshot_stages(run_id)
            if not stages:
                store.open(run_id)  # a missing / corrupt run says so; an intact one has no snapshots yet
                raise cb.AppError(f"Run {run_id!r} has no rollout snapshots yet: the Token view and Rollouts tabs "
                                  "fill in once a stage writes one. The Stages tab shows its curves so far.")
            stage = "opd" if "opd" in stages else stages[-1]
            return (_dd(stages, stage), *on_stage(run_id, stage, color, correct, policy))

        def on_load(current=None):
            runs = store.run_options()
            if not runs:
                raise cb.AppError(f"No runs under {store.root}: it holds no folder with a run.json.")
            if current not in [r for _, r in runs]:  # a seed's run first: the token views need one
                current = next((r for _, r in runs if not store.is_aggregate(r)), None)
            return (_dd(runs, current),)  # keeps the current run on reload when it still exists

        step_outs = [*token_outs, table]
        step_empty = [*token_empty, _empty_table]
        stage_outs = [step_dd, *step_outs]
        stage_empty = [_empty_dd, *step_empty]
        run_outs = [stage_dd, *stage_outs]
        run_empty = [_empty_dd, *stage_empty]
        filters = [color_radio, correct_radio, policy_radio]

        # ---- Stages: the summary, rendered
        def stages_outputs(run_id):
            v = cb.stages_view(store, run_id)
            return (v["note"], v["verdict"], v["arms"], v["claims"], v["arms_figure"], v["c1_verdict"],
                    v["c1_figure"], v["c1_table"], v["c2_verdict"], _dd(v["c2_choices"], v["c2_stage"]),
                    v["c2_figure"], v["c2_table"], v["quadrants"], _multi(v["metrics"], v["metrics_default"]),
                    _multi(v["curve_stages"], v["curve_stages_default"]), v["curves"], "",
                    pd.DataFrame(columns=cb.TOP_TOKEN_COLUMNS))

        stages_outs = [stages_note, verdict_md, arms_df, claims_df, bars_plot, c1_verdict, c1_plot, c1_df, c2_verdict,
                       c2_dd, c2_plot, c2_df, quad_plot, metric_dd, curve_stage_dd, curves_plot, drill_note, drill_df]
        stages_empty = ["", "", None, None, None, "", None, None, "", _empty_dd, None, None, None,
                        lambda: gr.update(choices=[], value=[]), lambda: gr.update(choices=[], value=[]), None, "",
                        None]

        def on_c2_row(run_id, evt: gr.SelectData):
            row = evt.row_value or []
            if not row:
                raise cb.AppError("Could not read the selected C2 row.")
            return gr.update(value=str(row[0])), cb.c2_view(store, run_id, str(row[0]))

        def on_drill(run_id, color, correct, policy, evt: gr.EventData):
            data = getattr(evt, "_data", None) or {}
            stage, step = data.get("stage"), data.get("step")
            if not stage:
                raise cb.AppError("Could not read the clicked point of the curves.")
            snap, top, note = cb.drill_down(store, run_id, stage, step)
            stages = store.snapshot_stages(run_id)
            return (_dd(stages, stage), _dd(store.steps(run_id, stage), snap),
                    *on_step(run_id, stage, snap, color, correct, policy), note, top)

        def on_top_token(run_id, stage, step, color, evt: gr.SelectData):
            row = evt.row_value or []
            if len(row) < 4:
                raise cb.AppError("Could not read the selected token.")
            pid, sample, policy, position = str(row[0]), int(float(row[1])), str(row[2]), int(float(row[3]))
            outs = list(token_outputs(run_id, stage, step, pid, sample if policy != "teacher" else None,
                                      sample if policy == "teacher" else None, color))
            if policy != "teacher":
                choices, default, info = live.branch_candidates(store, run_id, stage, step, pid, sample, position)
                outs[-3:] = [position, gr.update(choices=choices, value=default), info]
            return (gr.Tabs(selected="token"), *outs)

        # ---- Token lens
        def lens_setup(run_id):
            rollouts, filters, default, note = cb.lens_choices(store, run_id)
            key = rollouts[0][1] if rollouts else None
            page, path = lens_render(run_id, key, "implicit reward", default)
            return _dd(rollouts, key), _dd(filters, default), note, page, path

        def lens_setup_quiet(run_id):
            try:
                return lens_setup(run_id)
            except Exception as err:  # shown in the tab; the status line gets it when the tab is opened
                return _empty_dd(), _empty_dd(), _message(err), "", None

        def lens_render(run_id, key, value, pairs):
            page = cb.lens_view(store, run_id, key, value, pairs)
            path = cb.export_file(exports, f"s2dlab · {run_id} · token lens · {key}", [page], run_id, "lens", key,
                                  value)
            return page, path

        def lens_check(run_id):
            cb.lens_index(store, run_id)  # AppError naming `s2dlab lens RUN` when the run has none
            return (gr.update(),)

        lens_outs = [lens_rollout, lens_student, lens_note, lens_html, lens_export]

        def _step(run_id, stage, step):
            """The chosen snapshot step (0 is a step), else the stage's latest."""
            return store.steps(run_id, stage)[-1] if step in (None, "") else step

        # ---- branches
        def on_pick_token(run_id, stage, step, pid, sample, evt: gr.EventData):
            position = _first_position((getattr(evt, "_data", None) or {}).get("i"))
            if position is None:
                raise cb.AppError("Could not read the clicked token's position.")
            choices, default, info = live.branch_candidates(store, run_id, stage, step, pid, sample, position)
            return position, gr.update(choices=choices, value=default), info

        def on_position(run_id, stage, step, pid, sample, position):
            choices, default, info = live.branch_candidates(store, run_id, stage, step, pid, sample, position)
            return gr.update(choices=choices, value=default), info

        def on_branch(run_id, stage, step, pid, sample, position, cands, n, length, seed, allow):
            return live.branch_view(store, run_id, stage, _step(run_id, stage, step), pid, sample,
                                    position, cands, n, length, seed, allow)

        def on_probe(run_id, stage, step, length, seed, allow, progress=gr.Progress(track_tqdm=True)):
            progress(0, desc="branching every student rollout of the snapshot")
            return live.probe_branch_view(store, run_id, stage, _step(run_id, stage, step),
                                          positions_per_rollout=PROBE_POSITIONS, n_samples=PROBE_SAMPLES,
                                          max_new_tokens=length, seed=seed, allow_large=allow)

        # ---- estimators
        def est_setup(run_id, stage, step):
            return (_dd(live.estimator_rollouts(store, run_id, stage, _step(run_id, stage, step))),)

        def on_estimate(run_id, stage, step, rollout, allow):
            return live.estimators_view(store, run_id, stage, _step(run_id, stage, step), rollout, allow)

        est_outs = [est_bias, est_tail, est_grad, est_tokens, est_plot, est_note]
        est_empty = [None, None, "", None, None, ""]

        # ---- compare, live
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
            note = ("" if stages else "This run has no checkpoints (no `model/` folders, no linked models), so live scoring is "
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
        stages_chain = dict(fn=g(stages_outputs, stages_empty, clear=False), inputs=[run_dd],
                            outputs=[*stages_outs, status])
        compare_chain = dict(fn=g(compare_setup, [_empty_dd, _empty_dd, ""], clear=False), inputs=[run_dd],
                             outputs=[cmp_problem, cmp_stages, cmp_html, status])
        live_chain = dict(fn=g(live_setup, [_empty_dd, _empty_dd, ""], clear=False), inputs=[run_dd],
                          outputs=[live_student, live_teacher, live_note, status])
        lens_chain = dict(fn=lens_setup_quiet, inputs=[run_dd], outputs=lens_outs)
        est_chain = dict(fn=g(est_setup, [_empty_dd], clear=False), inputs=[run_dd, stage_dd, step_dd],
                         outputs=[est_rollout, status])

        def chain(event):
            # token view first (what the user looks at), then the heavier tabs; each reports its own errors
            return (event.then(**run_chain).then(**stages_chain).then(**compare_chain).then(**live_chain)
                    .then(**lens_chain).then(**est_chain))

        chain(demo.load(g(on_load, [_empty_dd]), inputs=[run_dd], outputs=[run_dd, status]))
        chain(refresh_btn.click(g(on_load, [_empty_dd]), inputs=[run_dd], outputs=[run_dd, status]))
        (run_dd.input(**run_chain).then(**stages_chain).then(**compare_chain).then(**live_chain).then(**lens_chain)
         .then(**est_chain))
        stage_dd.input(g(on_stage, stage_empty), inputs=[run_dd, stage_dd, *filters],
                       outputs=[*stage_outs, status]).then(**est_chain)
        step_dd.input(g(on_step, step_empty), inputs=[run_dd, stage_dd, step_dd, *filters],
                      outputs=[*step_outs, status]).then(**est_chain)
        for comp in (problem_dd, sample_dd, teacher_dd, color_radio):
            comp.input(g(token_outputs, token_empty),
                       inputs=[run_dd, stage_dd, step_dd, problem_dd, sample_dd, teacher_dd, color_radio],
                       outputs=[*token_outs, status])
        for comp in (correct_radio, policy_radio):
            comp.input(g(lambda r, s, st, c, p: (cb.rollout_table(store, r, s, st, c, p),), [_empty_table]),
                       inputs=[run_dd, stage_dd, step_dd, correct_radio, policy_radio], outputs=[table, status])
        table.select(g(on_select, [gr.update()] + token_empty), inputs=[run_dd, stage_dd, step_dd, color_radio],
                     outputs=[tabs, *token_outs, status])

        # stages: the C2 stage, the curve pickers, a click on a curve point, a click on a top token
        c2_dd.input(g(lambda r, s: (cb.c2_view(store, r, s),), [None]), inputs=[run_dd, c2_dd],
                    outputs=[c2_plot, status])
        c2_df.select(g(on_c2_row, [gr.update(), None]), inputs=[run_dd], outputs=[c2_dd, c2_plot, status])
        for comp in (metric_dd, curve_stage_dd):
            comp.input(g(lambda r, m, s: (cb.curves_view(store, r, m, s),), [None]),
                       inputs=[run_dd, metric_dd, curve_stage_dd], outputs=[curves_plot, status])
        curve_bridge.pick_point(g(on_drill, [gr.update(), gr.update(), *step_empty, "", None]),
                                inputs=[run_dd, *filters],
                                outputs=[stage_dd, step_dd, *step_outs, drill_note, drill_df, status]
                                ).then(**est_chain)
        drill_df.select(g(on_top_token, [gr.update()] + token_empty), inputs=[run_dd, stage_dd, step_dd, color_radio],
                        outputs=[tabs, *token_outs, status])

        # token lens
        for comp in (lens_rollout, lens_value, lens_student):
            comp.input(g(lens_render, ["", None]), inputs=[run_dd, lens_rollout, lens_value, lens_student],
                       outputs=[lens_html, lens_export, status])
        # opening the tab puts a missing lens in the status line (and leaves the chosen rollout as it is)
        lens_tab.select(g(lens_check, [gr.update()]), inputs=[run_dd], outputs=[lens_note, status])

        # branches
        student_html.pick_token(g(on_pick_token, [None, lambda: gr.update(choices=[], value=[]), ""]),
                                inputs=[run_dd, stage_dd, step_dd, problem_dd, sample_dd],
                                outputs=[branch_pos, branch_cands, branch_info, status])
        branch_pos.submit(g(on_position, [lambda: gr.update(choices=[], value=[]), ""]),
                          inputs=[run_dd, stage_dd, step_dd, problem_dd, sample_dd, branch_pos],
                          outputs=[branch_cands, branch_info, status])
        branch_btn.click(g(on_branch, [None, None, ""]),
                         inputs=[run_dd, stage_dd, step_dd, problem_dd, sample_dd, branch_pos, branch_cands, branch_n,
                                 branch_len, branch_seed, branch_allow],
                         outputs=[branch_table, branch_plot, branch_note, status])
        probe_btn.click(g(on_probe, [None, ""]),
                        inputs=[run_dd, stage_dd, step_dd, branch_len, branch_seed, branch_allow],
                        outputs=[probe_table, probe_note, status])

        # estimators
        est_btn.click(g(on_estimate, est_empty), inputs=[run_dd, stage_dd, step_dd, est_rollout, est_allow],
                      outputs=[*est_outs, status])
        est_rollout.input(g(on_estimate, est_empty), inputs=[run_dd, stage_dd, step_dd, est_rollout, est_allow],
                          outputs=[*est_outs, status])

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
    from s2dlab.env import check_address

    check_address(args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    root = Path(args.runs_root)
    if not root.is_dir():
        log.warning("%s does not exist yet; the app will say so until runs appear there", root)
    demo = build_demo(root)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, inbrowser=args.open, show_error=False)
