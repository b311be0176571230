"""The documented own-data sequence on real photos (Lund door), checked against ground truth.

1. DSC_0001..0009, downscaled to a longest side of 1024 px (EXIF kept), form the mapping folder:
   ``s2dloc map --images MAPPING --out MAP --single-camera`` (pycolmap SfM, no poses given).
2. DSC_0010..0012 (same downscaling) form the query folder:
   ``s2dloc localize --map MAP --queries QUERIES --out LOC --extractor gnnet`` (no ``--camera``:
   intrinsics from the map / EXIF / a default focal; the source used is reported).
3. The SfM map is aligned to the shipped COLMAP ground truth by a similarity transform estimated
   from the camera centres of the 9 mapping images (Umeyama), the localized query poses are
   mapped into the ground-truth frame, and errors are reported: rotation (deg, angle of the
   relative rotation) and camera-centre distance / mean distance between consecutive ground-truth
   centres (DSC_0001 -> 0002 -> ..., the model's scale is arbitrary). Run::

    .venv/bin/python benchmarks/own_data_lund.py          # ~3-5 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pycolmap
from PIL import Image

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose
from s2dloc.mapping import exif_focal
from s2dloc.utils.table import format_table

logger = logging.getLogger("s2dloc.benchmarks.own_data_lund")

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lund_door"
MAPPING = [f"DSC_{i:04d}.JPG" for i in range(1, 10)]
QUERIES = [f"DSC_{i:04d}.JPG" for i in range(10, 13)]


def downscale(src: Path, dst: Path, max_side: int) -> tuple[int, int]:
    """Save ``src`` resized to a longest side of ``max_side`` (EXIF kept); returns ``(W, H)``."""
    with Image.open(src) as im:
        s = max_side / max(im.size)
        size = (round(im.width * s), round(im.height * s))
        exif = im.info.get("exif", b"")
        im.convert("RGB").resize(size, Image.LANCZOS).save(dst, quality=95, exif=exif)
    return size


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``s, R, t`` minimising ``sum |dst - (s R src + t)|^2`` for ``(N, 3)`` point sets."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / xs.var(0).sum())
    return s, R, mu_d - s * R @ mu_s


def to_gt_frame(pose: Pose, s: float, R: np.ndarray, t: np.ndarray) -> Pose:
    """A cam_from_world pose of the SfM frame in the frame ``X_gt = s R X_sfm + t``."""
    R_cam, _ = pose.numpy()
    c_gt = s * R @ pose.center().numpy() + t
    R_new = R_cam @ R.T
    return Pose.from_Rt(R_new, -R_new @ c_gt)


def run(cmd: list[str], log: Path) -> float:
    """Run a command (output to ``log``); returns its wall time; exits on failure."""
    print("$", shlex.join(cmd), flush=True)
    t = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    dt = time.perf_counter() - t
    if rc != 0:
        sys.exit(f"command failed (rc {rc}), see {log}:\n" + log.read_text()[-3000:])
    return dt


def query_rows(loc: Path, label: str, gt_pose: dict[str, Pose], sim, baseline: float) -> list:
    """Table rows of the queries localized in ``loc`` (errors after the similarity ``sim``)."""
    results = read_poses(loc / "results.txt") if (loc / "results.txt").exists() else {}
    records = {}
    for line in (loc / "log.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records[rec["name"]] = rec
    rows = []
    for n in QUERIES:
        rec = records.get(n, {})
        if n not in results:
            rows.append([n, label, "-", "-", "-", "-", rec.get("error") or "not localized"])
            continue
        est = to_gt_frame(Pose.from_quat_t(*results[n]), *sim)
        rot = float(gt_pose[n].angle_to(est))
        dc = float(gt_pose[n].center_distance_to(est))
        inl = max(rec.get("inliers", {}).values(), default=0)
        fpnp, pnp = rec.get("fpnp_success"), rec.get("pnp_success")
        status = "F-PnP" if fpnp else ("PnP" if pnp else "fallback")
        rows.append([n, label, f"{rot:.2f}", f"{dc / baseline:.3f}", f"{dc:.3f}", inl, status])
    return rows


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="lund_door folder")
    parser.add_argument("--work", type=Path, default=Path("outputs/own_data_lund"))
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument("--extractor", default="gnnet")
    parser.add_argument(
        "--no-exif-check",
        dest="exif_check",
        action="store_false",
        help="skip the second localization with the EXIF focal as --camera",
    )
    return parser.parse_args()


def _prepare_images(images: Path, work: Path, max_side: int) -> tuple[Path, Path, tuple]:
    """Downscaled copies of the mapping and query images: ``(mapping, queries, size)``."""
    shutil.rmtree(work, ignore_errors=True)
    mapping, queries = work / "mapping", work / "queries"
    mapping.mkdir(parents=True)
    queries.mkdir()
    for names, folder in ((MAPPING, mapping), (QUERIES, queries)):
        for n in names:
            size = downscale(images / n, folder / n, max_side)
    print(
        f"images: {len(MAPPING)} mapping + {len(QUERIES)} queries, downscaled to {size[0]}x"
        f"{size[1]} (from 1296x1936), EXIF kept\n"
    )
    return mapping, queries, size


def _localize_command(exe: str, out: Path, queries: Path, loc: Path, extractor: str) -> list:
    args = ["--map", out, "--queries", queries, "--out", loc, "--extractor", extractor]
    return [exe, "localize", *map(str, args)]


@dataclasses.dataclass
class _Alignment:
    """Similarity ``gt = s R sfm + t`` from the mapping images' camera centres."""

    s: float
    R: np.ndarray
    t: np.ndarray
    common: list[str]
    resid: np.ndarray  # centre residuals (GT units)
    baseline: float  # mean distance between consecutive GT centres
    gt_pose: dict[str, Pose]


