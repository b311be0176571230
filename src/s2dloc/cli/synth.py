"""``s2dloc synth``: generate a multi-condition synthetic world with its ground truth."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

NAME = "synth"
HELP = "generate a synthetic multi-condition world (images, depth, COLMAP model, queries, GT)"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from s2dloc.datasets.synthetic.world import PRESETS

    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--scene", choices=["street", "room", "toy"], help="override the scene")
    parser.add_argument("--seed", type=int, help="random seed (default: the preset's, 0)")
    parser.add_argument("--num-db", type=int, help="number of database images")
    parser.add_argument("--num-query", type=int, help="number of query images")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument(
        "--camera-model",
        choices=["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV"],
    )
    parser.add_argument("--fov", type=float, help="horizontal field of view in degrees")
    parser.add_argument("--preview", action="store_true", help="also write preview.png")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args: argparse.Namespace) -> int:
    from s2dloc.datasets.synthetic.preview import write_preview
    from s2dloc.datasets.synthetic.world import PRESETS, generate_world
    from s2dloc.datasets.synthetic.write import write_world

    overrides = {
        "scene": args.scene,
        "seed": args.seed,
        "num_db": args.num_db,
        "num_query": args.num_query,
        "width": args.width,
        "height": args.height,
        "camera_model": args.camera_model,
        "fov_deg": args.fov,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key in ("num_db", "num_query", "width", "height"):
        if key in overrides and overrides[key] < (1 if key.startswith("num") else 16):
            raise ValueError(f"--{key.replace('_', '-')} is too small: {overrides[key]}")
    config = dataclasses.replace(PRESETS[args.preset], **overrides)
    t0 = time.perf_counter()
    world = generate_world(config)
    paths = write_world(world, args.out, overwrite=args.overwrite)
    if args.preview:
        paths["preview"] = write_preview(world, paths["root"] / "preview.png")
        logger.info("preview: %s", paths["preview"])
    logger.info("world %s written to %s in %.1f s", config, args.out, time.perf_counter() - t0)
    return 0
