"""The Token view tab: a student rollout beside the teacher's for the same problem, coloured token by token, the
per-position chart, the export of the view; and the counterfactual branches at a clicked token.

Other tabs open a rollout here through `TokenTab.show` (its outputs: `TokenTab.outputs`).
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from s2dlab.views.dashboard import data, live
from s2dlab.views.dashboard.store import AppError
from s2dlab.views.dashboard.ui import (
    Context,
    clear_on_input,
    dd,
    empty_dd,
    empty_multi,
    handler,
    new_table,
    status_line,
    table,
)

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
PICKED_CSS = ".s2d-picked{outline:3px solid #f39c12 !important;outline-offset:1px;z-index:6}"
# the probe-set AUROC button: positions per student rollout and continuations per side (a few seconds on a CPU)
PROBE_POSITIONS, PROBE_SAMPLES = 2, 8


def first_position(data_i) -> int | None:
    """The first token of a clicked span (`data-i` is "7" or "7–9" for a character split over tokens)."""
    text = str(data_i or "").replace("–", "-").split("-")[0].strip()
    return int(text) if text.isdigit() else None


PROBE_TABLE_COLUMNS = ["quantity", "value"]


def probe_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The probe's one-row summary (`live.PROBE_COLUMNS`) as a row per quantity: its thirteen names are single words
    too long to wrap, which side by side ran off a laptop's window."""
    first = summary.iloc[0] if len(summary) else {}
    return pd.DataFrame({"quantity": list(summary.columns),
                         "value": ["" if c not in first else str(first[c]) for c in summary.columns]},
                        columns=PROBE_TABLE_COLUMNS)