def _align(gt, sfm) -> _Alignment:
    gt_pose = {im.name: Pose.from_colmap(im.cam_from_world()) for im in gt.images.values()}
    sfm_pose = {im.name: Pose.from_colmap(im.cam_from_world()) for im in sfm.images.values()}
    common = [n for n in MAPPING if n in sfm_pose]
    src = np.stack([sfm_pose[n].center().numpy() for n in common])
    dst = np.stack([gt_pose[n].center().numpy() for n in common])
    s, R, t = umeyama(src, dst)
    names = sorted(gt_pose)
    centres = np.stack([gt_pose[n].center().numpy() for n in names])
    baseline = float(np.linalg.norm(np.diff(centres, axis=0), axis=1).mean())
    resid = np.linalg.norm(dst - (s * src @ R.T + t), axis=1)
    return _Alignment(s, R, t, common, resid, baseline, gt_pose)


def main() -> None:
    args = _parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images, gt_dir = args.data / "images", args.data / "colmap_ground_truth"
    if not images.is_dir() or not gt_dir.is_dir():
        print(
            f"SKIP: Lund door data not found at {args.data.resolve()} (expected images/ and "
            "colmap_ground_truth/; see the data README)"
        )
        return
    work = args.work
    mapping, queries, size = _prepare_images(images, work, args.max_side)
    exe = str(Path(sys.executable).with_name("s2dloc"))
    out, loc, loc_exif = work / "map", work / "loc", work / "loc_exif"
    cmds = [
        [exe, "map", "--images", str(mapping), "--out", str(out), "--single-camera"],
        _localize_command(exe, out, queries, loc, args.extractor),
    ]
    times = {"map": run(cmds[0], work / "map.log"), "loc": run(cmds[1], work / "localize.log")}
    if args.exif_check:  # the same queries with the EXIF camera instead of the map's camera
        f = exif_focal(queries / QUERIES[0])
        camera = f"SIMPLE_RADIAL {size[0]} {size[1]} {f:.2f} {size[0] / 2} {size[1] / 2} 0"
        cache = loc / f"cache-{args.extractor}.h5"  # the reference features of the first run
        cmd = _localize_command(exe, out, queries, loc_exif, args.extractor)
        cmds.append(cmd + ["--camera", camera, "--cache", str(cache)])
        times["exif"] = run(cmds[2], work / "localize_exif.log")
    gt = pycolmap.Reconstruction(str(gt_dir))
    sfm = pycolmap.Reconstruction(str(out / "sfm"))
    al = _align(gt, sfm)
    sim = (al.s, al.R, al.t)
    rows = query_rows(loc, "map model", al.gt_pose, sim, al.baseline)
    if args.exif_check:
        rows += query_rows(loc_exif, "EXIF (--camera)", al.gt_pose, sim, al.baseline)
    print("\ncommands:")
    for c in cmds:
        print("  " + shlex.join(["s2dloc", *c[1:]]))
    _print_report(args, work, out, gt, sfm, al, size, times, queries)
    headers = ["query", "intrinsics", "rot err (deg)", "centre err / baseline"]
    headers += ["centre err (GT units)", "inliers", "result"]
    print("\n" + format_table(rows, headers))


def _print_report(args, work: Path, out: Path, gt, sfm, al: _Alignment, size, times, queries):
    """SfM summary, cameras, alignment residuals, timings and the query intrinsics used."""
    summ = json.loads((out / "summary.json").read_text())
    cam = next(iter(sfm.cameras.values()))
    gt_cam = next(iter(gt.cameras.values()))
    f_exif = exif_focal(queries / QUERIES[0])
    print(
        f"\nSfM: {summ['registered_images']}/{summ['images']} images registered, "
        f"{summ['points3D']} points, mean reprojection error "
        f"{summ['mean_reprojection_error']:.2f} px, mean track length "
        f"{summ['mean_track_length']:.2f}; `s2dloc map` {times['map']:.1f} s"
    )
    print(
        f"SfM camera {cam.model_name} {cam.width}x{cam.height} f={cam.params[0]:.1f}; ground "
        f"truth f scaled to this size {gt_cam.params[0] * size[1] / gt_cam.height:.1f}; "
        f"EXIF f {f_exif:.1f}"
    )
    resid, baseline = al.resid, al.baseline
    print(
        f"alignment (Umeyama, {len(al.common)} camera centres): scale {al.s:.4f}, centre "
        f"residual RMS {np.sqrt((resid**2).mean()) / baseline:.4f} baselines (max "
        f"{resid.max() / baseline:.4f}); baseline = {baseline:.3f} GT units"
    )
    if "exif" in times:
        t_exif = times["exif"]
        print(f"`s2dloc localize --camera` (EXIF focal): {t_exif:.1f} s (reference cache reused)")
    print(f"`s2dloc localize` ({args.extractor}): {times['loc']:.1f} s; query intrinsics:")
    loc_log = (work / "localize.log").read_text().splitlines()
    intrinsics = [ln for ln in loc_log if "intrinsics of" in ln]
    for ln in intrinsics or ["  (no intrinsics warning found in the log)"]:
        print("  " + ln.strip())


if __name__ == "__main__":
    main()
