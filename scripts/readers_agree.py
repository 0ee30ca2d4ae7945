"""Do `s2dlab score`, results.json and the dashboard read the same C1/C2 verdicts and arm accuracies of one run?

    python scripts/readers_agree.py runs/table2/seed_0

Prints, for C1 and C2, whether results.json holds the summary's verdict word for word, whether `s2dlab score`
prints every line of it and whether the dashboard's Stages tab shows it unchanged; then whether every arm's
accuracy reads the same in `s2dlab score` and results.json. Exit status 1 when anything disagrees.
"""
import contextlib, html, io, json, re, sys
from pathlib import Path
from s2dlab.cli import main
from s2dlab.dashboard import data as cb

run = Path(sys.argv[1])
S = json.loads((run / "summary.json").read_text())
R = json.loads((run / "results.json").read_text())
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    main(["score", str(run)])
printed = buf.getvalue()
store = cb.Store(run.parent)
view = cb.stages_view(store, run.name)
ok = True
for key in ("c1", "c2"):
    v = S[key]["verdict"]
    in_results = R.get(key, {}).get("verdict")
    in_cli = all(line in printed for line in v.splitlines())
    in_app = html.unescape(view[f"{key}_verdict"].replace("<br>", "\n")) == v
    print(f"{key}: {len(v.splitlines())} verdict lines; results.json identical: {in_results == v}; "
          f"s2dlab score prints every line: {in_cli}; dashboard identical: {in_app}")
    ok &= in_results == v and in_cli and in_app
arms = view["arms"]
rows = 0
for name, a in S["arms"].items():
    acc = f"{100 * a['accuracy']:.1f}"
    in_cli = re.search(rf"^{re.escape(name)}\s+{re.escape(acc)}", printed, re.M) is not None
    in_res = abs(R["arms"][name]["accuracy"] - a["accuracy"]) < 1e-12 if name in R.get("arms", {}) else False
    rows += in_cli and in_res
print(f"arms: {rows} of {len(S['arms'])} arms read the same accuracy in s2dlab score and results.json")
agree = ok and rows == len(S["arms"])
print("ALL AGREE" if agree else "DISAGREE")
sys.exit(0 if agree else 1)
