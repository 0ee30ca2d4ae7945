"""`s2dlab` command line: run | stage | eval | score | lens | copy | report | app | demo.

    s2dlab run [--preset tiny] [--config FILE] [--out DIR] [--ablations | --arms A,B] [--seeds N] [key=value ...]
    s2dlab stage NAME --out DIR [--preset tiny] [key=value ...]
    s2dlab eval RUN [--stage NAME] [--force] [key=value ...]
    s2dlab score RUN [--stage NAME] [--json]
    s2dlab lens RUN
    s2dlab copy SRC DST [STAGE ...]
    s2dlab report RUN [--html FILE]
    s2dlab app [RUNS_ROOT] [--port N] [--host 127.0.0.1] [--share]
    s2dlab demo [--out runs/demo] [--port N]
    s2dlab check --teacher T --student S --data FILE|SET [--n N] [--samples K] [--out DIR]
    s2dlab map --out DIR [--seeds N] [--teachers T,...] [--students S,...] [--html FILE] [key=value ...]

Config problems (unknown key, wrong type, bad value) print one line and exit with status 2, no traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from s2dlab.core.config import PRESETS, ConfigError, load_config, to_yaml
from s2dlab.core.errors import S2DLabError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny", choices=PRESETS, help="config preset (default: tiny, CPU)")
    p.add_argument("--config", metavar="FILE", help="YAML file of overrides, applied after the preset")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, e.g. opd.learning_rate=1e-3 seed=2 eval.n_samples=8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s2dlab", description="Sparse-to-dense reward lab: GRPO teacher -> forward-KL warmup -> on-policy "
                                   "distillation -> student GRPO, against cold GRPO.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the four-stage workflow and cold GRPO (and every ablation row), evaluated",
                       description="Run base -> teacher_grpo -> fkl_warmup -> opd -> student_grpo and cold_grpo, "
                                   "evaluate every checkpoint, print the arms with intervals and write summary.json. "
                                   "Rerunning the same --out resumes.")
    _add_config_args(p)
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<name>)")
    p.add_argument("--ablations", action="store_true", help="every row of the paper's Table 2 (and gold_sft)")
    p.add_argument("--arms", metavar="A,B,...", help="only these arms (e.g. bridge,bridge_no_warmup,cold_grpo) and "
                                                    "the stages they need; s2dlab.workflow.arms.ARMS lists them")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="repeat with seeds seed..seed+N-1, report mean ± sd")
    _add_retrain_arg(p)

    p = sub.add_parser("stage", help="one stage into a run folder",
                       description="Run one stage; the stages it starts from must be in the run folder already "
                                   "(the shipped tiny base models are put there on demand).")
    p.add_argument("name", help="stage folder to write: base, teacher_grpo, fkl_warmup, opd, student_grpo, cold_grpo, "
                                "or an ablation row's stage (replay, full.opd, raw_teacher.opd, ...)")
    _add_config_args(p)
    p.add_argument("--out", metavar="DIR", required=True, help="run folder")
    _add_retrain_arg(p)

    p = sub.add_parser("eval", help="avg@k / pass@k of a run's checkpoints",
                       description="Evaluate every finished stage of a run (or one with --stage) and write eval.json.")
    p.add_argument("run", help="run folder")
    p.add_argument("--stage", help="only this stage")
    p.add_argument("--force", action="store_true", help="re-evaluate even if eval.json matches the eval config")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="eval.* overrides, e.g. eval.n_samples=8 (a run keeps one eval config: with --retrain)")
    _add_retrain_arg(p)

    p = sub.add_parser("score", help="the arms, the paper's predictions, C1/C2 and the token quadrants of a run",
                       description="Print a run's summary: the arms with 95% intervals, the paper's predictions, "
                                   "C1 (is the teacher reward-shaped?), C2 (is the teacher close?) and where the "
                                   "|implicit reward| sits (student confident x teacher agrees).")
    p.add_argument("run", help="run folder")
    p.add_argument("--stage", default="opd", help="stage whose last snapshot's token quadrants to print (default: opd)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = sub.add_parser("lens", help="the token lens: re-score the first probe snapshot with every checkpoint pair",
                       description="Re-score the rollouts of a run's first probe snapshot with every saved (teacher, "
                                   "student) checkpoint pair and write lens/lens.parquet and lens/lens.json, which the "
                                   "dashboard's Token lens tab reads (s2dlab.instruments.lens).")
    p.add_argument("run", help="run folder")
    p.add_argument("--replace", action="store_true",
                   help="replace an existing lens even when the new one has fewer pairs (checkpoints since deleted)")

    p = sub.add_parser("copy", help="copy finished stages of a run into a new run folder (works on every OS)",
                       description="Copy finished stages (their models, metrics, snapshots, evals) from SRC into a new "
                                   "run folder DST, to try a variation of a later stage without training the earlier "
                                   "ones again. DST must not exist yet.")
    p.add_argument("src", help="run folder to copy from")
    p.add_argument("dst", help="new run folder")
    p.add_argument("stages", nargs="*", metavar="STAGE", help="stages to copy (default: every finished stage)")

    p = sub.add_parser("report", help="the paper-style table and figure of a run (or of a folder of seeds)",
                       description="Print the arms as a Markdown table (accuracy with 95% intervals, labels, student "
                                   "and teacher compute) and the paper's predictions; --html writes the figure.")
    p.add_argument("run", help="run folder (or a folder of seed_<k> runs)")
    p.add_argument("--html", metavar="FILE", help="also write the accuracy-by-arm figure as a self-contained HTML file")

    p = sub.add_parser("app", help="open the Gradio dashboard on a runs folder",
                       description="Serve the dashboard (per-token implicit rewards, KL, rollouts, stages) on "
                                   "127.0.0.1. Reads only inside RUNS_ROOT.")
    p.add_argument("runs_root", nargs="?", default="runs", help="folder holding runs (default: runs)")
    _add_serve_args(p)

    p = sub.add_parser("demo", help="run the tiny workflow (or reuse a finished one) and open the dashboard on it",
                       description="The tiny preset end to end into --out (reused when already finished), then "
                                   "the dashboard on it.")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="run folder (default: runs/demo)")
    p.add_argument("--no-app", action="store_true", help="only run the workflow; do not start the dashboard")
    _add_serve_args(p)
    _add_check_parser(sub)
    _add_map_parser(sub)
    return parser


RULE = ("A run folder keeps the config it was made with: the same --out with other key=value settings stops and "
        "names the keys that differ; use a new --out, or --retrain to retrain the stages they touch and everything "
        "after them.")


def _add_retrain_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--retrain", action="store_true",
                   help="the folder was made with another config: retrain the stages the changed keys touch and "
                        "everything after them (their models, metrics, snapshots and evals are replaced), and "
                        "keep the new config. " + RULE.split(": ")[0] + ".")


def _add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free one)")
    p.add_argument("--share", action="store_true", help="also create a public Gradio share link")
    p.add_argument("--open", action="store_true", help="open a browser tab")


def _config(args) -> object:
    return load_config(args.preset, args.config, args.overrides)


def cmd_run(args) -> int:
    cfg = _config(args)  # before the heavy imports, so a config error answers at once
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    if args.arms:  # a run of only these arms: `ablations` carries their names (s2dlab.workflow.pipeline.plan)
        from s2dlab.workflow.pipeline import select_arms

        args.ablations = select_arms(args.arms)
    from s2dlab.workflow.pipeline import run_pipeline

    out = Path(args.out or Path("runs") / cfg.name)
    summary = run_pipeline(cfg, out, ablations=args.ablations, seeds=args.seeds, retrain=args.retrain)
    if not summary:  # another process of an `accelerate launch`: the main one reports
        return 0
    print_results(summary, cfg, out)
    return 0


def print_results(summary: dict, cfg, out: Path) -> None:
    """What `s2dlab run` and `s2dlab demo` print at the end: the arms, the paper's predictions, C1 and C2."""
    from s2dlab.workflow.summary import arms_table, claims_text

    seeds = summary.get("seeds")
    which = f"mean over {len(seeds)} seeds" if seeds else f"seed {summary.get('seed', cfg.seed)}"
    print(f"\nresults ({cfg.eval.sets[0]} eval, {which}):")
    print(arms_table(summary))
    if summary.get("claims"):
        print("\nthe paper's predictions (difference of avg@k, 95% CI):")
        print(claims_text(summary))
    for key in ("c1", "c2"):
        if summary.get(key, {}).get("verdict"):
            print("\n" + summary[key]["verdict"])
    print(f"\nwritten to {out}/summary.json; open the dashboard with: s2dlab app {out.parent}")


