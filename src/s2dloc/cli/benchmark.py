"""``s2dloc benchmark cmu|robotcar``: localize a long-term benchmark and write its submission."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2dloc.cli.localize import add_run_options

NAME = "benchmark"
HELP = "run the pipeline on Extended CMU Seasons or RobotCar Seasons; write the submission"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["cmu", "robotcar"], help="benchmark")
    parser.add_argument(
        "--root", required=True, type=Path, help="dataset root (intrinsics.txt, sliceN/)"
    )
    parser.add_argument("--slices", default="2-25", help="CMU: e.g. 2-6, 2,4,7-9, urban, all")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=None,
        help="RobotCar: conditions (default: all query conditions)",
    )
    parser.add_argument("--query-list", help="RobotCar: file of query names (default: all on disk)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    add_run_options(parser, extractor="gnnet")


def run(args: argparse.Namespace) -> int:
    from s2dloc.localization.benchmarks import BenchmarkRequest, benchmark_command

    result = benchmark_command(BenchmarkRequest.from_args(args))
    for name, row in result.tables.items():
        print(
            name,
            " ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            ),
        )
    report = result.report
    print(
        f"submission: {result.path} ({report.written} poses; {len(report.not_localized)} "
        "queries not localized, listed in the log)"
    )
    return 0
