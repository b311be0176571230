"""``s2dloc synth``: generate a multi-condition synthetic world with its ground truth."""

from __future__ import annotations

import argparse
import dataclasses

NAME = "synth"
HELP = "generate a synthetic multi-condition world (images, depth, COLMAP model, queries, GT)"

# World settings checked against their allowed ranges, and the options that set them.
OPTIONS = {
    "num_db": "--num-db",
    "num_query": "--num-query",
    "width": "--width",
    "height": "--height",
    "fov_deg": "--fov",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from s2dloc.datasets.synthetic.world import CAMERA_MODELS, LIMITS, PRESETS, WorldConfig

    def limits(key: str) -> str:
        lo, hi, unit = LIMITS[key]
        return f"{lo:g}-{hi:g} {unit}"

    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--scene", choices=["street", "room", "toy"], help="override the scene")
    parser.add_argument("--seed", type=int, help="random seed (default: the preset's, 0)")
    parser.add_argument("--num-db", type=int, help="number of database images")
    parser.add_argument("--num-query", type=int, help="number of query images")
    parser.add_argument("--width", type=int, help=f"image width ({limits('width')})")
    parser.add_argument("--height", type=int, help=f"image height ({limits('height')})")
    parser.add_argument("--camera-model", choices=CAMERA_MODELS)
    parser.add_argument(
        "--fov",
        type=float,
        help=f"horizontal field of view ({limits('fov_deg')}; less with SIMPLE_RADIAL)",
    )
    keys = ", ".join(f.name for f in dataclasses.fields(WorldConfig))
    parser.add_argument(
        "--conf",
        nargs="*",
        default=[],
        metavar="KEY=VAL",
        help=f"world settings ({keys}), e.g. width=640 query_conditions=[night,snow]; they "
        "override the preset and the options above (saved to OUT/settings.json before "
        "rendering: a folder of other settings is refused)",
    )
    parser.add_argument("--preview", action="store_true", help="also write preview.png")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again (default: resume, keeping the files of a world of the same settings)",
    )


def _flag_settings(args: argparse.Namespace) -> dict:
    """The world settings given as options, each checked (an error names the option)."""
    from s2dloc.datasets.synthetic.world import CHECKS
    from s2dloc.utils.config import ConfigError

    flags = {
        "scene": args.scene,
        "seed": args.seed,
        "num_db": args.num_db,
        "num_query": args.num_query,
        "width": args.width,
        "height": args.height,
        "camera_model": args.camera_model,
        "fov_deg": args.fov,
    }
    flags = {k: v for k, v in flags.items() if v is not None}
    for key, option in OPTIONS.items():
        problem = CHECKS[key](flags[key]) if key in flags else None
        if problem:
            raise ConfigError(f"s2dloc synth {option} {problem}, got {flags[key]:g}")
    return flags


def run(args: argparse.Namespace) -> int:
    from s2dloc.datasets.synthetic.make import make_world
    from s2dloc.datasets.synthetic.world import world_config
    from s2dloc.utils.config import parse_overrides

    overrides = {**_flag_settings(args), **parse_overrides(args.conf)}  # --conf wins
    config = world_config(args.preset, overrides)  # also checks the field of view
    make_world(config, args.out, overwrite=args.overwrite, preview=args.preview)
    return 0
