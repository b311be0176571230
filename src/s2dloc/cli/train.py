"""``s2dloc train``: train GN-Net features (also under ``torchrun`` for DDP)."""

from __future__ import annotations

import argparse
import json
import logging

from s2dloc.training.config import load_config
from s2dloc.training.distributed import init_from_env, shutdown
from s2dloc.utils.io import write_text_atomic

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
    from s2dloc.training.trainer import Trainer

    overrides = list(args.overrides) + ([f"out_dir={args.out}"] if args.out else [])
    conf = load_config(args.conf, overrides)
    rank, world_size = init_from_env()
    try:
        trainer = Trainer(conf, rank, world_size, force=args.force)
        if rank == 0:
            write_text_atomic(trainer.out / "config.json", json.dumps(conf, indent=2))
        path = trainer.run()
        if rank == 0:
            print(f"checkpoint: {path}")
    finally:
        shutdown()
    return 0