def cmd_stage(args) -> int:
    from s2dlab.workflow.pipeline import find_step, stage_into
    from s2dlab.workflow.summary import stage_line

    cfg = _config(args)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    step = find_step(cfg, args.name)  # an unknown name answers before any work
    run, names = stage_into(cfg, args.out, step, retrain=args.retrain)
    for name in names:
        print(stage_line(run, name))
    return 0


def cmd_eval(args) -> int:
    from s2dlab.core.config import config_from_dict, parse_overrides, set_key
    from s2dlab.core.runs import open_run, run_lock
    from s2dlab.workflow.evaluate import evaluate_stage
    from s2dlab.workflow.pipeline import open_for, preflight
    from s2dlab.workflow.stages.lifecycle import finished, offline_defaults
    from s2dlab.workflow.summary import write_summary

    run = open_run(args.run)
    cfg = config_from_dict(run.info["config"])
    for key, value in parse_overrides(args.overrides).items():
        if not key.startswith("eval."):
            raise ConfigError(f"s2dlab eval takes eval.* settings only, not {key}; to change {key}, run the "
                              f"stages again: s2dlab run --out {run.path} {key}=... --retrain")
        set_key(cfg, key, value)
    cfg.validate()
    offline_defaults()
    preflight(cfg)  # a bad eval data file answers before --retrain removes any eval.json
    place = f"a copy (s2dlab copy {run.path} NEW, then s2dlab eval NEW ... --retrain)"
    open_for(cfg, run.path, retrain=args.retrain, new_place=place, check_only=True)
    with run_lock(run.path):
        run = open_for(cfg, run.path, retrain=args.retrain, new_place=place)
        done = [s for s in run.stages() if finished(run, s)]
        if args.stage and args.stage not in done:
            raise ConfigError(f"stage {args.stage!r} has no finished model in {run.path}; finished stages: "
                              f"{', '.join(done) or 'none'}")
        k = cfg.eval.n_samples
        for stage in [args.stage] if args.stage else done:
            res = evaluate_stage(cfg, run, stage, force=args.force)
            for name, m in res["sets"].items():
                greedy = f", greedy {m['greedy']:.1%}" if "greedy" in m else ""
                print(f"{stage:<28} {name:<14} avg@{k} {m[f'avg@{k}']:.1%}, pass@{k} {m[f'pass@{k}']:.1%}{greedy}")
        write_summary(cfg, run)  # the arms and their intervals read the evaluations just written
    return 0


