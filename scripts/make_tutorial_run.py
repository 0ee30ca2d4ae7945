"""Build the workshop's prebuilt tutorial run and zip it: one command, no network.

    python scripts/make_tutorial_run.py                  # about 11 minutes on 2 idle CPU cores
    python scripts/make_tutorial_run.py --zip-only       # zip an existing runs/tutorial_tiny again

What it does:
1. `s2dlab run --ablations --out runs/tutorial_tiny` on the tiny preset: every row of the paper's Table 2 and
   `gold_sft`, at the defaults of `s2dlab run`, from the base models the package ships. That is exactly the run
   the notebooks build (their settings are those of `s2dlab run`), ablations included, so with it in place every
   notebook only reads. Stages already finished in the folder are reused, so an interrupted build resumes.
   `HF_HUB_OFFLINE=1`: the tiny preset downloads nothing, and this makes sure of it.
2. A check that the run is whole: every stage of the ablation plan finished and evaluated, the summary written.
3. `runs/tutorial_tiny.zip` (about 60 MB): the run folder without the Trainer checkpoints (`checkpoints/`, training
   state that only a resumed stage reads) and without the ablation warmups' caches of teacher distributions
   (`teacher_cache.pt`; notebook 02a reads the workflow warmup's, which stays), with paths `tutorial_tiny/...`
   inside, so that on a participant's laptop, from the repository root,

       python -m zipfile -e tutorial_tiny.zip runs/

   puts it at `runs/tutorial_tiny`, where the notebooks look (the same command on Windows, macOS and Linux).

The facilitator runs this once per workshop (the zip is the same for every operating system) and hands the zip
round with the install kit (`scripts/make_install_kit.py`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_FOLDERS = ("checkpoints",)  # Trainer state of finished stages: a reader never opens it
# The warmups' caches of teacher distributions (tens of MB each) are training input; notebook 02a reads the
# workflow's own (`fkl_warmup/`), so only that one is kept.
KEPT_CACHES = ("fkl_warmup",)


def _skipped(rel: Path) -> bool:
    if any(part in SKIPPED_FOLDERS for part in rel.parts) or rel.name.startswith("."):
        return True
    return rel.name == "teacher_cache.pt" and rel.parts[0] not in KEPT_CACHES


def build(run_dir: Path, threads: int | None) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "s2dlab", "run", "--ablations", "--out", str(run_dir)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)


def check_whole(run_dir: Path) -> list[str]:
    """The stages of the ablation plan that are missing or not evaluated in `run_dir` (empty when whole)."""
    sys.path.insert(0, str(ROOT))
    from s2dlab.core.config import config_from_dict
    from s2dlab.core.runs import open_run
    from s2dlab.workflow import pipeline
    from s2dlab.workflow.stages.lifecycle import finished

    run = open_run(run_dir)
    cfg = config_from_dict(run.info["config"])
    steps, _ = pipeline.plan(cfg, ablations=True)
    missing = [s.name for s in steps if not finished(run, s.name) or run.eval(s.name) is None]
    if not (run.path / "summary.json").is_file():
        missing.append("summary.json")
    return missing


def make_zip(run_dir: Path, target: Path) -> int:
    """Write `target` holding `run_dir` as `<run_dir.name>/...`, without SKIPPED_FOLDERS; returns the file count."""
    tmp = target.with_name(f".{target.name}.tmp")
    n = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(run_dir.rglob("*")):
            rel = path.relative_to(run_dir)
            if not path.is_file() or _skipped(rel):
                continue
            zf.write(path, Path(run_dir.name, rel).as_posix())
            n += 1
    os.replace(tmp, target)  # a failed zip leaves the previous one in place
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build runs/tutorial_tiny with every ablation and zip it.")
    p.add_argument("--out", default=str(ROOT / "runs" / "tutorial_tiny"), help="run folder (default: runs/tutorial_tiny)")
    p.add_argument("--zip", dest="zip_path", default=None, help="zip file (default: the run folder + .zip)")
    p.add_argument("--zip-only", action="store_true", help="do not train; zip the run folder as it is")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the run (default: PyTorch's)")
    args = p.parse_args(argv)
    run_dir = Path(args.out).resolve()
    target = Path(args.zip_path) if args.zip_path else run_dir.with_suffix(".zip")
    if not args.zip_only:
        build(run_dir, args.threads)
    elif not (run_dir / "run.json").is_file():
        print(f"{run_dir}: not a run folder; drop --zip-only to build it", file=sys.stderr)
        return 2
    missing = check_whole(run_dir)
    if missing:
        print(f"{run_dir}: not whole, missing or not evaluated: {', '.join(missing)}; run this script without "
              "--zip-only to finish it (finished stages are reused)", file=sys.stderr)
        return 1
    n = make_zip(run_dir, target)
    print(f"wrote {target} ({n} files, {target.stat().st_size / 1e6:.1f} MB); on each laptop, from the repository "
          f"root: python -m zipfile -e {target.name} runs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
