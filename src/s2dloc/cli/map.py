"""``s2dloc map``: build a map from a folder of images (pycolmap SfM), triangulate one with the
known poses and cameras of a COLMAP model (``--known-poses``), or import a COLMAP model.

The output folder is a map for ``s2dloc localize --map OUT`` (``OUT/images`` links to the image
folder; where links are unsupported, pass ``s2dloc localize --images IMAGES``).
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s2dloc.mapping import SfMConfig

NAME = "map"
HELP = "build a COLMAP map from your own images (SfM with pycolmap) or import an existing model"

logger = logging.getLogger(__name__)
# Options used by SfM only (by argument name), each with the reason it has no use with
# --known-poses.
NOT_WITH_KNOWN_POSES = {
    "camera_model": "the cameras come from the model",
    "camera": "the cameras come from the model",
    "single_camera": "the cameras come from the model",
    "overlap": "it sets the sequential matcher, which --known-poses does not use",
}
# Options with no use when a model is imported (no features, matching or SfM run).
NOT_WITH_IMPORT = (
    "camera_model",
    "camera",
    "single_camera",
    "max_size",
    "max_features",
    "matcher",
    "overlap",
    "threads",
)


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


def _settings(args: argparse.Namespace, keys: tuple[str, ...]) -> dict:
    """The settings among ``keys`` given as options, updated with ``--conf`` (which wins)."""
    from s2dloc.utils.config import parse_overrides

    flags = {
        "camera_model": args.camera_model,
        "camera": args.camera,
        "single_camera": args.single_camera,
        "max_size": args.max_size,
        "max_features": args.max_features,
        "matcher": args.matcher,
        "overlap": args.overlap,
        "num_threads": args.threads,
    }
    flags = {k: v for k, v in flags.items() if k in keys and v is not None}
    return {**flags, **parse_overrides(args.conf)}


def _option(key: str) -> str:
    """The command-line option of argument ``key`` (``camera_model`` -> ``--camera-model``)."""
    return "--" + key.replace("_", "-")


def _check_mode_options(args: argparse.Namespace) -> None:
    """Refuse options that the chosen mode would ignore (the error names the option and why)."""
    if args.import_model and args.known_poses:
        raise ValueError("use either --import-model or --known-poses, not both")
    if args.import_model:
        for key in NOT_WITH_IMPORT:
            if getattr(args, key) is not None:
                raise ValueError(
                    f"{_option(key)} has no use with --import-model: the model is imported as it is"
                )
        if args.conf:
            raise ValueError("--conf has no settings to change with --import-model")
    elif args.known_poses:
        for key, why in NOT_WITH_KNOWN_POSES.items():
            if getattr(args, key) is not None:
                raise ValueError(f"{_option(key)} has no use with --known-poses: {why}")
        if args.matcher == "sequential":
            raise ValueError("with --known-poses use --matcher exhaustive or poses")
    elif args.matcher == "poses":
        raise ValueError("--matcher poses needs --known-poses")


def _check_sfm_options(args: argparse.Namespace, conf: SfMConfig) -> None:
    """Refuse SfM options that ``conf`` (after ``--conf``) leaves without effect."""
    if args.overlap is not None and conf.matcher != "sequential":
        raise ValueError(
            f"--overlap has no use with --matcher {conf.matcher}: it sets the sequential matcher"
        )
    if args.camera_model is not None and conf.camera:
        raise ValueError("--camera-model has no use with --camera: its MODEL is used")


def run(args: argparse.Namespace) -> int:
    from s2dloc.mapping import (
        build_map,
        import_model,
        known_poses_config,
        sfm_config,
        summarize,
        triangulate_known_poses,
    )

    _check_mode_options(args)
    if args.import_model:
        summary = import_model(args.import_model, args.images, args.out, args.overwrite)
    elif args.known_poses:
        conf = known_poses_config(_settings(args, ("max_size", "max_features", "num_threads")))
        rec = triangulate_known_poses(
            args.images,
            args.known_poses,
            args.out,
            matching=args.matcher or "exhaustive",
            overwrite=args.overwrite,
            conf=conf,
        )
        summary = summarize(rec)
    else:
        keys = ("camera_model", "camera", "single_camera", "max_size", "max_features")
        conf = sfm_config(_settings(args, (*keys, "matcher", "overlap", "num_threads")))
        _check_sfm_options(args, conf)
        summary = build_map(args.images, args.out, conf, args.overwrite)
    print(
        f"map {args.out}: {summary['registered_images']}/{summary['images']} images registered, "
        f"{summary['points3D']} points, mean reprojection error "
        f"{summary['mean_reprojection_error']:.2f} px, mean track length "
        f"{summary['mean_track_length']:.2f}\n"
        f"next: s2dloc localize --map {args.out} --queries QUERIES --out RESULTS"
    )
    return 0
