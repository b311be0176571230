"""``s2dloc evaluate``: pose errors and recall of result files against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    from s2dloc.evaluation.recall import evaluate, format_table
    from s2dloc.viz.figure import plot_cumulative

    thresholds = parse_thresholds(args.thresholds)
    plot = Path(args.plot or Path(args.results[-1].split("=")[-1]).with_suffix(".errors.png"))
    if plot.is_dir():
        raise ValueError(f"--plot {plot} is a directory; expected the path of a PNG file")
    curves = {}
    for item in args.results:
        label, path = item.split("=", 1) if "=" in item else (Path(item).stem, item)
        ev = evaluate(path, args.gt, thresholds)
        total = len(ev.errors.names)
        print(f"== {label} ({path})")
        if ev.missing:
            print(
                f"{len(ev.missing)} of {total} ground-truth queries have no result "
                f"(counted as failures), e.g. {', '.join(ev.missing[:5])}"
            )
        print(f"recall over all {total} ground-truth queries:\n{format_table(ev.table)}")
        if ev.submitted:
            print(
                f"recall over the {total - len(ev.missing)} submitted queries:\n"
                f"{format_table(ev.submitted)}"
            )
        curves[label] = ev.errors
    print(f"plot: {plot_cumulative(curves, plot)}")
    return 0
