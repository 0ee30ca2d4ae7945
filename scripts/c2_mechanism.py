"""What a far student does to on-policy distillation: OPD from the close and the far base student, with and without
the forward-KL warmup, on the full-vocabulary and the sampled-token loss, with the OPD stage's per-step signal
metrics (`s2dlab.workflow.stages.opd.step_metrics`: the implicit reward's variance, the share of the loss and of the gradient
norm carried by the top 1% of tokens; TRL's grad_norm) and accuracy.

    python scripts/c2_mechanism.py --out runs/c2_mechanism --json docs/results/c2_mechanism.json \\
        --html docs/img/c2_mechanism.html [--png docs/img/c2_mechanism.png] [--seed 0] [key=value ...]
    python scripts/c2_mechanism.py --figure-only --json docs/results/c2_mechanism.json --png docs/img/c2_mechanism.png

One RL teacher (`full.teacher_grpo`, stage 1 on the whole pool, as the `bridge` arm) is trained once into
`OUT/teacher` (or copied from `--teacher-from RUN`) and copied into every cell, so every cell distils the same
teacher. A cell is an ordinary run folder `OUT/<student>_<warmup|no_warmup>_<loss>` holding the arm's stages, each
run with `s2dlab stage` (so `s2dlab score` and `s2dlab app` open it):

    with the warmup      full.fkl_warmup (100 steps), then full.opd (100 steps)     the `bridge` arm
    without              no_warmup.opd (200 steps: the bridge's student steps)      the `bridge_no_warmup` arm

Before the cells, `s2dlab check` measures every shipped student level (`--levels`, default close,middle,far)
against that teacher on the first 200 eval problems x 4 rollouts (C2 = per-token reverse KL on the student's own
rollouts, with its interval, and both accuracies): the same command a user types,

    s2dlab check --teacher OUT/teacher/full.teacher_grpo/model --student s2dlab/assets/tiny_base/student_far \
        --data OUT/eval.jsonl --n 200 --samples 4 --max-new-tokens 48 --out OUT/check_far

The warmup does not depend on the OPD loss, so the first loss's warmup is copied into the second's cell. Every cell
runs with `opd.grad_share=true` (the top-1% gradient share, one extra backward pass per step) and probe snapshots
every `--every` steps (`probe/accuracy` on the fixed probe problems); the accuracy at the end is the eval split's
(avg@4 with its interval, `summary.json`). The JSON holds every cell's per-step series and their summaries: the
means over the first 10 OPD steps and over all of them, gradient-norm spikes (`opd.grad_norm_spikes`: steps above
5x the cell's median norm), C2 (reverse KL on the student's own rollouts) at the start and after each stage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from s2dlab.cli import main as s2dlab
from s2dlab.core.runs import open_run
from s2dlab.tutorial import copy_stages
from s2dlab.workflow.stages.opd import grad_norm_spikes
from s2dlab.workflow.summary import read_summary

TEACHER = "full.teacher_grpo"
SERIES = ("opd/implicit_reward_var", "opd/implicit_reward_mean", "opd/implicit_reward_min", "opd/reverse_kl",
          "opd/top1pct_loss_share", "opd/top1pct_grad_share", "grad_norm", "loss")
EARLY = 10  # "early": the first 10 OPD steps


def cell_name(student: str, warmup: bool, loss: str) -> str:
    return f"{student}_{'warmup' if warmup else 'no_warmup'}_{loss}"


def stage(out: Path, name: str, overrides: list[str]) -> None:
    command = ["stage", name, "--out", str(out), *overrides]
    print("$ s2dlab " + " ".join(command), flush=True)
    if s2dlab(command) != 0:
        raise SystemExit(f"s2dlab {' '.join(command)} failed")


def run_cell(out: Path, teacher_run: Path, student: str, warmup: bool, loss: str, overrides: list[str],
             warmup_from: Path | None) -> Path:
    from s2dlab.core.config import load_config

    cell = out / cell_name(student, warmup, loss)
    opd_stage = "full.opd" if warmup else "no_warmup.opd"
    if (cell / "run.json").exists() and open_run(cell).finished(opd_stage):
        return cell
    cfg = load_config("tiny", overrides=overrides)
    if not (cell / "run.json").exists():
        shutil.rmtree(cell, ignore_errors=True)
        stages = ["base_teacher", TEACHER] + (["full.fkl_warmup", "base_student"] if warmup_from else [])
        copy_stages(warmup_from or teacher_run, cell, stages, config=cfg.to_dict(), seed=cfg.seed)
    if warmup:
        stage(cell, "full.fkl_warmup", overrides)
    stage(cell, opd_stage, overrides)
    return cell


def cell_record(cell: Path, student: str, warmup: bool, loss: str) -> dict:
    run = open_run(cell)
    summary = read_summary(run)
    opd_stage = "full.opd" if warmup else "no_warmup.opd"
    offset = run.stage("full.fkl_warmup").steps if warmup else 0
    train = [m for m in run.metrics(opd_stage) if "loss" in m]
    probes = [m for m in run.metrics(opd_stage) if "probe/accuracy" in m]
    if warmup:  # the warmup's own probes, so the accuracy curve starts at the base student
        probes = [m for m in run.metrics("full.fkl_warmup") if "probe/accuracy" in m] + \
                 [{**m, "step": m["step"] + offset} for m in probes if m["step"] > 0]
    series = {"step": [m["step"] + offset for m in train], **{k: [m.get(k) for m in train] for k in SERIES},
              "probe_step": [m["step"] for m in probes], "probe/accuracy": [m["probe/accuracy"] for m in probes]}

    def mean(key, rows):
        vals = [m[key] for m in rows if m.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    stages = summary["stages"]
    c2 = {"start": summary["c2"]["start"].get(TEACHER)}
    for p in summary["c2"]["pairs"]:
        c2[p["stage"]] = {k: p.get(k) for k in ("before", "after", "change")}
    return {
        "student": student, "warmup": warmup, "loss": loss, "run": str(cell), "opd_stage": opd_stage,
        "accuracy": {"base_student": stages["base_student"].get("accuracy"),
                     **({"full.fkl_warmup": stages["full.fkl_warmup"].get("accuracy")} if warmup else {}),
                     "final": stages[opd_stage].get("accuracy"),
                     "final_interval": (stages[opd_stage].get("interval") or {}).get("ci"),
                     "final_greedy": stages[opd_stage].get("greedy")},
        "c2": c2,
        "early": {k: mean(k, train[:EARLY]) for k in SERIES},
        "all": {k: mean(k, train) for k in SERIES},
        "spikes": grad_norm_spikes(series["grad_norm"]),
        "series": series,
    }


def measure_levels(out: Path, teacher_run: Path, levels: list[str], seed: int, n: int = 200) -> list[dict]:
    """`s2dlab check` of every shipped student level against the RL teacher (see the module docstring)."""
    from s2dlab.core import data
    from s2dlab.core.config import load_config
    from s2dlab.workflow.stages.base import SHIPPED, STUDENT_LAYOUTS, shipped_name

    eval_file = out / "eval.jsonl"
    if not eval_file.exists():
        data.write_jsonl(eval_file, [{"id": r["id"], "prompt": r["prompt"], "answer": r["answer"]}
                                     for r in data.task_splits(load_config("tiny"))["eval"]])
    rows = []
    for level in levels:
        check_out = out / f"check_{level}"
        student = SHIPPED / shipped_name("student", level)
        if not (check_out / "check.json").exists():
            command = ["check", "--teacher", str(teacher_run / TEACHER / "model"), "--student", str(student),
                       "--data", str(eval_file), "--n", str(n), "--samples", "4", "--max-new-tokens", "48",
                       "--seed", str(seed), "--out", str(check_out)]
            print("$ s2dlab " + " ".join(command), flush=True)
            if s2dlab(command) != 0:
                raise SystemExit(f"s2dlab {' '.join(command)} failed")
        check = json.loads((check_out / "check.json").read_text())
        summary = read_summary(check_out)
        rows.append({"level": level, "layout": STUDENT_LAYOUTS[level], "student": str(student), "check": str(check_out),
                     "c2": summary["c2"]["start"].get("base_teacher"), "accuracy": check["accuracy"],
                     "c1_auroc": {k: summary["c1"]["teachers"]["base_teacher"].get(k)
                                  for k in ("auroc", "ci", "length_auroc")},
                     "shipped_eval_avg@4": json.loads((student / "eval.json").read_text())["accuracy"]})
    close = next((r["c2"]["mean"] for r in rows if r["level"] == "close"), None)
    for r in rows:
        r["c2_over_close"] = r["c2"]["mean"] / close if close else None
    return rows


def example(cell: Path, opd_stage: str) -> dict | None:
    """One probe problem before and after OPD in `cell`: the student's first rollout at the first and the last
    snapshot, and at the first line break (where the layouts part) the teacher's log-probabilities of its own
    favourites and of the characters the student wrote there, and the student's, before and after OPD."""
    import torch

    from s2dlab.core.generation import format_prompt
    from s2dlab.core.models import build_char_tokenizer, load_model
    from s2dlab.core.runs import read_rollout_file

    run = open_run(cell)
    steps = run.rollout_steps(opd_stage)
    if not steps:
        return None
    rows = [read_rollout_file(run.rollout_path(opd_stage, k), ["policy", "prompt_id", "prompt", "completion"])
            .query("policy == 'student'").iloc[0].to_dict() for k in (steps[0], steps[-1])]
    first, last = rows
    if "\n" not in first["completion"]:
        return None  # one line only (a barely trained student): no line break where the layouts part
    cut = first["completion"].index("\n") + 1
    prefix = first["completion"][:cut]
    tok = build_char_tokenizer()
    teacher = load_model(run.model_dir(TEACHER)).eval()
    ids = tok(format_prompt(tok, first["prompt"]) + prefix, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(teacher(ids).logits[0, -1, :len(tok)].float(), -1)
    top = logp.topk(3)
    favourite = int(top.indices[0])
    student_logp = {}
    for when, stage_name in (("before", "base_student"), ("after", opd_stage)):
        with torch.no_grad():
            s_logp = torch.log_softmax(load_model(run.model_dir(stage_name)).eval()(ids).logits[0, -1, :len(tok)].float(), -1)
        student_logp[when] = {c: float(s_logp[tok.convert_tokens_to_ids(c)])
                              for c in dict.fromkeys([tok.convert_ids_to_tokens(favourite), "+", "-"])}
    wrote = {r["completion"][cut] for r in rows if len(r["completion"]) > cut and r["completion"][:cut] == prefix}
    return {"cell": cell.name, "stage": opd_stage, "problem": first["prompt"], "steps": [steps[0], steps[-1]],
            "before": first["completion"], "after": last["completion"], "prefix": prefix,
            "teacher_top": [[tok.convert_ids_to_tokens(int(i)), float(v)] for v, i in zip(top.values, top.indices)],
            "teacher_logp_of_student_choice": {c: float(logp[tok.convert_tokens_to_ids(c)]) for c in sorted(wrote)},
            "student_logp": student_logp}


def figure(cells: list[dict]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [("opd/reverse_kl", "reverse KL on the step's own rollouts, nats/token (C2)", True),
              ("opd/implicit_reward_var", "variance of the implicit reward", True),
              ("opd/top1pct_loss_share", "share of the loss in the top 1% of tokens", False),
              ("opd/top1pct_grad_share", "top 1% of tokens' gradient norm / the whole", False),
              ("grad_norm", "gradient norm (before clipping)", True),
              ("probe/accuracy", "probe accuracy (16 problems x 4)", False)]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=[p[1] for p in panels])
    colors = {("close", True): "#1f77b4", ("close", False): "#7fb7e6", ("far", True): "#d62728",
              ("far", False): "#f4a3a4", ("middle", True): "#2ca02c", ("middle", False): "#98df8a"}
    for c in cells:
        name = f"{c['student']}, {'warmup + OPD' if c['warmup'] else 'OPD only'}, {c['loss']}"
        style = dict(color=colors.get((c["student"], c["warmup"]), "#555"),
                     dash="solid" if c["loss"] == "full_reverse_kl" else "dot", width=1.6)
        s = c["series"]
        for row, (key, _, _) in enumerate(panels, start=1):
            x = s["probe_step"] if key == "probe/accuracy" else s["step"]
            fig.add_trace(go.Scatter(x=x, y=s[key], mode="lines", name=name, legendgroup=name, line=style,
                                     showlegend=row == 1), row=row, col=1)
    for row, (_, _, log) in enumerate(panels, start=1):
        if log:
            fig.update_yaxes(type="log", row=row, col=1)
    fig.update_xaxes(title_text="student step of the arm (the warmup's 100 steps come first where it runs)",
                     row=len(panels), col=1)
    fig.update_layout(height=1500, width=1000, template="plotly_white", legend=dict(orientation="h", y=-0.06),
                      title="OPD from the close and the far student: the signal per step")
    return fig


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/c2_mechanism", help="folder of the cells' run folders (resumable)")
    p.add_argument("--students", default="close,far", help="base.student levels (default close,far)")
    p.add_argument("--losses", default="full_reverse_kl,sampled_token", help="opd.loss values")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=10, help="probe snapshot every N steps (default 10)")
    p.add_argument("--levels", default="close,middle,far", help="student levels `s2dlab check` measures (C2)")
    p.add_argument("--check-n", type=int, default=200, help="eval problems each level's check samples (x 4)")
    p.add_argument("--teacher-from", metavar="RUN", help=f"copy {TEACHER} from this run instead of training it")
    p.add_argument("--json", default="docs/results/c2_mechanism.json", help="where to write the results")
    p.add_argument("--html", help="write the figure as a self-contained HTML file")
    p.add_argument("--png", help="also write the figure as a PNG (needs kaleido and a Chromium)")
    p.add_argument("--figure-only", action="store_true", help="only draw the figure from an existing --json")
    p.add_argument("overrides", nargs="*", help="config overrides for every cell, e.g. opd.steps=50")
    args = p.parse_args(argv)
    if args.figure_only:
        return draw(json.loads(Path(args.json).read_text())["cells"], args.html, args.png)
    out = Path(args.out)
    students = [s for s in args.students.split(",") if s]
    losses = [s for s in args.losses.split(",") if s]
    common = [f"seed={args.seed}", "opd.grad_share=true", f"probe.every={args.every}", *args.overrides]
    t0 = time.time()
    teacher_run = out / "teacher"
    if args.teacher_from and not (teacher_run / "run.json").exists():
        copy_stages(args.teacher_from, teacher_run, ["base_teacher", TEACHER])
    elif not args.teacher_from:
        stage(teacher_run, TEACHER, common)
    levels = measure_levels(out, teacher_run, [s for s in args.levels.split(",") if s], args.seed,
                            args.check_n)
    for r in levels:
        print(f"C2 {r['level']}: {r['c2']['mean']:.3f} {r['c2']['ci']} nats/token ({r['c2_over_close']:.1f}x close)")
    cells = []
    for student in students:
        for warmup in (True, False):
            first = None
            for loss in losses:
                overrides = [*common, f"base.student={student}", f"opd.loss={loss}"]
                cell = run_cell(out, teacher_run, student, warmup, loss, overrides, first if warmup else None)
                first = first or cell
                cells.append(cell_record(cell, student, warmup, loss))
                print(f"{cell.name}: accuracy {cells[-1]['accuracy']}, early {cells[-1]['early']}", flush=True)
    result = {"command": "python scripts/c2_mechanism.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "seed": args.seed, "overrides": common, "teacher": TEACHER, "early_steps": EARLY,
              "wall_seconds": round(time.time() - t0), "levels": levels, "cells": cells,
              "example": example(out / cell_name(students[-1], False, losses[0]), "no_warmup.opd")}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return draw(cells, args.html, args.png)


def draw(cells: list[dict], html: str | None, png: str | None) -> int:
    fig = figure(cells)
    if html:
        fig.write_html(html, include_plotlyjs=True, full_html=True)
        print(f"figure written to {html}")
    if png:  # kaleido (pip install kaleido) drives a Chromium it finds, e.g. BROWSER_PATH=/usr/bin/chromium
        fig.write_image(png, scale=1)
        print(f"figure written to {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
