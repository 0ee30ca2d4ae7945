"""Do `s2dlab score`, results.json and the dashboard read the same C1/C2 verdicts and arm accuracies of one run?

    python scripts/readers_agree.py runs/table2/seed_0

Prints, for C1 and C2, whether results.json holds the summary's verdict word for word, whether `s2dlab score`
prints every line of it and whether the dashboard's Stages tab shows it unchanged; then whether every arm's
accuracy reads the same in `s2dlab score` and results.json. Exit status 1 when anything disagrees.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import json
import re
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a run folder holding summary.json and results.json")
    args = p.parse_args(argv)

    from s2dlab.cli import main as s2dlab_main
    from s2dlab.views.dashboard import data as dashboard_data

    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    results = json.loads((run / "results.json").read_text())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        s2dlab_main(["score", str(run)])
    printed = buf.getvalue()
    view = dashboard_data.stages_view(dashboard_data.Store(run.parent), run.name)
    ok = True
    for key in ("c1", "c2"):
        verdict = summary[key]["verdict"]
        in_results = results.get(key, {}).get("verdict") == verdict
        in_cli = all(line in printed for line in verdict.splitlines())
        in_app = html.unescape(view[f"{key}_verdict"].replace("<br>", "\n")) == verdict
        print(f"{key}: {len(verdict.splitlines())} verdict lines; results.json identical: {in_results}; "
              f"s2dlab score prints every line: {in_cli}; dashboard identical: {in_app}")
        ok &= in_results and in_cli and in_app
    rows = 0
    for name, arm in summary["arms"].items():
        acc = f"{100 * arm['accuracy']:.1f}"
        in_cli = re.search(rf"^{re.escape(name)}\s+{re.escape(acc)}", printed, re.M) is not None
        in_res = name in results.get("arms", {}) and abs(results["arms"][name]["accuracy"] - arm["accuracy"]) < 1e-12
        rows += in_cli and in_res
    print(f"arms: {rows} of {len(summary['arms'])} arms read the same accuracy in s2dlab score and results.json")
    agree = ok and rows == len(summary["arms"])
    print("ALL AGREE" if agree else "DISAGREE")
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())
