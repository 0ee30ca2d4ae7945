"""P3 by problem family (s2dlab.workflow.families): the halves block's paired differences on the eval problems whose
family is new in 2H, in 1H, or in neither, for folders of seeds made with the halves arms.

    s2dlab run --arms bridge_1h_stage3,bridge_1h_replay,bridge_1h --seeds 5 --out runs/p3_tail task.family_tail=1
    python scripts/p3_families.py runs/p3_uniform runs/p3_tail runs/p3_by_family --json docs/results/p3_families.json
"""

from __future__ import annotations

import argparse
import sys

from s2dlab.core.errors import S2DLabError
from s2dlab.core.runs import atomic_write_json
from s2dlab.workflow.families import families_table, p3_by_family


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="folders of seed_<k> runs (or single runs) with the halves arms")
    ap.add_argument("--json", help="also write the results here, one entry per folder")
    args = ap.parse_args(argv)
    results = []
    for folder in args.runs:
        try:
            result = p3_by_family(folder)
        except S2DLabError as e:
            print(f"p3_families: {e}", file=sys.stderr)
            return 2
        print(f"\n{folder}: seeds {result['seeds']}, task.family_tail={result['family_tail']}, "
              f"task.halves={result['halves']}, {result['labels_per_half']} labels per half; families in 1H "
              f"{result['families']['1h']}, in 2H {result['families']['2h']}, in eval {result['families']['eval']}")
        print(families_table(result))
        results.append(result)
    if args.json:
        atomic_write_json(args.json, {"command": "python scripts/p3_families.py " + " ".join(args.runs), "runs": results})
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
