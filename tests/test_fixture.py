"""The committed fixture run's summary.json and results.json are what its own files give today: recomputed from
the stage folders, evals and diagnostics, they match field for field, so a change to how a summary is computed
cannot leave the fixture (and every dashboard and notebook test that reads it) describing an older definition."""

from __future__ import annotations

import json
import math
from pathlib import Path

from s2dlab.core.config import config_from_dict
from s2dlab.core.runs import open_run
from s2dlab.workflow.summary import results_view, summarize

FIXTURE = Path(__file__).resolve().parent / "data" / "fixture_run"


def differences(a, b, path="") -> list[str]:
    if isinstance(a, float) and isinstance(b, (int, float)) or isinstance(b, float) and isinstance(a, (int, float)):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a} != {b}"]
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
    if isinstance(a, dict):
        out = [f"{path}/{k}: only in {'recomputed' if k in a else 'committed'}" for k in set(a) ^ set(b)]
        return out + [d for k in set(a) & set(b) for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_the_fixture_summary_is_what_its_files_give():
    run = open_run(FIXTURE)
    recomputed = json.loads(json.dumps(summarize(config_from_dict(run.info["config"]), run)))
    committed = json.loads((FIXTURE / "summary.json").read_text())
    drift = differences(recomputed, committed)
    assert not drift, "fixture summary.json drifted; rebuild it (python scripts/make_fixture_run.py):\n" + \
        "\n".join(drift[:20])
    assert not differences(json.loads(json.dumps(results_view(recomputed))),
                           json.loads((FIXTURE / "results.json").read_text()))


def test_the_comparison_sees_a_changed_number():
    committed = json.loads((FIXTURE / "summary.json").read_text())
    changed = json.loads(json.dumps(committed))
    arm = next(iter(changed["arms"]))
    changed["arms"][arm]["accuracy"] += 0.01
    assert differences(changed, committed) == [f"/arms/{arm}/accuracy: {changed['arms'][arm]['accuracy']} != "
                                               f"{committed['arms'][arm]['accuracy']}"]


def test_report_renders_the_summary_numbers():
    """`s2dlab report` prints each arm's row with the summary's accuracy, interval and budget, and each prediction."""
    from s2dlab.views.report import report

    summary = json.loads((FIXTURE / "summary.json").read_text())
    text = report(FIXTURE)
    for name, arm in summary["arms"].items():
        (row,) = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
        lo, hi = arm["interval"]["ci"]
        assert f"**{100 * arm['accuracy']:.1f}** [{100 * lo:.1f}, {100 * hi:.1f}]" in row
        assert f"| {arm['student_steps']} | {arm['student_sequences']} | {arm['teacher_steps']} |" in row
    for claim in summary["claims"]:
        assert f"{100 * claim['difference']:+.1f}" in text and claim["claim"] in text
    arm_rows = [line.split("`")[1] for line in text.splitlines() if line.startswith("| `")]
    from s2dlab.workflow.arms import ARM_ORDER

    assert arm_rows == [a for a in ARM_ORDER if a in summary["arms"]]  # one order, the paper's
