"""Build the workshop's offline install kit: every wheel the notebooks need, the source, the prebuilt run.

    python scripts/make_install_kit.py                     # kit/ for this machine's system and Python
    python scripts/make_install_kit.py --out D:/kit        # elsewhere (a USB stick)

Run it on a machine with network access, once per operating system and Python version in the room (wheels are
built for one platform and one Python: a kit made on Linux with Python 3.11 installs on Linux with Python 3.11).
It writes:

- `wheelhouse/`: `pip download` of the project's dependencies with the `notebooks` and `app` extras, plus the
  build backend (`setuptools>=68`, `wheel`) that `pip install -e .` needs: without it an offline editable install
  stops at "No matching distribution found for setuptools>=68". On Linux and Windows torch comes from PyTorch's
  CPU index (`--torch-index`): PyPI's Linux wheel of torch 2.13.0 is the CUDA build, several GB with its nvidia-*
  wheels. The CPU build's version, `2.13.0+cpu`, sorts above `2.13.0`, so pip picks it and nothing pulls CUDA.
  macOS wheels of torch are CPU builds already (Apple silicon only: torch 2.13.0 has no Intel-Mac wheel).
- `s2dlab-src.zip`: the repository's committed files (`git archive HEAD`), when this is a git checkout.
- `tutorial_tiny.zip`: the prebuilt tutorial run, when `runs/tutorial_tiny.zip` exists
  (`python scripts/make_tutorial_run.py` makes it).
- `INSTALL.txt`: the commands for a participant, offline, on this kit's system.

tests/test_install_kit.py (slow tier) builds a kit and installs it into a fresh virtual environment with
`--no-index`, with pip's configuration files switched off, then runs the pre-flight.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = "notebooks,app"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BUILD = ["setuptools>=68", "wheel"]  # the build backend of pyproject.toml, for `pip install -e .` offline


def default_torch_index() -> str:
    """PyTorch's CPU index on Linux and Windows; none on macOS, whose PyPI wheels are CPU builds."""
    return "" if sys.platform == "darwin" else CPU_INDEX


def download(wheelhouse: Path, torch_index: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--dest", str(wheelhouse), f"{ROOT}[{EXTRAS}]", *BUILD]
    if torch_index:
        cmd += ["--extra-index-url", torch_index]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    for p in wheelhouse.iterdir():  # pip download also saves the project itself; the kit ships it as source
        if p.name.lower().startswith("s2dlab-") and not p.name.endswith(".whl"):
            p.unlink()
    sdists = sorted(p.name for p in wheelhouse.iterdir() if not p.name.endswith(".whl"))
    if sdists:  # source-only packages: build their wheels here, so a laptop without compilers installs them
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--find-links", str(wheelhouse),
               "--wheel-dir", str(wheelhouse), *[str(wheelhouse / n) for n in sdists]]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        for n in sdists:
            (wheelhouse / n).unlink()
    cuda = sorted(p.name for p in wheelhouse.iterdir() if p.name.startswith(("nvidia_", "nvidia-", "triton-")))
    if cuda:
        raise SystemExit(f"the wheelhouse pulled CUDA wheels ({', '.join(cuda[:3])}...): torch came from PyPI's CUDA "
                         f"build; pass --torch-index {CPU_INDEX}")


def source_zip(target: Path) -> bool:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        return False
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=zip", "--prefix=s2dlab/", "-o", str(target), "HEAD"],
                   check=True)
    return True


def install_text(has_source: bool, has_run: bool) -> str:
    windows = sys.platform == "win32"
    activate = ".venv\\Scripts\\Activate.ps1   (cmd: .venv\\Scripts\\activate.bat)" if windows else ". .venv/bin/activate"
    py = "py -3.11" if windows else "python3"
    lines = [
        f"s2dlab offline install kit: {platform.system()} {platform.machine()}, Python "
        f"{sys.version_info.major}.{sys.version_info.minor} (use this kit only on that system and Python version)",
        "",
        "From the folder that holds this file, with no network:",
        "",
    ]
    if has_source:
        lines += ["    python -m zipfile -e s2dlab-src.zip .", ""]
    lines += [
        "    cd s2dlab",
        f"    {py} -m venv .venv",
        f"    {activate}",
        f"    python -m pip install --no-index --find-links ../wheelhouse -e \".[{EXTRAS}]\"",
    ]
    if has_run:
        lines += ["    python -m zipfile -e ../tutorial_tiny.zip runs/"]
    lines += [
        "    python notebooks/preflight.py",
        "",
        "The last line prints READY (about a minute) or the one thing to fix. notebooks/WORKSHOP.md has the rest,",
        "including what to do when PowerShell refuses Activate.ps1 or `python` opens the Microsoft Store.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the offline install kit for this system and Python version.")
    p.add_argument("--out", default=str(ROOT / "kit"), help="kit folder (default: kit/ at the repository root)")
    p.add_argument("--torch-index", default=None,
                   help=f"extra index for torch's CPU build (default: {CPU_INDEX} on Linux and Windows, none on "
                        "macOS; an empty string uses pip's configured indexes only)")
    p.add_argument("--no-source", action="store_true", help="do not put the repository's source in the kit")
    args = p.parse_args(argv)
    out = Path(args.out)
    wheelhouse = out / "wheelhouse"
    wheelhouse.mkdir(parents=True, exist_ok=True)
    torch_index = default_torch_index() if args.torch_index is None else args.torch_index
    download(wheelhouse, torch_index)
    has_source = not args.no_source and source_zip(out / "s2dlab-src.zip")
    run_zip = ROOT / "runs" / "tutorial_tiny.zip"
    has_run = run_zip.is_file()
    if has_run:
        shutil.copy2(run_zip, out / "tutorial_tiny.zip")
    (out / "INSTALL.txt").write_text(install_text(has_source, has_run), encoding="utf-8")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    wheels = len(list(wheelhouse.glob("*.whl")))
    print(f"wrote {out}: {wheels} wheels, {size:.0f} MB" + ("" if has_source else "; no source zip")
          + ("" if has_run else "; no prebuilt run (python scripts/make_tutorial_run.py makes one)"))
    print((out / "INSTALL.txt").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