def cmd_score(args) -> int:
    from s2dlab.core.runs import open_run
    from s2dlab.workflow.summary import arms_table, claims_text, read_summary

    run = open_run(args.run)
    summary = read_summary(run)
    if args.json:
        print(json.dumps({k: summary.get(k) for k in ("c1", "c2", "claims", "arms")}, indent=2, default=str))
        return 0
    print(arms_table(summary))
    if summary.get("claims"):
        print("\nthe paper's predictions (difference of avg@k, 95% CI):\n" + claims_text(summary))
    for seed in summary.get("per_seed", [summary]):
        prefix = f"seed {seed['seed']}: " if "per_seed" in summary else ""
        for key in ("c1", "c2"):
            print("\n" + prefix + seed.get(key, {}).get("verdict", f"{key} not measured"))
    stage = summary.get("stages", {}).get(args.stage)
    if stage and stage.get("quadrants"):
        q = stage["quadrants"]
        print(f"\nWhere the |implicit reward| sits ({args.stage}, last snapshot; the student is *confident* when its "
              f"top token has p >= {q['confident_prob']}, the teacher *agrees* when its top token is the same):")
        for name, m in q["quadrants"].items():
            share = "-" if m["abs_reward_share"] is None else f"{m['abs_reward_share']:6.1%}"
            mean = "-" if m["mean_implicit_reward"] is None else f"{m['mean_implicit_reward']:+.3f}"
            print(f"  {name:<20} {m['token_share']:6.1%} of tokens, {share} of |implicit reward|, mean {mean}")
    return 0


