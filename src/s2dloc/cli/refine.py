"""``s2dloc refine``: refine poses from any localizer (hloc result format) with F-PnP."""

from __future__ import annotations

import argparse

from s2dloc.cli.localize import add_common

NAME = "refine"
HELP = "refine poses of another localizer (name qw qx qy qz tx ty tz) with F-PnP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--poses", required=True, help="initial poses, name qw qx qy qz tx ty tz")


def run(args: argparse.Namespace) -> int:
    from s2dloc.localization.commands import RunRequest, localize_command

    summary = localize_command(RunRequest.from_args(args), "refine")
    if summary.main:
        print(summary.line())
    return 0
