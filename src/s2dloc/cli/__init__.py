"""Command-line interface: ``s2dloc <command> ...``.

Each command lives in its own module of this package exposing ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from s2dloc import __version__

COMMANDS = ["demo", "toy", "synth", "map", "localize", "refine", "evaluate", "train", "benchmark"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2dloc", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"s2dloc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"s2dloc.cli.{name}")
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[%(asctime)s %(name)s %(levelname)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except (FileNotFoundError, ValueError) as err:
        logging.getLogger("s2dloc").error("%s", err)
        return 2
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as err:
        logging.getLogger("s2dloc").error("%s", path_in_the_way(err))
        return 2


def path_in_the_way(err: OSError) -> str:
    """A one-line message for a path of the wrong kind (e.g. ``--out`` naming a file)."""
    path = err.filename or "a path"
    if isinstance(err, IsADirectoryError):
        return f"{path} is a folder; expected a file"
    return f"{path}, or a folder above it, is an existing file; expected a folder"


if __name__ == "__main__":
    sys.exit(main())