def cmd_lens(args) -> int:
    from s2dlab.core.runs import open_run, run_lock
    from s2dlab.instruments.lens import compute_lens
    from s2dlab.workflow.stages.lifecycle import offline_defaults

    offline_defaults()
    run = open_run(args.run)
    with run_lock(run.path):
        index = compute_lens(run, replace=args.replace)
    print(f"lens: {len(index['rollouts'])} rollouts x {len(index['pairs'])} checkpoint pairs -> "
          f"{Path(args.run) / 'lens'}")
    return 0


def cmd_copy(args) -> int:
    from s2dlab.tutorial import copy_stages

    run = copy_stages(args.src, args.dst, args.stages or None)
    print(f"copied {', '.join(run.info['copied_from']['stages'])} into {run.path}")
    return 0


def cmd_report(args) -> int:
    from s2dlab.views.report import report

    print(report(args.run, html=args.html))
    if args.html:
        print(f"\nfigure written to {args.html}")
    return 0


def _load_app():
    """The dashboard package; without Gradio it raises DashboardNotInstalledError (one line: what to install)."""
    import importlib

    return importlib.import_module("s2dlab.views.dashboard")


def _serve(runs_root, args) -> int:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    argv = [str(runs_root), "--host", args.host]
    if args.port is not None:
        argv += ["--port", str(args.port)]
    if args.share:
        argv.append("--share")
    if args.open:
        argv.append("--open")
    return _load_app().main(argv) or 0


def cmd_app(args) -> int:
    from s2dlab.core.env import check_address

    check_address(args.host, args.port)
    return _serve(args.runs_root, args)


def cmd_demo(args) -> int:
    if not args.no_app:  # before minutes of training: a bad address, or no Gradio, answers now
        from s2dlab.core.env import check_address

        check_address(args.host, args.port)
        _load_app()
    from s2dlab.workflow.pipeline import run_pipeline

    cfg = load_config("tiny")
    out = Path(args.out)
    # A finished run is resumed like any other: every stage is skipped, the summary is read back, and the same
    # table as a fresh run's is printed.
    fresh = not (out / "summary.json").exists()
    print(f"{'training the tiny workflow into' if fresh else 'resuming the run in'} {out} "
          f"({'a few minutes on a laptop CPU' if fresh else 'finished stages are skipped'})")
    summary = run_pipeline(cfg, out)
    print_results(summary, cfg, out)
    if args.no_app:
        return 0
    return _serve(out.parent if out.parent != Path("") else Path("."), args)


COMMANDS = {"run": cmd_run, "stage": cmd_stage, "eval": cmd_eval, "score": cmd_score, "lens": cmd_lens,
            "copy": cmd_copy, "report": cmd_report, "app": cmd_app, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills the `overrides` positional at its first chance, so `key=value`s after an option
    # (`stage opd --out DIR opd.steps=5`) arrive here as leftovers: take them as overrides too.
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"s2dlab: config error: {err}", file=sys.stderr)
        return 2
    except S2DLabError as err:
        # A mistake the user can fix (s2dlab.core.errors): one line, no traceback. Anything else is a bug.
        print(f"s2dlab: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        # A path the user gave cannot be written or used (a read-only folder, a file where a folder belongs, a full
        # disk): one line naming it. Other OSErrors are bugs and keep their traceback.
        if err.errno not in _PATH_ERRNOS:
            raise
        where = err.filename or "a path"
        print(f"s2dlab: cannot use {where}: {err.strerror or err}; give a folder or file you can write "
              f"(check --out / --html / the run folder)", file=sys.stderr)
        return 2


_PATH_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOSPC,
                errno.EDQUOT}


