"""The dashboard as a process: the load benchmark (bench/bench_dashboard_load.py) with three participants, every
request of every participant succeeding while they share the one running app (its model handlers queued one at a
time); and `s2dlab app` stopped by SIGTERM leaves no export folder behind."""

import importlib.util
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboard_load.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_dashboard_load", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_three_participants_at_once_all_succeed(tmp_path, capsys):
    import json

    bench = load_bench()
    out = tmp_path / "load.json"
    assert bench.main(["--participants", "3", "--timeout", "600", "--json", str(out)]) == 0, capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [r["handler"] for r in result["rows"]] == list(bench.HANDLERS)
    assert all(r["requests"] == 3 and r["failures"] == 0 for r in result["rows"])
    assert len(result["requests"]) == 3 * len(bench.HANDLERS)


def test_a_stopped_app_leaves_no_export_folder(tmp_path):
    """Exports go to an `s2dlab-export-*` folder of the system's temporary folder (here `tmp_path`, through
    TMPDIR); SIGTERM stops the app and the folder goes with it."""
    from gradio_client import Client

    bench = load_bench()
    data = Path(__file__).parent / "data"
    proc, url = bench.start_app(data, env={**os.environ, "TMPDIR": str(tmp_path), "GRADIO_TEMP_DIR": str(tmp_path)})
    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        client.predict(current=None, api_name="/runs")
        client.predict(run_id="fixture_run", api_name="/open_run")
        client.predict(run_id="fixture_run", stage="opd", step=None, prompt_id=None, sample=None, teacher=None,
                       color="implicit reward", api_name="/token_view")
        client.close()
        assert [p.name for p in tmp_path.glob("s2dlab-export-*/*.html")], list(tmp_path.iterdir())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert list(tmp_path.glob("s2dlab-export-*")) == []
