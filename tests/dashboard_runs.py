"""The runs the dashboard tests read besides the committed fixture: one whole `s2dlab run --ablations` (every arm of
Table 2, every model kept, its token lens), built once per test process with the short budgets of
tests/test_stages.py (`SMALL`), about a minute on two CPU cores.

The committed fixture (tests/data/fixture_run) keeps five models to stay small; this run keeps them all, so the
views that choose models by their role (Live, branches, estimators, the lens) meet every arm's students and
teachers, `raw_teacher.opd` and `sft_teacher.fkl_warmup` among them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_BUILT: dict[str, Path] = {}
_LOCK = threading.Lock()
RUN = "ablations"


def build(root: Path) -> Path:
    """`s2dlab run --ablations` with `SMALL` into `root/ablations`, then `s2dlab lens` on it; returns `root`."""
    from s2dlab.cli import main
    from s2dlab.core.config import load_config
    from s2dlab.workflow.pipeline import run_pipeline
    from tests.test_stages import SMALL

    run_pipeline(load_config("tiny", overrides=SMALL), root / RUN, ablations=True, progress=False)
    assert main(["lens", str(root / RUN)]) == 0
    return root


def full_run_root(tmp_path_factory) -> Path:
    """A runs folder holding one run, `ablations`: `s2dlab run --ablations` on the tiny preset with `SMALL`, and
    `s2dlab lens` on it. Built on first use, then shared by every test of the process; $S2DLAB_TEST_FULL_RUNS
    names a folder already built by `build` (`python -m tests.dashboard_runs DIR`) to use instead (read-only)."""
    with _LOCK:
        if "root" not in _BUILT and os.environ.get("S2DLAB_TEST_FULL_RUNS"):
            _BUILT["root"] = Path(os.environ["S2DLAB_TEST_FULL_RUNS"])
        if "root" not in _BUILT:
            _BUILT["root"] = build(tmp_path_factory.mktemp("dashboard_runs"))
        return _BUILT["root"]


if __name__ == "__main__":
    import sys
    import time

    start = time.time()
    print(build(Path(sys.argv[1])), f"{time.time() - start:.0f} s")