# --- s2dlab check --------------------------------------------------------------------------------------------------


def _add_check_parser(sub) -> None:
    p = sub.add_parser("check", help="pre-flight of a teacher/student pair: tokenizers, self-check, C1/C2 estimates",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=CHECK_DESCRIPTION)
    p.add_argument("--teacher", required=True, metavar="T", help="hub id, save_pretrained folder or .gguf file")
    p.add_argument("--student", required=True, metavar="S", help="hub id, save_pretrained folder or .gguf file")
    p.add_argument("--data", required=True, metavar="FILE|SET",
                   help='JSONL of {"prompt"|"problem"|"question", "answer"} lines, or an eval set name '
                        "(math500, gsm8k, aime24, aime25, amc23: hub or cache)")
    p.add_argument("--n", type=int, default=16, metavar="N", help="problems, the first N of the data (default 16)")
    p.add_argument("--samples", type=int, default=4, metavar="K", help="student rollouts per problem (default 4)")
    p.add_argument("--teacher-samples", type=int, default=1, metavar="K",
                   help="teacher rollouts per problem (default 1; 0 skips the teacher's accuracy)")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="L", help="completion budget (default 256)")
    p.add_argument("--out", default="runs/check", metavar="DIR",
                   help="run folder to write (default runs/check; a previous check there is replaced)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0: on-policy)")
    p.add_argument("--thinking", action="store_true", help="render the chat template with enable_thinking=True "
                                                           "(default False, the paper's non-thinking mode)")
    p.add_argument("--prompt-suffix", default="", metavar="TEXT", help="appended to every problem")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default float32; bfloat16 on a GPU)")
    p.add_argument("--batch-size", type=int, default=16, metavar="B", help="sequences per generate/score call")
    p.add_argument("--json", action="store_true", help="print check.json instead of the table")


CHECK_DESCRIPTION = """\
Before any GPU hour: sample --samples student rollouts and --teacher-samples teacher rollouts of each of the first
--n problems, score every token, and print one table: the tokenizers beyond their vocabulary (eos/bos/pad ids, the
two chat templates rendered on one conversation and diffed, the thinking flag, template and special tokens whose
implicit reward is an outlier), a self-check (the teacher against itself must score exactly 0), teacher and
student accuracy, C1 (AUROC of the summed implicit reward, length-only AUROC beside it) and C2 (per-token reverse
KL), all with 95% intervals, and a verdict that reads each through its interval. Writes an ordinary run folder
(s2dlab app / s2dlab score open it). Incompatible tokenizers stop with TokenizerMismatchError, nothing written.

Cost: the defaults sample up to 16 problems x (4 + 1) rollouts x 256 tokens = 20,480 tokens and score each with
both models. Measured on a 2-core CPU with SmolLM2-135M (GGUF) as the teacher and a 49.6M student: 8 minutes
(40 s loading, 4 min sampling, 3 min scoring); --n 4 --samples 2 --max-new-tokens 128: 1 min 40 s. The time
scales with problems x samples x tokens; tiny folder models take seconds.
"""


def cmd_check(args) -> int:
    from s2dlab.instruments.check import check_table, run_check
    from s2dlab.workflow.stages.lifecycle import offline_defaults
    from s2dlab.workflow.summary import read_summary

    offline_defaults()
    check = run_check(args.teacher, args.student, args.data, n=args.n, samples=args.samples,
                      teacher_samples=args.teacher_samples, max_new_tokens=args.max_new_tokens, out=args.out,
                      seed=args.seed, temperature=args.temperature, enable_thinking=args.thinking,
                      prompt_suffix=args.prompt_suffix, dtype=args.dtype, batch_size=args.batch_size,
                      progress=sys.stderr.isatty(), echo=print)
    if args.json:
        print(json.dumps(check, indent=2, default=str))
    else:
        print(check_table(check, read_summary(args.out), out=args.out))
    return 0 if check["self_check"]["passed"] else 1


