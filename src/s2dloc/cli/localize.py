"""``s2dloc localize``: localize queries against a map (retrieval, S2D matching, PnP, F-PnP)."""

from __future__ import annotations

import argparse

NAME = "localize"
HELP = "localize query images against a map; writes results.txt, log.jsonl, config.json"


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_run_options(parser: argparse.ArgumentParser, extractor: str | None = None) -> None:
    """Settings and output options shared by ``localize``, ``refine`` and ``benchmark``."""
    default = f" (default: {extractor})" if extractor else ""
    parser.add_argument(
        "--extractor",
        default=extractor,
        help=f"dense features (photometric, disk, gnnet, ...){default}",
    )
    parser.add_argument("--preset", default="default", help="named settings preset")
    parser.add_argument(
        "--conf",
        nargs="*",
        default=[],
        metavar="KEY=VAL",
        help="setting overrides, e.g. s2d.ratio=0.8 fpnp.enabled=false output.write_failed=true",
    )
    parser.add_argument(
        "--rebuild-cache",
        action="store_true",
        help="recompute the reference feature cache; results of finished queries are kept",
    )
    parser.add_argument(
        "--discard-results",
        action="store_true",
        help="delete the results already in --out (log.jsonl, results*.txt) and start over",
    )


def add_common(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``localize`` and ``refine``."""
    parser.add_argument(
        "--one-at-a-time",
        action="store_true",
        help="extract each query's features only when its turn comes (by default the next "
        "queries' are extracted in low-priority threads meanwhile; a machine busy with other "
        "programs starves those threads)",
    )
    parser.add_argument("--map", required=True, help="map folder (sfm/ + images/) or COLMAP model")
    parser.add_argument("--images", help="reference image folder (default: MAP/images)")
    parser.add_argument(
        "--queries", required=True, help="hloc query list (name MODEL W H params) or image folder"
    )
    parser.add_argument("--query-images", help="root of the query names (default: map images)")
    parser.add_argument(
        "--camera",
        help="'MODEL W H params...' shared by a folder of query images (default: each image's "
        "camera from the map, its EXIF focal or a default focal)",
    )
    parser.add_argument(
        "--default-focal-factor",
        type=float,
        default=1.2,
        help="folder queries without --camera, map camera or EXIF focal: "
        "focal = FACTOR * max(W, H)",
    )
    parser.add_argument("--out", required=True, help="output folder (locked while a run uses it)")
    parser.add_argument("--cache", help="reference feature cache (default: OUT/cache-NAME.h5)")
    parser.add_argument("--num-queries", type=positive_int, help="only the first N queries")
    add_run_options(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument(
        "--pairs",
        help="hloc retrieval pairs file 'query ref' (queries it does not list use retrieval)",
    )
    parser.add_argument(
        "--matches",
        help="S2D matches file (.h5, see --export-matches): the queries it lists skip retrieval "
        "and dense matching",
    )
    parser.add_argument(
        "--export-pairs", metavar="FILE", help="write the retrieved pairs 'query ref' to FILE"
    )
    parser.add_argument(
        "--export-matches",
        metavar="FILE.h5",
        help="write each query's S2D matches to FILE.h5 (read back with --matches)",
    )


def run(args: argparse.Namespace) -> int:
    """Localize the queries; under ``torchrun`` each process takes a shard."""
    from s2dloc.localization.commands import RunRequest, localize_command

    summary = localize_command(RunRequest.from_args(args), "localize")
    if summary.main:
        print(summary.line())
    return 0
