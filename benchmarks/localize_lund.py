"""Leave-one-out localization on real photos (Lund door, 12 images, COLMAP model, SIMPLE_RADIAL,
arbitrary scale): S2D + PnP-RANSAC, then F-PnP, vs a SIFT + PnP (pycolmap) baseline.

For each image: a new pycolmap Reconstruction without it (its observations removed, points left
with fewer than 2 observations dropped) is the map; the image is the query. Images are downscaled
by ``s`` (longest side <= --max-side, both sides integral), intrinsics and observations scaled by
``s`` (COLMAP convention). Errors: rotation (deg, angle of the relative rotation) and relative
translation = camera-centre error / mean baseline, the mean distance between consecutive camera
centres of the ground-truth model (DSC_0001 -> 0002 -> ...), since the model's scale is not
metric. Run::

    .venv/bin/python benchmarks/localize_lund.py        # ~3-4 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pycolmap
import torch

from s2dloc.geometry import Pose
from s2dloc.localization import Localizer, Map, Query, RefImage
from s2dloc.localization.baseline_sift import SiftBaseline
from s2dloc.localization.map import read_rgb
from s2dloc.utils.table import format_table
from s2dloc.viz.verdict import HEADERS as VERDICT_HEADERS
from s2dloc.viz.verdict import evaluate_run, write_run

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lund_door"


def leave_one_out(rec: pycolmap.Reconstruction, name: str, min_track: int = 2):
    """A new Reconstruction without image ``name``; points keep their other observations and
    are dropped when fewer than ``min_track`` remain."""
    held = next(i for i, im in rec.images.items() if im.name == name)
    keep = {
        pid
        for pid, p in rec.points3D.items()
        if sum(e.image_id != held for e in p.track.elements) >= min_track
    }
    out, obs = pycolmap.Reconstruction(), {}
    for k, (image_id, im) in enumerate(sorted(rec.images.items()), start=1):
        if image_id == held:
            continue
        pts = [
            (p.xy, p.point3D_id) for p in im.points2D if p.has_point3D() and p.point3D_id in keep
        ]
        cam = pycolmap.Camera(
            model=rec.cameras[im.camera_id].model,
            width=rec.cameras[im.camera_id].width,
            height=rec.cameras[im.camera_id].height,
            params=rec.cameras[im.camera_id].params,
            camera_id=k,
        )
        out.add_camera_with_trivial_rig(cam)
        xy = np.array([p[0] for p in pts], np.float64).reshape(-1, 2)
        image = pycolmap.Image(name=im.name, keypoints=xy, camera_id=k, image_id=k)
        out.add_image_with_trivial_frame(image, im.cam_from_world())
        for j, (_, pid) in enumerate(pts):
            obs.setdefault(pid, []).append((k, j))
    for pid in sorted(keep):
        track = pycolmap.Track()
        for image_id, j in obs[pid]:
            track.add_element(image_id, j)
        out.add_point3D(rec.points3D[pid].xyz, track, np.zeros(3, np.uint8))
    return out


def integral_scale(w: int, h: int, max_side: int) -> float:
    """The largest ``s = n / gcd(w, h)`` with ``max(w, h) * s <= max_side`` (integral sizes)."""
    g = math.gcd(w, h)
    return max(1, (max_side * g) // max(w, h)) / g


def scaled_map(map_: Map, images: dict[str, np.ndarray], s: float) -> Map:
    """``map_`` with images (already resized by ``s``), cameras and observations scaled."""
    refs = [
        RefImage(im.name, im.camera.scale(s), im.cam_from_world, im.point3D_ids, im.keypoints * s)
        for im in map_.images
    ]
    data = {im.name: images[im.name] for im in map_.images}
    return Map(refs, map_.point_ids, map_.points3D, None, data).validate()


def errors(gt: Pose, pose: Pose | None, baseline: float) -> tuple[float, float]:
    if pose is None:
        return math.inf, math.inf
    return float(gt.angle_to(pose)), float(gt.center_distance_to(pose)) / baseline


def summary(name: str, errs: list[tuple[float, float]]) -> list:
    r, t = np.array(errs).T
    rec = [f"{100 * np.mean((r < a) & (t < b)):.0f}" for a, b in ((1, 0.01), (2, 0.05), (5, 0.1))]
    return [
        name,
        f"{np.median(r):.3f}",
        f"{np.median(t):.4f}",
        f"{np.mean(np.isfinite(r)):.2f}",
        *rec,
    ]


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DATA)
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--sift-max-side", type=int, default=1024)
    parser.add_argument("--extractors", nargs="+", default=["default", "gnnet", "photometric"])
    parser.add_argument("--num-refs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries (debug)")
    parser.add_argument("--no-sift", action="store_true", help="skip the SIFT baseline")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "outputs" / "bench_localize_lund",
    )
    return parser.parse_args()


def _print_tables(args: argparse.Namespace, per_query: list, errs: dict) -> None:
    """Per-query errors, then the summary per method."""
    headers = ["query", "map pts"]
    for ext in args.extractors:
        headers += [f"{ext} inl", f"{ext} PnP deg/rel", f"{ext} F-PnP deg/rel"]
    headers += [] if args.no_sift else ["SIFT inl", "SIFT deg/rel"]
    print("\nper query (rotation deg / centre error over mean baseline):")
    print(format_table(per_query, headers))
    print(f"\nsummary over {len(per_query)} queries (rel = centre error / mean baseline):")
    summary_headers = ["method", "med deg", "med rel", "localized"]
    summary_headers += ["% <1deg,.01", "% <2deg,.05", "% <5deg,.1"]
    print(format_table([summary(k, v) for k, v in errs.items()], summary_headers))


def load_images(args) -> tuple:
    """The ground-truth model, image names, full-size images, images at ``--max-side`` and
    the scale between them."""
    rec = pycolmap.Reconstruction(str(args.root / "colmap_ground_truth"))
    names = sorted(im.name for im in rec.images.values())
    cam = next(iter(rec.cameras.values()))
    s = integral_scale(cam.width, cam.height, args.max_side)
    full = {n: read_rgb(args.root / "images" / n) for n in names}
    size = (round(cam.width * s), round(cam.height * s))
    small = {n: cv2.resize(im, size, interpolation=cv2.INTER_AREA) for n, im in full.items()}
    print(
        f"lund_door: {len(names)} images {cam.width}x{cam.height} -> {size[0]}x{size[1]} "
        f"(s={s:.4f})"
    )
    return rec, names, full, small, s


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    rec, names, full, small, s = load_images(args)
    gt_map = Map.from_colmap(rec)
    gt = {im.name: im.cam_from_world for im in gt_map.images}
    centres = torch.stack([gt[n].inv().t for n in names])
    baseline = float((centres[1:] - centres[:-1]).norm(dim=-1).mean())
    print(f"lund_door: mean baseline {baseline:.3f} units")
    errs: dict[str, list] = {}
    sift_cache: dict = {}
    per_query, runs, thresholds, confs = [], {}, None, {}
    for name in names[: args.limit or None]:
        rec_loo = leave_one_out(rec, name)
        map_full = Map.from_colmap(rec_loo, validate=False)
        map_s = scaled_map(map_full, small, s)
        q_cam = gt_map[name].camera
        query = Query(name, q_cam.scale(s), image=small[name])
        row = [name, len(map_full.point_ids)]
        for ext in args.extractors:
            conf = {"extractor": ext, "retrieval": {"num_refs": args.num_refs}}
            loc = Localizer(map_s, conf, progress=False)
            res, thresholds = loc.localize(query), loc.thresholds
            confs[ext] = loc.conf
            runs.setdefault(ext, []).append(res)
            e_pnp = errors(gt[name], res.pnp_pose, baseline)
            e_fin = errors(gt[name], res.pose if res.pnp_success else None, baseline)
            errs.setdefault(f"S2D {ext} PnP", []).append(e_pnp)
            errs.setdefault(f"S2D {ext} +F-PnP", []).append(e_fin)
            row += [
                max(res.inliers.values(), default=0),
                f"{e_pnp[0]:.2f}/{e_pnp[1]:.4f}",
                f"{e_fin[0]:.2f}/{e_fin[1]:.4f}",
            ]
        if not args.no_sift:
            map_sift = Map(map_full.images, map_full.point_ids, map_full.points3D, None, full)
            sift = SiftBaseline(map_sift, {"max_side": args.sift_max_side}, sift_cache)
            res = sift.localize(Query(name, q_cam, image=full[name]))
            e = errors(gt[name], res.pose, baseline)
            errs.setdefault("SIFT + PnP", []).append(e)
            row += [res.inliers, f"{e[0]:.2f}/{e[1]:.4f}"]
        per_query.append(row)
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    _print_tables(args, per_query, errs)
    # Verdict with one translation unit = the mean baseline (the model has no metric scale).
    verdicts = [
        evaluate_run(write_run(args.out / f"run-{ext}", res, gt, baseline, confs[ext]), thresholds)
        for ext, res in runs.items()
    ]
    print("\nverdict (success flag, 1 unit = the mean baseline; benchmarks/verdict.py):")
    print(format_table(verdicts, VERDICT_HEADERS))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    print("command: .venv/bin/python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
