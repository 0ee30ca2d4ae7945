"""The package installs whole: presets, shipped models and the dashboard are in the wheel; the core never imports
gradio; without gradio the dashboard commands say what to install."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *, cwd: Path, pythonpath: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_missing_preset_file_is_a_config_error(tmp_path, monkeypatch):
    from s2dlab.core import config

    monkeypatch.setattr(config, "PRESETS_DIR", tmp_path)
    with pytest.raises(config.ConfigError, match=r"preset file .*qwen3_paper\.yaml is missing"):
        config.load_config("qwen3_paper")


def test_core_never_imports_gradio(tmp_path):
    code = """
        import importlib, sys
        from pathlib import Path
        import s2dlab
        root = Path(s2dlab.__file__).parent
        names = sorted(".".join(("s2dlab", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                       for p in root.rglob("*.py") if "dashboard" not in p.parts and p.name != "__main__.py")
        for name in names:
            importlib.import_module(name)
        assert "s2dlab.views.viz.heatmap" in names and "s2dlab.cli" in names and "s2dlab.workflow.stages.opd" in names, names
        bad = sorted(m for m in sys.modules if m == "gradio" or m.startswith("gradio."))
        print("imported", len(names), "modules; gradio modules:", bad)
        sys.exit(1 if bad else 0)
    """
    out = run_python(code, cwd=tmp_path, pythonpath=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_commands_without_gradio_say_what_to_install(tmp_path):
    leftover = tmp_path / "site" / "gradio"  # what `pip uninstall gradio` can leave: gradio writes files there
    leftover.mkdir(parents=True)
    (leftover / "hash_seed.txt").write_text("0")
    missing = 'sys.modules["gradio"] = None  # as if gradio were not installed'
    # the folder alone imports as an empty namespace package
    namespace = ('import importlib.machinery, importlib.util; spec = importlib.machinery.ModuleSpec("gradio", None, '
                 f'is_package=True); spec.submodule_search_locations = [{str(leftover)!r}]; '
                 'sys.modules["gradio"] = importlib.util.module_from_spec(spec)')
    # --out under a file: should the check ever let `demo` through, it fails at once instead of training
    for setup, argv, expected in ((missing, ["app", str(tmp_path)], "the dashboard needs Gradio (import of gradio"),
                                  (missing, ["demo", "--out", "/dev/null/demo"], "the dashboard needs Gradio"),
                                  (namespace, ["demo", "--out", "/dev/null/demo"], "holds no installed Gradio")):
        code = f"import sys\n{setup}\nfrom s2dlab.cli import main\nsys.exit(main(sys.argv[1:]))"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        out = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr and expected in out.stderr, out.stderr
        assert out.stderr.startswith("s2dlab: ") and out.stderr.rstrip().endswith('pip install "s2dlab[app]"')
        assert "training" not in out.stdout  # `demo` says so before training anything


@pytest.mark.slow
def test_wheel_installs_whole(tmp_path):
    """Build the wheel offline from a copy of the sources, install it into a folder, and use it from elsewhere."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "s2dlab", src / "s2dlab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(wheels)], cwd=src, capture_output=True, text=True,
                           timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("s2dlab-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                              str(target), str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = f"""
        from pathlib import Path
        import s2dlab
        assert Path(s2dlab.__file__).resolve().is_relative_to(Path({str(target)!r}).resolve()), s2dlab.__file__
        from s2dlab.core.config import load_config
        assert load_config("qwen3_paper").models.teacher == "Qwen/Qwen3-8B", load_config("qwen3_paper").models
        assert load_config("qwen3_paper").models.student == "Qwen/Qwen3-1.7B"
        from s2dlab.core.models import load_model
        from s2dlab.workflow.stages.base import SHIPPED, shipped_info
        assert shipped_info()["teacher"]
        for role in ("teacher", "student"):
            model = load_model(SHIPPED / role, device="cpu")
            assert sum(p.numel() for p in model.parameters()) > 10_000
        import gradio as gr
        import s2dlab.views.dashboard
        demo = s2dlab.views.dashboard.build_demo(Path("no_runs_here"))
        assert isinstance(demo, gr.Blocks)
        print("wheel ok")
    """
    out = run_python(code, cwd=elsewhere, pythonpath=str(target))
    assert out.returncode == 0 and "wheel ok" in out.stdout, out.stdout + out.stderr