class TokenTab:
    def __init__(self, ctx: Context):
        # the bounds on branches live with the sampler, which imports torch: so building the app does, importing it not
        from s2dlab.instruments.branches import MAX_BRANCH_SAMPLES, MAX_BRANCH_TOKENS

        self.ctx = ctx
        with gr.Row():
            self.problem = gr.Dropdown(label="problem", choices=[], scale=3, elem_id="problem-dd")
            self.sample = gr.Dropdown(label="student sample", choices=[], scale=1, elem_id="sample-dd")
            self.teacher = gr.Dropdown(label="teacher sample", choices=[], scale=1)
            self.color = gr.Radio(list(data.COLOR_BY), value="implicit reward", label="colour by", scale=2)
        self.status = status_line("token-status")
        with gr.Row():
            self.note = gr.Markdown()
            self.export = gr.DownloadButton("⤓ export this view (HTML)", value=None, size="sm", scale=0,
                                            elem_id="export-token")
        with gr.Row():
            self.student_html = gr.HTML(elem_id="student-heatmap", js_on_load=TOKEN_CLICK_JS, css_template=PICKED_CSS,
                                        padding=True)
            self.teacher_html = gr.HTML(elem_id="teacher-heatmap", js_on_load=None, padding=True)
        self.chart = gr.Plot(label="per position (student rollout)", elem_id="token-chart")
        with gr.Accordion("Counterfactual branches: click a token of the student rollout", open=True):
            gr.Markdown("Force the student's token, or one of the teacher's top alternatives, at that position, let "
                        "the student finish N times and grade every finish: each branch's success rate with its 95% "
                        "Wilson interval, beside its implicit reward there (`s2dlab.instruments.branches`).")
            with gr.Row():
                self.branch_pos = gr.Number(label="position", value=None, elem_id="branch-pos", scale=1)
                self.branch_n = gr.Slider(1, MAX_BRANCH_SAMPLES, value=16, step=1,
                                          label=f"N continuations per branch (≤ {MAX_BRANCH_SAMPLES})", scale=2,
                                          elem_id="branch-n")
                self.branch_len = gr.Slider(1, MAX_BRANCH_TOKENS, value=48, step=1,
                                            label=f"max new tokens (≤ {MAX_BRANCH_TOKENS})", scale=2,
                                            elem_id="branch-len")
                self.branch_seed = gr.Number(label="seed", value=0, scale=1, elem_id="branch-seed")
            self.branch_info = gr.Markdown(elem_id="branch-info")
            self.branch_cands = gr.CheckboxGroup(label="branches", choices=[], elem_id="branch-cands")
            with gr.Row():
                self.branch_allow = gr.Checkbox(label="run large models on the CPU anyway", value=False)
                self.branch_btn = gr.Button("Sample branches", variant="primary", elem_id="branch-btn")
                self.probe_btn = gr.Button(f"Probe-set AUROC ({PROBE_POSITIONS} positions of every student rollout, "
                                           f"{PROBE_SAMPLES} continuations each)", elem_id="probe-btn")
            self.branch_status = status_line("branch-status")
            self.branch_note = gr.Markdown(elem_id="branch-note")
            self.branch_table = new_table(live.BRANCH_COLUMNS, "branch-table")
            self.branch_plot = gr.Plot(elem_id="branch-plot")
            self.probe_note = gr.Markdown(elem_id="probe-note")
            self.probe_table = new_table(PROBE_TABLE_COLUMNS, "probe-table")
        # what `show` fills, and what it shows when that fails
        self.empties = {self.problem: empty_dd, self.sample: empty_dd, self.teacher: empty_dd, self.student_html: "",
                        self.teacher_html: "", self.chart: None, self.note: "", self.export: None,
                        self.branch_pos: None, self.branch_cands: empty_multi, self.branch_info: ""}
        self.outputs = [*self.empties, self.branch_status]
        ctx.on_snapshot.append(handler(self.refresh, [ctx.run_dd, ctx.stage_dd, ctx.step_dd, self.color],
                                       self.outputs, self.status, self.empties))

    # ---- handlers

    def show(self, run_id, stage, step, prompt_id=None, sample=None, teacher=None, color="implicit reward") -> dict:
        """Everything the token view shows for one rollout of a snapshot (the first problem and samples by
        default), with its export written; the branch panel is reset to "click a token"."""
        store = self.ctx.store
        df = store.snapshot(run_id, stage, step)
        problems = data.problem_choices(df)
        pids = [p for _, p in problems]
        prompt_id = prompt_id if prompt_id in pids else (pids[0] if pids else None)
        samples = data.sample_choices(df, prompt_id, "student")
        teachers = data.sample_choices(df, prompt_id, "teacher")
        sample = sample if sample in [s for _, s in samples] else (samples[0][1] if samples else None)
        teacher = teacher if teacher in [s for _, s in teachers] else (teachers[0][1] if teachers else None)
        s_html, t_html, fig, note = data.token_view(store, run_id, stage, step, prompt_id, sample, teacher, color)
        path = data.token_view_export(store, self.ctx.exports, run_id, stage, step, prompt_id, sample, teacher,
                                      s_html, t_html)
        return {self.problem: dd(problems, prompt_id), self.sample: dd(samples, sample),
                self.teacher: dd(teachers, teacher), self.student_html: s_html, self.teacher_html: t_html,
                self.chart: fig, self.note: note, self.export: path, self.branch_pos: None,
                self.branch_cands: empty_multi(), self.branch_info: "Click a token of the student rollout.",
                self.branch_status: ""}

    def refresh(self, run_id, stage, step, color):
        """A new snapshot: its first problem; nothing to show (and nothing to say) while no stage is chosen."""
        if not stage:
            return {**{c: v() if callable(v) else v for c, v in self.empties.items()}, self.branch_status: ""}
        return self.show(run_id, stage, step, color=color)

    def candidates(self, run_id, stage, step, pid, sample, position) -> dict:
        choices, default, info = live.branch_candidates(self.ctx.store, run_id, stage, step, pid, sample, position)
        return {self.branch_pos: position, self.branch_cands: gr.update(choices=choices, value=default),
                self.branch_info: info}

    def on_pick_token(self, run_id, stage, step, pid, sample, evt: gr.EventData):
        position = first_position((getattr(evt, "_data", None) or {}).get("i"))
        if position is None:
            raise AppError("Could not read the clicked token's position.")
        return self.candidates(run_id, stage, step, pid, sample, position)

    def on_position(self, run_id, stage, step, pid, sample, position):
        out = self.candidates(run_id, stage, step, pid, sample, position)
        del out[self.branch_pos]
        return out

    def on_branch(self, run_id, stage, step, pid, sample, position, cands, n, length, seed, allow):
        rows, fig, note = live.branch_view(self.ctx.store, run_id, stage, self.ctx.step(run_id, stage, step), pid,
                                            sample, position, cands, n, length, seed, allow)
        return {self.branch_table: table(rows), self.branch_plot: fig, self.branch_note: note}

    def on_probe(self, run_id, stage, step, length, seed, allow, progress=gr.Progress(track_tqdm=True)):
        progress(0, desc="branching every student rollout of the snapshot")
        rows, note = live.probe_branch_view(self.ctx.store, run_id, stage, self.ctx.step(run_id, stage, step),
                                             positions_per_rollout=PROBE_POSITIONS, n_samples=PROBE_SAMPLES,
                                             max_new_tokens=length, seed=seed, allow_large=allow)
        return {self.probe_table: table(probe_rows(rows)), self.probe_note: note}

    # ---- wiring

    def wire(self):
        ctx = self.ctx
        snapshot = [ctx.run_dd, ctx.stage_dd, ctx.step_dd]
        clear_on_input(self.branch_status, self.branch_pos, self.branch_n, self.branch_len, self.branch_seed,
                       self.branch_cands, self.branch_allow)
        for comp in (self.problem, self.sample, self.teacher, self.color):
            comp.input(**handler(self.show, [*snapshot, self.problem, self.sample, self.teacher, self.color],
                                 self.outputs, self.status, self.empties,
                                 api_name="token_view" if comp is self.problem else None))
        rollout = [*snapshot, self.problem, self.sample]
        self.student_html.pick_token(**handler(
            self.on_pick_token, rollout, [self.branch_pos, self.branch_cands, self.branch_info], self.branch_status,
            {self.branch_pos: None, self.branch_cands: empty_multi, self.branch_info: ""}))
        self.branch_pos.submit(**handler(self.on_position, [*rollout, self.branch_pos],
                                         [self.branch_cands, self.branch_info], self.branch_status,
                                         {self.branch_cands: empty_multi, self.branch_info: ""},
                                         api_name="branch_position"))
        self.branch_btn.click(**handler(
            self.on_branch, [*rollout, self.branch_pos, self.branch_cands, self.branch_n, self.branch_len,
                             self.branch_seed, self.branch_allow],
            [self.branch_table, self.branch_plot, self.branch_note], self.branch_status,
            {self.branch_table: None, self.branch_plot: None, self.branch_note: ""}, models=True, api_name="branches"))
        self.probe_btn.click(**handler(self.on_probe, [*snapshot, self.branch_len, self.branch_seed, self.branch_allow],
                                       [self.probe_table, self.probe_note], self.branch_status,
                                       {self.probe_table: None, self.probe_note: ""}, models=True, api_name="probe"))
