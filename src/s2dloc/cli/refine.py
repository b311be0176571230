"""``s2dloc refine``: refine poses from any localizer (hloc result format) with F-PnP."""

from __future__ import annotations

import argparse

from s2dloc.cli.localize import add_common, finish, setup

NAME = "refine"
HELP = "refine poses of another localizer (name qw qx qy qz tx ty tz) with F-PnP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--poses", required=True, help="initial poses, name qw qx qy qz tx ty tz")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from s2dloc.localization.io import append_log, attach_priors
    from s2dloc.localization.pipeline import Localizer

    conf, out, map_, todo, log_path, cache = setup(args, "refine")
    todo = attach_priors(todo, args.poses)
    if todo:
        loc = Localizer(map_, conf, cache=cache, overwrite=args.overwrite)
        for q in tqdm(todo, desc="refine"):
            append_log(log_path, loc.refine(q))
    finish(out, log_path, {"pose": "results.txt"})
    return 0
