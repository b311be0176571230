"""``s2dloc map``: build a map from a folder of images (pycolmap SfM), triangulate one with the
known poses and cameras of a COLMAP model (``--known-poses``), or import a COLMAP model.

The output folder is a map for ``s2dloc localize --map OUT`` (``OUT/images`` links to the image
folder; where links are unsupported, pass ``s2dloc localize --images IMAGES``).
"""

from __future__ import annotations

import argparse

NAME = "map"
HELP = "build a COLMAP map from your own images (SfM with pycolmap) or import an existing model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder of mapping images (any depth)")
    parser.add_argument("--out", required=True, help="output map folder")
    parser.add_argument(
        "--import-model",
        metavar="PATH",
        help="import this COLMAP model (text or binary) instead of running SfM",
    )
    parser.add_argument(
        "--known-poses",
        metavar="MODEL",
        help="COLMAP model (text or binary) with the cameras and poses of the "
        "images: triangulate points with them held fixed instead of SfM",
    )
    parser.add_argument("--camera-model", help="COLMAP camera model (default: SIMPLE_RADIAL)")
    parser.add_argument("--camera", help="'MODEL W H params...': one known camera for all images")
    parser.add_argument(
        "--single-camera",
        action="store_true",
        default=None,
        help="all images share one camera (default: grouped by size and EXIF)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        help="longest image side for feature extraction (default: 1024 for SfM, "
        "1600 with --known-poses)",
    )
    parser.add_argument("--max-features", type=int, help="SIFT features per image (default: 8192)")
    parser.add_argument(
        "--matcher",
        choices=["exhaustive", "sequential", "poses"],
        help="image pairs to match: all (default), neighbours in name order, or (with "
        "--known-poses) nearest cameras looking the same way",
    )
    parser.add_argument(
        "--overlap", type=int, help="sequential matcher: neighbours matched to each image (10)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: -1, all)")
    parser.add_argument(
        "--conf",
        nargs="*",
        default=[],
        metavar="KEY=VAL",
        help="settings, e.g. max_features=4096 matcher=sequential seed=1; SfM: camera_model, "
        "camera, single_camera, max_size, max_features, matcher, overlap, num_threads, seed; "
        "--known-poses: max_size, max_features, num_neighbors, max_angle_deg, num_threads. "
        "They override the options above; saved to OUT/config.json",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start again (default: reuse OUT/database.db)"
    )


def run(args: argparse.Namespace) -> int:
    from s2dloc.mapping.command import MapRequest, map_command

    map_command(MapRequest.from_args(args))
    return 0
