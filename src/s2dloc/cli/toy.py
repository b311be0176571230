"""``s2dloc toy``: the F-PnP toy example with exact ground truth (table + convergence plot)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from s2dloc.datasets.toy import MIN_POINTS
from s2dloc.viz.toy import run_toy

NAME = "toy"
HELP = "Run the F-PnP toy example (known ground truth) and plot its convergence."
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/toy"), help="output folder")
    parser.add_argument(
        "--angles",
        type=float,
        nargs="+",
        default=[2.0, 5.0, 10.0, 15.0],
        help="initial rotation errors in degrees",
    )
    parser.add_argument("--trials", type=int, default=3, help="random starts per angle")
    parser.add_argument(
        "--points", type=int, default=1024, help=f"3D points to align (>= {MIN_POINTS})"
    )
    parser.add_argument("--loss", default="cauchy")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    run_toy(args.out, args.angles, args.trials, args.points, args.loss, args.seed)
    return 0
