"""The load benchmark (bench/bench_dashboard_load.py) with three participants: every request of every participant
succeeds while they share the one running app (its model handlers queued one at a time)."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboard_load.py"


def test_three_participants_at_once_all_succeed(tmp_path, capsys):
    import json

    spec = importlib.util.spec_from_file_location("bench_dashboard_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "load.json"
    assert bench.main(["--participants", "3", "--timeout", "600", "--json", str(out)]) == 0, capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [r["handler"] for r in result["rows"]] == list(bench.HANDLERS)
    assert all(r["requests"] == 3 and r["failures"] == 0 for r in result["rows"])
    assert len(result["requests"]) == 3 * len(bench.HANDLERS)
