"""``s2dloc evaluate``: pose errors and recall of result files against ground truth."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "median errors and recall at thresholds per condition; cumulative error plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, nargs="+", help="result files (LABEL=PATH ok)")
    parser.add_argument("--gt", required=True, help="ground truth, name qw qx qy qz tx ty tz")
    parser.add_argument(
        "--thresholds",
        nargs="+",
        default=["0.25,2", "0.5,5", "5,10"],
        metavar="M,DEG",
        help="recall thresholds (metres,degrees)",
    )
    parser.add_argument("--plot", help="cumulative error plot PNG (default: next to results)")


def parse_thresholds(items: list[str]) -> tuple[tuple[float, float], ...]:
    out = []
    for item in items:
        try:
            t, r = (float(x) for x in item.split(","))
        except ValueError:
            raise ValueError(f"threshold {item!r} must be METRES,DEGREES") from None
        out.append((t, r))
    return tuple(out)


def run(args: argparse.Namespace) -> int:
    from s2dloc.viz.recall_report import evaluate_results

    thresholds = parse_thresholds(args.thresholds)
    print(f"plot: {evaluate_results(args.results, args.gt, thresholds, args.plot)}")
    return 0
