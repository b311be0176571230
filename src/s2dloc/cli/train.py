"""``s2dloc train``: train GN-Net features (also under ``torchrun`` for DDP)."""

from __future__ import annotations

import argparse
import logging

NAME = "train"
HELP = "Train dense features with the Gauss-Newton and contrastive losses."
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="YAML config (merged over the defaults)")
    parser.add_argument("--out", help="output folder (overrides out_dir)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="resume last.pt even if its training settings differ from these",
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")


def run(args: argparse.Namespace) -> int:
    from s2dloc.training.run import train_command

    train_command(args.conf, args.out, args.overrides, args.force)
    return 0
