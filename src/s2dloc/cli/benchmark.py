"""``s2dloc benchmark cmu|robotcar``: localize a long-term benchmark and write its submission."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    parser.add_argument("--extractor", default="gnnet",
                        help="dense features (default: the shipped GN-Net)")  # fmt: skip
    parser.add_argument("--preset", default="default", help="localization settings preset")
    parser.add_argument("--conf", nargs="*", default=[], metavar="KEY=VAL", help="overrides")
    parser.add_argument("--overwrite", action="store_true", help="recompute caches and results")


def run(args: argparse.Namespace) -> int:
    from s2dloc.localization.benchmarks import run_cmu
    from s2dloc.localization.config import parse_overrides, resolve

    user = parse_overrides(args.conf)
    if args.extractor:
        user["extractor"] = args.extractor
    conf = resolve(user, args.preset)
    if args.dataset == "robotcar":
        from s2dloc.datasets.robotcar import QUERY_CONDITIONS
        from s2dloc.localization.benchmarks import run_robotcar

        conditions = args.conditions or list(QUERY_CONDITIONS)
        path, report = run_robotcar(args.root, conditions, args.out, conf, args.query_list,
                                    args.overwrite)  # fmt: skip
        tables = {}
    else:
        path, report, tables = run_cmu(args.root, args.slices, args.out, conf, args.overwrite)
    for name, row in tables.items():
        print(name, " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in row.items()))  # fmt: skip
    print(f"submission: {path} ({report.written} poses; {len(report.not_localized)} queries not "
          f"localized, listed in the log)")  # fmt: skip
    return 0