COMMANDS["check"] = cmd_check



# --- s2dlab map ----------------------------------------------------------------------------------------------------


def _add_map_parser(sub) -> None:
    from s2dlab.workflow.cmap import DEFAULT_STUDENTS, DEFAULT_TEACHERS

    p = sub.add_parser("map", help="the C1 x C2 map: the bridge against cold GRPO for every teacher x student pair",
                       formatter_class=argparse.RawDescriptionHelpFormatter, description=MAP_DESCRIPTION)
    _add_config_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the map's run folders and map.json "
                                                                "(rerunning it resumes)")
    p.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds seed..seed+N-1 (intervals over problems "
                                                                     "and seeds)")
    p.add_argument("--teachers", default=",".join(DEFAULT_TEACHERS), metavar="T,...",
                   help="raw, rl@N (the RL teacher after N GRPO steps), sft, or save_pretrained folders "
                        f"(default {','.join(DEFAULT_TEACHERS)})")
    p.add_argument("--students", default=",".join(DEFAULT_STUDENTS), metavar="S,...",
                   help=f"close, middle, far (base.student), or save_pretrained folders "
                        f"(default {','.join(DEFAULT_STUDENTS)})")
    p.add_argument("--html", metavar="FILE", help="also write the map's figure as a self-contained HTML file")


MAP_DESCRIPTION = """\
For every teacher x student pair of a grid, train the bridge (forward-KL warmup, then OPD from that teacher) and
compare it with cold GRPO on the same student at the same student steps, sequences and labels; beside the gain
(bridge - cold GRPO, paired over eval problems and seeds) record C1 (the AUROC difference of the teacher's summed
implicit reward against the raw teacher's) and C2 (the per-token reverse KL from the student before the bridge),
each with its 95% interval, in DIR/map.json. Teachers and cold GRPO are trained once and shared by the cells;
every piece is an ordinary run folder (s2dlab score / s2dlab app open it), and a rerun skips what is finished.
The map's budgets (s2dlab.workflow.cmap.MAP_DEFAULTS, --print-config) keep one seed of the default grid under 20 minutes
on a 2-core CPU.
"""


def cmd_map(args) -> int:
    from s2dlab.workflow.cmap import (
        map_config,
        map_table,
        parse_students,
        parse_teachers,
        run_map,
    )

    teachers, students = parse_teachers(args.teachers), parse_students(args.students)
    cfg = map_config(teachers, args.preset, args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    if args.html:  # a path that cannot be written answers now, not after the training
        Path(args.html).parent.mkdir(parents=True, exist_ok=True)
    result = run_map(cfg, args.out, teachers, students, seeds=args.seeds, command=_map_command(args))
    print("\n" + map_table(result))
    if args.html:
        from s2dlab.views.viz.map import map_figure

        map_figure(result).write_html(args.html, include_plotlyjs=True, full_html=True)
        print(f"figure written to {args.html}")
    print(f"\nwritten to {Path(args.out) / 'map.json'}; every cell is a run folder: s2dlab app {args.out}")
    return 0


def _map_command(args) -> str:
    """The command that makes (or resumes) this map, as map.json records it."""
    import shlex

    parts = ["s2dlab", "map", "--out", args.out, "--seeds", str(args.seeds), "--teachers", args.teachers,
             "--students", args.students]
    if args.preset != "tiny":
        parts += ["--preset", args.preset]
    if args.config:
        parts += ["--config", args.config]
    return shlex.join(parts + list(args.overrides))


COMMANDS["map"] = cmd_map


if __name__ == "__main__":
    sys.exit(main())
