"""Maps from known poses on Strecha's castle-P30 and Herz-Jesus-P25 (LIDAR-registered cameras).

For each scene: SIFT, matching and triangulation with the given poses and intrinsics held fixed
(:func:`s2dloc.mapping.known_poses.triangulate_known_poses`). Prints points, observations, mean
track length, mean and median reprojection error, the largest change of any pose or camera
parameter (must be 0) and the time. The maps are written to ``OUT/<scene>/`` (resumable).

    python benchmarks/strecha_maps.py [--data /work/shared/data/strecha_dev]
        [--out outputs/strecha_maps] [--max-features 8192] [--matching exhaustive]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from s2dloc.mapping.known_poses import KnownPosesConfig, triangulate_known_poses
from s2dloc.mapping.sfm import read_model
from s2dloc.utils.table import format_table

SCENES = ("castle-P30", "Herz-Jesus-P25")


def max_change(rec, ref) -> float:
    """Largest absolute difference of any pose matrix entry or camera parameter."""
    worst = 0.0
    for image in rec.images.values():
        given = ref.images[image.image_id]
        diff = image.cam_from_world().matrix() - given.cam_from_world().matrix()
        cam_diff = rec.cameras[image.camera_id].params - ref.cameras[given.camera_id].params
        worst = max(worst, float(np.abs(diff).max()), float(np.abs(cam_diff).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/strecha_dev"))
    parser.add_argument("--out", type=Path, default=Path("outputs/strecha_maps"))
    parser.add_argument("--scenes", nargs="+", default=list(SCENES))
    parser.add_argument("--max-features", type=int, default=8192)
    parser.add_argument("--matching", choices=["exhaustive", "poses"], default="exhaustive")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    rows = []
    for scene in args.scenes:
        root = args.data / scene
        t = time.perf_counter()
        rec = triangulate_known_poses(
            root / "images",
            root / "sparse",
            args.out / scene,
            matching=args.matching,
            overwrite=args.overwrite,
            progress=False,
            conf=KnownPosesConfig(max_features=args.max_features),
        )
        seconds = time.perf_counter() - t
        errors = [p.error for p in rec.points3D.values()]
        rows.append(
            [
                scene,
                rec.num_reg_images(),
                rec.num_points3D(),
                rec.compute_num_observations(),
                f"{rec.compute_mean_track_length():.2f}",
                f"{rec.compute_mean_reprojection_error():.3f}",
                f"{np.median(errors):.3f}",
                f"{max_change(rec, read_model(root / 'sparse')):.1e}",
                f"{seconds:.0f}",
            ]
        )
    headers = [
        "scene",
        "images",
        "points",
        "obs",
        "track",
        "reproj mean px",
        "median px",
        "pose change",
        "time s",
    ]
    print(format_table(rows, headers))


if __name__ == "__main__":
    main()
