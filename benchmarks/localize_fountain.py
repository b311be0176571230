"""Localization on real RGB-D keyframes (Fountain, 33 frames 640x480): the map is every other
frame lifted with its depth (``Map.from_rgbd``), the queries are the remaining frames. S2D +
PnP-RANSAC, then F-PnP, with learned vs photometric features, vs a SIFT + PnP (pycolmap) baseline.

Errors in metres (camera-centre distance) and degrees (relative rotation angle) against key.log,
which is only ~1 deg / ~2 cm accurate (see the data README): differences below that are noise.
A query whose PnP failed counts as not localized (infinite error). Run::

    .venv/bin/python benchmarks/localize_fountain.py     # ~2-3 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.fountain import FountainDataset
from s2dloc.geometry import Pose
from s2dloc.localization import Localizer, Map, Query
from s2dloc.localization.baseline_sift import SiftBaseline
from s2dloc.utils.table import format_table
from s2dloc.viz.verdict import HEADERS as VERDICT_HEADERS
from s2dloc.viz.verdict import evaluate_run, write_run

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fountain_rgbd"
THRESHOLDS = ((0.02, 1.0), (0.05, 2.0), (0.10, 5.0), (0.25, 10.0))


def errors(gt: Pose, pose: Pose | None) -> tuple[float, float]:
    if pose is None:
        return math.inf, math.inf
    return float(gt.angle_to(pose)), float(gt.center_distance_to(pose))


def summary(name: str, errs: list[tuple[float, float]]) -> list:
    r, t = np.array(errs).T
    rec = [f"{100 * np.mean((t <= tt) & (r <= rt)):.0f}" for tt, rt in THRESHOLDS]
    return [
        name,
        f"{np.median(r):.3f}",
        f"{100 * np.median(t):.2f}",
        f"{int(np.isfinite(r).sum())}/{len(r)}",
        *rec,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DATA)
    parser.add_argument("--extractors", nargs="+", default=["default", "gnnet", "photometric"])
    parser.add_argument("--num-refs", type=int, default=5)
    parser.add_argument("--stride", type=int, default=8, help="map: one 3D point per stride px")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "outputs" / "bench_localize_fountain",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    data = FountainDataset(args.root)
    frames = [data[i] for i in range(len(data))]
    refs, queries = frames[0::2], frames[1::2]
    map_ = Map.from_rgbd(refs, stride=args.stride, max_points=100000)
    print(
        f"fountain: map of {len(refs)} frames ({len(map_.point_ids)} points, stride "
        f"{args.stride}), {len(queries)} queries; {time.perf_counter() - t0:.0f} s"
    )
    errs: dict[str, list] = {}
    rows, verdicts = [], []
    gt = {f.name: f.cam_from_world for f in queries}
    for ext in args.extractors:
        t = time.perf_counter()
        conf = {"extractor": ext, "retrieval": {"num_refs": args.num_refs}}
        loc = Localizer(map_, conf, progress=False)
        results = []
        for f in queries:
            res = loc.localize(Query(f.name, f.camera, image=f.image))
            results.append(res)
            ok = res.pnp_success
            errs.setdefault(f"S2D {ext} PnP", []).append(errors(f.cam_from_world, res.pnp_pose))
            errs.setdefault(f"S2D {ext} +F-PnP", []).append(
                errors(f.cam_from_world, res.pose if ok else None)
            )
        print(f"  {ext}: {time.perf_counter() - t:.0f} s", flush=True)
        run_dir = write_run(args.out / f"run-{ext}", results, gt, conf=loc.conf)
        verdicts.append(evaluate_run(run_dir, loc.thresholds))
    t = time.perf_counter()
    sift = SiftBaseline(map_, {"max_side": 640, "radius": args.stride * 0.75})
    for f in queries:
        res = sift.localize(Query(f.name, f.camera, image=f.image))
        errs.setdefault("SIFT + PnP", []).append(errors(f.cam_from_world, res.pose))
    print(f"  SIFT: {time.perf_counter() - t:.0f} s")
    for k, v in errs.items():
        rows.append(summary(k, v))
    keys = [f"% <{100 * tt:.0f}cm,{rt:.0f}deg" for tt, rt in THRESHOLDS]
    print()
    print(format_table(rows, ["method", "med deg", "med cm", "localized", *keys]))
    print("\nverdict (success flag; also: benchmarks/verdict.py OUT/run-*):")
    print(format_table(verdicts, VERDICT_HEADERS))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    print("command: .venv/bin/python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
