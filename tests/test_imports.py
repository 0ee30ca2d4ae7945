"""Every `from s2dlab... import name` in the repository names something that exists, lazy imports inside functions
included: a function renamed in one module fails here, not when a user first runs the command that imports it."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("s2dlab", "app", "scripts", "bench", "notebooks", "tests")


def s2dlab_imports() -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every `from s2dlab... import name` (absolute, any depth in the file)."""
    found = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                        and node.module.split(".")[0] == "s2dlab":
                    found += [(str(path.relative_to(ROOT)), node.lineno, node.module, a.name) for a in node.names]
    return found


def missing(module: str, name: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        if "s2dlab" in str(err) and "gradio" not in str(err).lower():
            return f"module {module} does not import: {err}"
        return None  # an optional dependency that is not installed (vLLM); its own tests cover that
    if name == "*" or hasattr(mod, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return f"{module} has no {name}"
    return None


def test_the_scan_finds_lazy_imports():
    """The scan sees imports inside functions, where a removed name hides until its command runs."""
    found = {(f, m, n) for f, _, m, n in s2dlab_imports()}
    assert ("s2dlab/cli.py", "s2dlab.workflow.pipeline", "run_pipeline") in found  # inside cmd_run
    assert len(found) > 200


def test_the_check_catches_a_missing_name():
    assert missing("s2dlab.workflow.pipeline", "results_table_that_was_removed") == \
        "s2dlab.workflow.pipeline has no results_table_that_was_removed"
    assert missing("s2dlab.workflow.stages", "no_such_submodule") is not None
    assert missing("s2dlab.workflow.pipeline", "run_pipeline") is None


def test_every_s2dlab_import_resolves():
    broken = [f"{f}:{line}: from {m} import {n}: {why}" for f, line, m, n in s2dlab_imports()
              if (why := missing(m, n))]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", sorted(p.relative_to(ROOT).as_posix() for folder in ("scripts", "bench")
                                        for p in (ROOT / folder).glob("*.py")))
def test_scripts_and_benchmarks_answer_help(path):
    """Each script's command line parses (its imports at the top run too)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / path), "--help"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower(), proc.stdout + proc.stderr
