"""The workshop's offline install kit (scripts/make_install_kit.py) installs with no index, and the prebuilt run zips.

Slow tier: build a kit (pip download, with network: the package registry), then create a fresh virtual environment
and install the kit's source into it with `--no-index --find-links wheelhouse` and pip's configuration files
switched off (`PIP_CONFIG_FILE=os.devnull`, no PIP_* variables), so nothing but the wheelhouse can satisfy a
requirement. The editable install needs the build backend from the wheelhouse (the failure this kit exists to
prevent: "No matching distribution found for setuptools>=68"); on Linux torch must be the CPU build. Then the
pre-flight runs in that environment: two GRPO steps, READY.

Default tier: the prebuilt run's zip (scripts/make_tutorial_run.py) on a small run folder: what it keeps, what it
leaves out, and that it unzips into a run folder the run store opens.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1", **extra)
    return env


@pytest.mark.slow
def test_kit_installs_offline_in_a_fresh_venv_and_passes_the_preflight(tmp_path):
    kit = tmp_path / "kit"
    # torch from the indexes pip is configured with here (its CPU build); on a participant's Linux or Windows machine
    # the script's default adds PyTorch's CPU index instead
    build = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_install_kit.py"), "--out", str(kit),
                            "--torch-index", ""], capture_output=True, text=True, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheels = sorted(p.name for p in (kit / "wheelhouse").iterdir())
    assert any(n.startswith("setuptools-") for n in wheels), "the build backend is in the wheelhouse"
    assert not any(n.startswith(("nvidia_", "nvidia-")) for n in wheels), "no CUDA wheels"
    assert all(n.endswith(".whl") for n in wheels), [n for n in wheels if not n.endswith(".whl")]
    assert (kit / "INSTALL.txt").is_file()

    src = tmp_path / "src"
    if (kit / "s2dlab-src.zip").is_file():
        with zipfile.ZipFile(kit / "s2dlab-src.zip") as zf:
            zf.extractall(src)
        project = src / "s2dlab"
    else:  # not a git checkout: install this tree
        project = ROOT
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--find-links",
                              str(kit / "wheelhouse"), "-e", f"{project}[notebooks,app]"],
                             capture_output=True, text=True, timeout=3600, env=_clean_env(), cwd=tmp_path)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    probe = subprocess.run([str(python), "-c", "import torch, s2dlab, trl, gradio, jupyterlab, nbclient, jupytext; "
                            "print(torch.__version__, s2dlab.__file__)"], capture_output=True, text=True,
                           timeout=600, env=_clean_env(), cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr[-3000:]
    version, where = probe.stdout.split()
    assert version.startswith("2.13.0")
    if sys.platform.startswith("linux"):
        assert version.endswith("+cpu"), f"torch {version}: the CUDA build on Linux"
    assert Path(where).resolve().is_relative_to(project.resolve())
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(venv)], check=True, timeout=600,
                   env=_clean_env(), capture_output=True)
    preflight = subprocess.run([str(python), str(project / "notebooks" / "preflight.py"), "--threads", "1"],
                               capture_output=True, text=True, timeout=1800, env=_clean_env(), cwd=project)
    assert preflight.returncode == 0, preflight.stdout[-3000:] + preflight.stderr[-3000:]
    assert preflight.stdout.strip().splitlines()[-1].startswith("READY")


def test_tutorial_run_zip_keeps_what_readers_open(tmp_path):
    from s2dlab.core.runs import create_run, open_run

    make = _script("make_tutorial_run")
    run_dir = tmp_path / "runs" / "tutorial_tiny"
    run = create_run(run_dir, {"seed": 0}, 0)
    for stage in ("fkl_warmup", "raw_teacher.fkl_warmup"):
        (run_dir / stage / "model").mkdir(parents=True)
        (run_dir / stage / "model" / "model.safetensors").write_bytes(b"weights")
        (run_dir / stage / "teacher_cache.pt").write_bytes(b"cache")
        (run_dir / stage / "checkpoints" / "checkpoint-1").mkdir(parents=True)
        (run_dir / stage / "checkpoints" / "checkpoint-1" / "optimizer.pt").write_bytes(b"state")
    (run_dir / ".lock").write_text("held")
    target = tmp_path / "runs" / "tutorial_tiny.zip"
    make.make_zip(run.path, target)
    names = set(zipfile.ZipFile(target).namelist())
    assert "tutorial_tiny/run.json" in names
    assert "tutorial_tiny/fkl_warmup/teacher_cache.pt" in names, "notebook 02a reads the workflow warmup's cache"
    assert "tutorial_tiny/raw_teacher.fkl_warmup/teacher_cache.pt" not in names
    assert "tutorial_tiny/raw_teacher.fkl_warmup/model/model.safetensors" in names
    assert not any("checkpoints" in n or n.endswith("/.lock") for n in names)
    out = tmp_path / "laptop" / "runs"
    subprocess.run([sys.executable, "-m", "zipfile", "-e", str(target), str(out)], check=True)
    assert open_run(out / "tutorial_tiny").info["seed"] == 0


def test_tutorial_run_script_refuses_an_unfinished_run(tmp_path, capsys):
    from s2dlab.core.runs import create_run

    make = _script("make_tutorial_run")
    create_run(tmp_path / "tutorial_tiny", {}, 0)
    assert make.main(["--zip-only", "--out", str(tmp_path / "tutorial_tiny")]) == 1
    assert "not whole" in capsys.readouterr().err
    assert not (tmp_path / "tutorial_tiny.zip").exists()
