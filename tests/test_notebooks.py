"""The tutorial notebooks (notebooks/*.ipynb).

Default tier: committed notebooks carry no outputs, match their builder (notebooks/_build.py), open with the
preset cell, hold no library code, and notebooks/README.md lists every one of them.
Slow tier: every notebook runs top to bottom on the tiny preset in a fresh kernel, in order, sharing one
temporary run folder (S2DLAB_RUN), as a reader would run them; any error fails the test. The same check by hand:

    S2DLAB_RUN=/tmp/tutorial python -m pytest --nbmake notebooks/
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]*.ipynb"))
# Generous: each notebook targets under 5 minutes on 2 CPU cores; a busy CI machine may be several times slower.
CELL_TIMEOUT_S = 1800


def _ids(path: Path) -> str:
    return path.stem


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _builder():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_tutorial_notebook_is_there():
    names = [p.stem for p in NOTEBOOKS]
    assert names == ["00_quickstart", "01_teacher_grpo", "02a_forward_kl_warmup", "02b_on_policy_distillation",
                     "03_student_grpo", "04_workflow_vs_direct_grpo", "05_dense_rewards_token_by_token"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_notebook_has_no_outputs(path):
    nb = _load(path)
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs; rebuild with python notebooks/_build.py"
        assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


def test_notebooks_match_their_builder():
    build = _builder()
    assert sorted(build.NOTEBOOKS) == [p.stem for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        assert path.read_text(encoding="utf-8") == build.render(path.stem), (
            f"{path.name} differs from notebooks/_build.py: edit the builder and run python notebooks/_build.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_first_cell_picks_the_preset_and_the_run_folder(path):
    first = _load(path)["cells"][0]
    source = "".join(first["source"])
    assert first["cell_type"] == "code"
    assert 'PRESET = "tiny"  # "qwen3_paper" on a GPU box' in source
    assert "RUN_DIR" in source and "S2DLAB_RUN" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_a_thin_driver(path):
    nb = _load(path)
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert kinds.count("markdown") >= 4, f"{path.name}: a tutorial is markdown first"
    for source in _code_cells(nb):
        assert not re.search(r"^\s*(def|class) ", source, re.M), (
            f"{path.name}: functions and classes belong in the s2dlab package, not in a notebook:\n{source}")


def test_readme_lists_every_notebook():
    readme = (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\b(\d\d[a-z]?_[a-z0-9_]+)\.ipynb", readme))
    assert listed == {p.stem for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        row = next((line for line in readme.splitlines() if f"{path.stem}.ipynb" in line and line.startswith("|")),
                   None)
        assert row is not None, f"notebooks/README.md has no table row for {path.name}"
        assert re.search(r"\d+(\.\d+)?\s*min", row), f"the README row of {path.name} gives no runtime"


def test_workshop_covers_every_notebook():
    workshop = (NOTEBOOKS_DIR / "WORKSHOP.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert path.stem in workshop, f"WORKSHOP.md does not mention {path.stem}"
    assert "tests/data/fixture_run" in workshop


# --- slow tier: execute them ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tutorial_run(tmp_path_factory):
    """One run folder shared by the notebooks of this module, like runs/tutorial_tiny for a reader."""
    return tmp_path_factory.mktemp("tutorial") / "run"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_top_to_bottom(path, tutorial_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("S2DLAB_RUN", str(tutorial_run))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.time()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    print(f"{path.stem}: {time.time() - start:.0f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
