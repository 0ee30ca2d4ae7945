"""The tutorial notebooks: percent-format scripts (notebooks/NN_name.py) paired with notebooks (NN_name.ipynb).

Default tier: every script has its notebook and the other way round, the pairing is the one notebooks/jupytext.toml
declares, both sides hold the same cells (types and sources, as Jupytext reads them), committed notebooks carry no
outputs, notebooks hold no library code, and notebooks/README.md and WORKSHOP.md list every one of them.
Slow tier: every notebook runs top to bottom on the tiny preset in a fresh kernel, in order, sharing one
temporary run folder (S2DLAB_RUN), as a reader would run them; any error fails the test. The same check by hand:

    S2DLAB_RUN=/tmp/tutorial python -m pytest --nbmake notebooks/
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import jupytext
import pytest
from jupytext.config import (
    find_jupytext_configuration_file,
    load_jupytext_configuration_file,
)
from jupytext.formats import guess_format
from jupytext.paired_paths import paired_paths

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
SCRIPTS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]*.py"))
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]*.ipynb"))
EXPECTED = ["00_quickstart", "01_teacher_grpo", "02a_forward_kl_warmup", "02b_on_policy_distillation",
            "03_student_grpo", "04_bridge_vs_cold_grpo", "05_dense_rewards_token_by_token"]
SYNC_HINT = "run `jupytext --sync notebooks/[0-9]*.py` (notebooks/README.md, 'Editing the notebooks')"
# Generous: each notebook targets under 5 minutes on 2 CPU cores; a busy CI machine may be several times slower.
CELL_TIMEOUT_S = 1800


def _ids(path: Path) -> str:
    return path.name


def _cells(path: Path) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in jupytext.read(path).cells]


def test_every_tutorial_has_a_script_and_a_notebook():
    assert [p.stem for p in SCRIPTS] == EXPECTED, "the .py sources of the tutorials"
    assert [p.stem for p in NOTEBOOKS] == EXPECTED, f"a .py without its .ipynb, or the other way round: {SYNC_HINT}"
    others = sorted(p.name for p in NOTEBOOKS_DIR.glob("*.py") if p not in SCRIPTS and p.name != "preflight.py")
    assert not others, f"notebooks/ holds Python files that are not tutorials: {others}"


def test_jupytext_config_pairs_each_script_with_its_notebook():
    config_file = find_jupytext_configuration_file(str(NOTEBOOKS_DIR))
    assert config_file is not None and Path(config_file).parent == NOTEBOOKS_DIR
    config = load_jupytext_configuration_file(config_file)
    for path in SCRIPTS:
        formats = config.default_formats(str(path))
        assert formats == "ipynb,py:percent", f"{path.name}: Jupytext would pair it as {formats!r}"
        paired = {Path(p): fmt for p, fmt in paired_paths(str(path), "py:percent", formats)}
        assert paired == {path.with_suffix(".ipynb"): {"extension": ".ipynb"},
                          path: {"extension": ".py", "format_name": "percent"}}


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_script_is_in_percent_format(path):
    text = path.read_text(encoding="utf-8")
    assert guess_format(text, ".py")[0] == "percent", f"{path.name}: cells must be marked `# %%`"
    assert text.lstrip().startswith(("# ---\n# jupyter:", "# %%")), f"{path.name}: unexpected header"


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_script_and_notebook_hold_the_same_cells(path):
    notebook = path.with_suffix(".ipynb")
    script_cells, notebook_cells = _cells(path), _cells(notebook)
    assert [k for k, _ in script_cells] == [k for k, _ in notebook_cells], (
        f"{path.name} and {notebook.name} differ in their cells: {SYNC_HINT}")
    for i, (a, b) in enumerate(zip(script_cells, notebook_cells)):
        assert a == b, f"cell {i} of {path.name} differs from {notebook.name}: {SYNC_HINT}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_committed_notebook_has_no_outputs(path):
    nb = jupytext.read(path)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        hint = ("clear them (in Jupyter: Edit > Clear Outputs of All Cells, then save; or "
                f"`jupyter nbconvert --clear-output --inplace notebooks/{path.name}`)")
        assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs; {hint}"
        assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count; {hint}"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_first_cell_picks_the_preset_and_the_run_folder(path):
    kind, source = _cells(path)[0]
    assert kind == "code"
    assert 'PRESET = "tiny"  # "qwen3_paper" on a GPU box' in source
    assert "RUN_DIR" in source and "S2DLAB_RUN" in source


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_notebook_is_a_thin_driver(path):
    """No library code in a notebook: the only functions are the ones a "Your turn" cell asks the learner to write."""
    cells = _cells(path)
    kinds = [k for k, _ in cells]
    assert kinds.count("markdown") >= 4, f"{path.name}: a tutorial is markdown first"
    for kind, source in cells:
        if kind == "code" and not source.startswith("# Your turn"):
            assert not re.search(r"^\s*(def|class) ", source, re.M), (
                f"{path.name}: functions and classes belong in the s2dlab package, not in a notebook:\n{source}")


def test_readme_lists_every_notebook():
    readme = (NOTEBOOKS_DIR / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"\b(\d\d[a-z]?_[a-z0-9_]+)\.ipynb", readme))
    assert listed == set(EXPECTED)
    for name in EXPECTED:
        row = next((line for line in readme.splitlines() if f"{name}.ipynb" in line and line.startswith("|")), None)
        assert row is not None, f"notebooks/README.md has no table row for {name}.ipynb"
        assert re.search(r"\d+(\.\d+)?\s*min", row), f"the README row of {name} gives no runtime"


def test_workshop_covers_every_notebook():
    workshop = (NOTEBOOKS_DIR / "WORKSHOP.md").read_text(encoding="utf-8")
    for name in EXPECTED:
        assert name in workshop, f"WORKSHOP.md does not mention {name}"
    assert "tests/data/fixture_run" in workshop


# --- exercises: every "Your turn" cell has its check and its solution ------------------------------------------------

def _solve():
    import importlib.util

    spec = importlib.util.spec_from_file_location("solve", NOTEBOOKS_DIR / "solutions" / "solve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_exercises_have_a_check_and_a_solution(path):
    solve = _solve()
    cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
    exercises = [solve.exercise_id(c.source) for c in cells]
    ids = [e for e in exercises if e]
    assert len(ids) >= 2, f"{path.name}: a tutorial has at least two exercises, found {ids}"
    assert len(ids) == len(set(ids)), f"{path.name}: exercise ids repeat: {ids}"
    for i, ex in enumerate(exercises):
        if ex is None:
            continue
        assert ex.startswith(path.stem[:2]), f"{path.name}: exercise {ex} is numbered for another notebook"
        assert "..." in cells[i].source, f"{path.name}: exercise {ex} holds no placeholder `...` for the learner"
        assert solve.check_id(cells[i + 1].source) == ex, f"{path.name}: exercise {ex} is not followed by its check"
        # the check itself is s2dlab.exercises.check_<id> (tests/test_exercises.py: its arguments and its table)
        assert f"exercises.check_{ex.replace('.', '_')}(" in cells[i + 1].source
    solutions = solve.solution_cells(path.stem)
    assert set(solutions) == set(ids), (f"{path.name}: exercises {sorted(set(ids) - set(solutions))} lack a solution, "
                                        f"solutions {sorted(set(solutions) - set(ids))} match no exercise")
    solved = solve.solved_notebook(path)
    assert not any("..." in c.source for c in solved.cells if c.cell_type == "code" and solve.exercise_id(c.source)
                   and "= ..." in c.source), f"{path.name}: a solution still assigns the placeholder"


def test_answer_key_covers_every_exercise():
    solve = _solve()
    answers = (NOTEBOOKS_DIR / "ANSWERS.md").read_text(encoding="utf-8")
    for path in SCRIPTS:
        for c in jupytext.read(path).cells:
            ex = solve.exercise_id(c.source) if c.cell_type == "code" else None
            if ex:
                assert ex in answers, f"ANSWERS.md has no answer for exercise {ex} of {path.name}"


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
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    # the learner's placeholders reach their checks, which say "skipped" rather than failing or passing
    solve = _solve()
    text = "\n".join(o.get("text", "") for c in code for o in c.get("outputs", []) if o.output_type == "stream")
    for ex in filter(None, (solve.exercise_id(c.source) for c in code)):
        assert f"{ex} skipped" in text, f"{path.name}: the check of {ex} did not report the placeholder as skipped"


def _execute(nb, run_dir, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("S2DLAB_RUN", str(run_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS_DIR)}}).execute()
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("path", SCRIPTS, ids=_ids)
def test_solved_notebook_passes_every_check(path, tutorial_run, monkeypatch):
    """After the learner's notebooks (same run folder, so nothing trains again): the solutions pass every check."""
    solve = _solve()
    nb = solve.solved_notebook(path)
    ids = [solve.exercise_id(c.source) for c in nb.cells if c.cell_type == "code" and solve.exercise_id(c.source)]
    text = _execute(nb, tutorial_run, monkeypatch)
    for ex in ids:
        assert f"✓ {ex} correct" in text, f"{path.name}: the solution of {ex} did not pass its check"
        assert f"{ex} skipped" not in text


@pytest.mark.slow
def test_a_wrong_answer_fails_its_check_loudly(tutorial_run, monkeypatch):
    from nbclient.exceptions import CellExecutionError

    solve = _solve()
    path = NOTEBOOKS_DIR / "00_quickstart.py"
    nb = solve.solved_notebook(path)
    cell = next(c for c in nb.cells if c.cell_type == "code" and solve.exercise_id(c.source) == "00.2")
    cell.source += "\nmy_pass_at_1 = 0.9  # a wrong answer\n"
    ex = "00.2"
    with pytest.raises(CellExecutionError) as err:
        _execute(nb, tutorial_run, monkeypatch)
    # s2dlab.exercises.WrongAnswer, an AssertionError, naming the exercise and the part that is wrong
    assert "WrongAnswer" in str(err.value) and f"{ex}: pass@1" in str(err.value)


@pytest.mark.slow
def test_preflight_trains_two_grpo_steps():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(NOTEBOOKS_DIR / "preflight.py"), "--threads", "1"],
                         capture_output=True, text=True, timeout=900, env={**__import__("os").environ,
                                                                            "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("READY: two GRPO steps trained")
