"""The runs the dashboard tests read besides the committed fixture: one whole `s2dlab run --ablations` (every arm of
Table 2, every model kept, its token lens), built once per test process with the short budgets of
tests/test_stages.py (`SMALL`), about a minute on two CPU cores.

The committed fixture (tests/data/fixture_run) keeps five models to stay small; this run keeps them all, so the
views that choose models by their role (Live, branches, estimators, the lens) meet every arm's students and
teachers, `raw_teacher.opd` and `sft_teacher.fkl_warmup` among them.
"""

from __future__ import annotations

import threading
from pathlib import Path

_BUILT: dict[str, Path] = {}
_LOCK = threading.Lock()
RUN = "ablations"


def full_run_root(tmp_path_factory) -> Path:
    """A runs folder holding one run, `ablations`: `s2dlab run --ablations` on the tiny preset with `SMALL`, and
    `s2dlab lens` on it. Built on first use, then shared by every test of the process."""
    with _LOCK:
        if "root" not in _BUILT:
            from s2dlab.cli import main
            from s2dlab.config import load_config
            from s2dlab.pipeline import run_pipeline
            from tests.test_stages import SMALL

            root = tmp_path_factory.mktemp("dashboard_runs")
            run_pipeline(load_config("tiny", overrides=SMALL), root / RUN, ablations=True, progress=False)
            assert main(["lens", str(root / RUN)]) == 0
            _BUILT["root"] = root
        return _BUILT["root"]
