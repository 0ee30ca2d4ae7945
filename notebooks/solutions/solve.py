"""The solved tutorials: each learner's "Your turn" cell replaced by its solution from this folder.

    python notebooks/solutions/solve.py                      # every tutorial -> runs/solved/NN_name.ipynb
    python notebooks/solutions/solve.py 01_teacher_grpo      # one of them
    python notebooks/solutions/solve.py --out solved_here    # another folder

An exercise cell of a tutorial starts with the line `# Your turn NN.x: ...` and holds a placeholder `...`; the
code cell of `notebooks/solutions/NN_name.py` that starts with the same line is its solution (nothing else of the
notebook is copied, so the solved notebook is always the current tutorial). The check cell after it (`# Check NN.x`)
prints `⏭ NN.x skipped` while the placeholder is there and `✓ NN.x` on a right answer; a wrong answer fails its
assert with a hint. tests/test_notebooks.py executes both versions. Works the same on Windows, macOS and Linux.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE.parent
EXERCISE = re.compile(r"^# Your turn (\d\d[a-z]?\.\d+)\b")
CHECK = re.compile(r"^# Check (\d\d[a-z]?\.\d+)\b")
SKIPPED = "⏭ {} skipped"
CORRECT = "✓ {}"


def exercise_id(source: str) -> str | None:
    """`"01.2"` for a cell whose first line is `# Your turn 01.2: ...`, else None."""
    m = EXERCISE.match(source)
    return m[1] if m else None


def check_id(source: str) -> str | None:
    """`"01.2"` for a cell whose first line is `# Check 01.2`, else None."""
    m = CHECK.match(source)
    return m[1] if m else None


def tutorials() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]*.py"))


def solution_cells(name: str) -> dict[str, str]:
    """Exercise id -> solution cell source, from `notebooks/solutions/<name>.py`."""
    path = HERE / f"{name}.py"
    if not path.is_file():
        return {}
    return {exercise_id(c.source): c.source for c in jupytext.read(path).cells
            if c.cell_type == "code" and exercise_id(c.source)}


def solved_notebook(path: str | Path):
    """The tutorial at `path` (its .py or .ipynb) with every exercise cell replaced by its solution."""
    path = Path(path)
    nb = jupytext.read(path)
    solutions = solution_cells(path.stem)
    for cell in nb.cells:
        ex = exercise_id(cell.source) if cell.cell_type == "code" else None
        if ex is None:
            continue
        if ex not in solutions:
            raise SystemExit(f"{path.name}: exercise {ex} has no solution in {HERE / (path.stem + '.py')}; add a cell "
                             f"starting with '# Your turn {ex}'")
        cell.source = solutions[ex]
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the solved tutorials (exercise cells filled in).")
    parser.add_argument("names", nargs="*", help="tutorials to solve, e.g. 01_teacher_grpo (default: all)")
    parser.add_argument("--out", default=str(NOTEBOOKS.parent / "runs" / "solved"), help="folder for the notebooks")
    args = parser.parse_args(argv)
    known = {p.stem: p for p in tutorials()}
    names = args.names or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"no tutorial named {', '.join(unknown)}; choose from {', '.join(known)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        target = out / f"{name}.ipynb"
        jupytext.write(solved_notebook(known[name]), target)
        print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
