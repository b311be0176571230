"""``s2dloc synth``: generate a multi-condition synthetic world with its ground truth."""

from __future__ import annotations

import argparse
import dataclasses

NAME = "synth"
HELP = "generate a synthetic multi-condition world (images, depth, COLMAP model, queries, GT)"


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


def run(args: argparse.Namespace) -> int:
    from s2dloc.datasets.synthetic.command import SynthRequest, synth_command

    synth_command(SynthRequest.from_args(args))
    return 0
