"""``s2dloc demo``: the main job on the embedded default data (no download)."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2dloc.cli import toy

NAME = "demo"
HELP = "Run the end-to-end demo on embedded data (currently: the F-PnP toy example)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")


def run(args: argparse.Namespace) -> int:
    toy_args = argparse.Namespace(out=args.out, angles=[2.0, 5.0, 10.0, 15.0], trials=3,
                                  points=1024, loss="cauchy", seed=0)  # fmt: skip
    return toy.run(toy_args)
