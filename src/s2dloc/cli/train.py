"""``s2dloc train``: train GN-Net features (also under ``torchrun`` for DDP)."""

from __future__ import annotations

import argparse
import logging

NAME = "train"
HELP = "Train dense features with the Gauss-Newton and contrastive losses."
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conf",
        nargs="*",
        default=[],
        metavar="YAML|KEY=VAL",
        help="a YAML config (merged over the defaults) and/or setting overrides, e.g. "
        "--conf configs/gnnet.yaml optim.lr=1e-4 train.steps=500 (as the other commands' --conf)",
    )
    parser.add_argument("--out", help="output folder (overrides out_dir)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="resume last.pt even if its training settings differ from these",
    )
    parser.add_argument("overrides", nargs="*", help="more section.key=value overrides")


def run(args: argparse.Namespace) -> int:
    from s2dloc.training.run import train_command

    files = [c for c in args.conf if "=" not in c]
    if len(files) > 1:
        raise ValueError(f"--conf takes at most one YAML file, got {files}")
    overrides = [c for c in args.conf if "=" in c] + args.overrides
    train_command(files[0] if files else None, args.out, overrides, args.force)
    return 0
