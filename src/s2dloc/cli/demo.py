"""``s2dloc demo``: the whole system on the embedded default data (no download).

Generates the synthetic multi-condition world, loads the shipped GN-Net, builds the map,
localizes every query (PnP, then F-PnP), evaluates per condition, runs the F-PnP toy example,
and writes a report folder with figures and an ``index.html``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

NAME = "demo"
HELP = "Run the whole system on the embedded synthetic data and write a report."
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--preset", default="demo", help="synthetic world preset")
    parser.add_argument(
        "--extractor", default="default", help="dense features (default: the shipped default)"
    )
    parser.add_argument("--figures", type=int, default=3, help="per-query figures to draw")


def run(args: argparse.Namespace) -> int:
    from s2dloc.viz.demo import DemoRequest, run_demo

    run_demo(DemoRequest(args.out, args.preset, args.extractor, args.figures))
    return 0
