"""Can a user trust ``success``? Precision and recall of the localization verdict per run.

A run folder holds ``log.jsonl`` (one :meth:`QueryResult.to_json` record per line, as written by
``s2dloc localize`` or the benchmark scripts) and ``gt.txt`` (``name qw qx qy qz tx ty tz``,
world-to-camera); an optional ``unit.txt`` holds the length of one translation unit in the
map's units (for maps without metric scale, e.g. the mean camera spacing). Each record is
judged again from its stored statistics, so other thresholds can be tried without localizing
again (``--set min_inliers=40``). Columns: queries; queries with a pose; accepted (``success``);
precision at (1 m, 5 deg) of the accepted; recall at (0.25 m, 2 deg) counting every query
with a pose and counting only accepted ones; ``--pool LABEL`` adds one row over all the runs'
queries (e.g. one extractor on several worlds); ``--mistakes`` lists the queries accepted
outside (1 m, 5 deg) and those rejected within (0.25 m, 2 deg). Run::

    .venv/bin/python benchmarks/verdict.py outputs/bench_localize_synthetic/run-gnnet ...
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from s2dloc.localization import verify as V
from s2dloc.localization.config import DEFAULTS, parse_overrides
from s2dloc.utils.table import format_table
from s2dloc.viz.verdict import HEADERS, evaluate_run, mistake_rows, pooled_row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders with log.jsonl and gt.txt")
    parser.add_argument("--set", nargs="*", default=[], help="verify thresholds, KEY=VALUE")
    parser.add_argument("--no-verify", action="store_true", help="only the solver's own flags")
    parser.add_argument(
        "--pool", metavar="LABEL", help="also one row over the queries of all runs together"
    )
    parser.add_argument(
        "--mistakes", action="store_true", help="also list accepted-but-wrong, rejected-but-right"
    )
    args = parser.parse_args()
    try:
        th = V.VerifyThresholds.from_conf({**DEFAULTS["verify"], **parse_overrides(args.set)})
        if args.no_verify:
            th = dataclasses.replace(th, enabled=False)
        rows = [evaluate_run(f, th) for f in args.runs]
        if args.pool:
            rows.append(pooled_row(args.pool, args.runs, th))
        mistakes = [
            [f"{f.parent.name}/{f.name}", *r]
            for f in (args.runs if args.mistakes else [])
            for r in mistake_rows(f, th)
        ]
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_table(rows, HEADERS))
    if args.mistakes:
        heads = ["run", "query", "verdict", "error (units)", "error (deg)", "reason"]
        print("\n" + (format_table(mistakes, heads) if mistakes else "no mistakes"))


if __name__ == "__main__":
    main()
