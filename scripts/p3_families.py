"""P3 by problem family (s2dlab.workflow.families): the halves block's paired differences on the eval problems whose
family is new in 2H, in 1H, or in neither, for a folder of seeds made with the halves arms.

    s2dlab run --arms bridge_1h_stage3,bridge_1h_replay,bridge_1h --seeds 5 --out runs/p3_tail task.family_tail=1
    python scripts/p3_families.py runs/p3_tail --json docs/results/p3_tail_5seeds.json
"""

from __future__ import annotations

import argparse
import sys

from s2dlab.core.config import ConfigError
from s2dlab.core.runs import atomic_write_json
from s2dlab.workflow.families import families_table, p3_by_family


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a folder of seed_<k> runs (or one run) with the halves arms")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args(argv)
    try:
        result = p3_by_family(args.run)
    except (ConfigError, FileNotFoundError) as e:
        print(f"p3_families: {e}", file=sys.stderr)
        return 2
    print(f"{args.run}: seeds {result['seeds']}, task.family_tail={result['family_tail']}, "
          f"{result['labels_per_half']} labels per half; families in 1H {result['families']['1h']}, "
          f"in 2H {result['families']['2h']}, in eval {result['families']['eval']}")
    print(families_table(result))
    if args.json:
        atomic_write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
