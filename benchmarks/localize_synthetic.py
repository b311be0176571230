"""Localization recall on the synthetic world, queries under every non-reference condition
(dusk, night, snow, fog, foliage): PnP-RANSAC alone vs after F-PnP, learned (GN-Net) vs
photometric features.

"PnP" is the pipeline's pose before refinement (the PnP-RANSAC pose, or the best reference's pose
when PnP failed: flagged as fallback); "F-PnP" is the final pose. Recall at (0.25 m, 2 deg),
(0.5 m, 5 deg), (5 m, 10 deg) per condition. Run::

    .venv/bin/python benchmarks/localize_synthetic.py            # ~3-4 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.evaluation.recall import THRESHOLDS, pose_errors, recall_table
from s2dloc.geometry import Pose
from s2dloc.localization import Localizer, Map
from s2dloc.localization.config import settings
from s2dloc.localization.io import read_queries
from s2dloc.utils.table import format_table
from s2dloc.viz.localization_plots import matches_for_plot, plot_query
from s2dloc.viz.verdict import HEADERS as VERDICT_HEADERS
from s2dloc.viz.verdict import evaluate_run, write_run

ROOT = Path(__file__).resolve().parents[1]


def as_qt(pose) -> tuple[np.ndarray, np.ndarray]:
    return pose.quat().numpy(), pose.t.numpy()


def run(loc: Localizer, queries, gt: dict) -> tuple[dict, dict, list]:
    results = list(loc.localize_all(queries))
    before = {
        r.name: as_qt(r.pnp_pose if r.pnp_success else r.pose)
        for r in results
        if r.pose is not None
    }
    after = {r.name: as_qt(r.pose) for r in results if r.pose is not None}
    return recall_table(pose_errors(before, gt)), recall_table(pose_errors(after, gt)), results


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=list(PRESETS))
    parser.add_argument("--num-query", type=int, default=20, help="spread over the conditions")
    parser.add_argument(
        "--seed", type=int, default=0, help="world seed (0: the evaluation world; 1, 2: training)"
    )
    parser.add_argument("--extractors", nargs="+", default=["default", "gnnet", "photometric"])
    parser.add_argument("--num-refs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_localize_synthetic")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--conf", nargs="*", default=[], metavar="KEY=VALUE", help="localization settings"
    )
    return parser.parse_args()


def _rows(name: str, tab_pnp: dict, tab_fpnp: dict, keys: list[str]) -> list[list]:
    """Recall rows of one extractor: per condition, PnP then F-PnP."""
    rows = []
    for cond in tab_pnp:
        for stage, tab in (("PnP", tab_pnp), ("F-PnP", tab_fpnp)):
            row = tab[cond]
            rows.append(
                [
                    name,
                    cond,
                    stage,
                    row["count"],
                    f"{row['median_trans']:.3f}",
                    f"{row['median_rot_deg']:.2f}",
                    *(f"{row[k]:.1f}" for k in keys),
                ]
            )
    return rows


def _plot_night_query(path: Path, loc, map_, queries, results, gt: dict) -> None:
    """The first night query's matches and poses (or the first query's)."""
    night = next((r for r, q in zip(results, queries) if "night" in q.name), results[0])
    q = next(q for q in queries if q.name == night.name)
    plot_query(
        path,
        q.load(),
        q.camera,
        night,
        {n: map_.load_image(n) for n, _ in night.refs},
        matches_for_plot(night, map_),
        gt_pose=Pose.from_quat_t(*gt[q.name]),
    )


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    cfg = dataclasses.replace(PRESETS[args.preset], num_query=args.num_query, seed=args.seed)
    t0 = time.perf_counter()
    write_world(generate_world(cfg, progress=False), args.out / "world", progress=False)
    root = args.out / "world"
    map_ = Map.load(root)
    queries = read_queries(root / "queries_with_intrinsics.txt", root / "images")
    gt = read_poses(root / "poses_query.txt")
    print(
        f"world {args.preset}: {len(map_)} db images {cfg.width}x{cfg.height}, "
        f"{len(queries)} queries ({', '.join(cfg.query_conditions)}); "
        f"{time.perf_counter() - t0:.0f} s"
    )
    keys = [f"{t}m/{r}deg" for t, r in THRESHOLDS]
    rows, summary, verdicts = [], {}, []
    gt_poses = {n: Pose.from_quat_t(*v) for n, v in gt.items()}
    for name in args.extractors:
        t = time.perf_counter()
        conf = settings([*args.conf, f"retrieval.num_refs={args.num_refs}"], name)
        loc = Localizer(map_, conf, cache=args.out / f"cache-{name}.h5", progress=False)
        tab_pnp, tab_fpnp, results = run(loc, queries, gt)
        dt = time.perf_counter() - t
        n_pnp = sum(r.pnp_success for r in results)
        n_fpnp = sum(r.fpnp_success for r in results)
        inl = np.median([max(r.inliers.values(), default=0) for r in results])
        print(
            f"{name}: PnP succeeded {n_pnp}/{len(results)}, F-PnP accepted {n_fpnp}, median "
            f"best-ref inliers {inl:.0f}, {dt:.0f} s"
        )
        rows += _rows(name, tab_pnp, tab_fpnp, keys)
        summary[name] = {"PnP": tab_pnp, "F-PnP": tab_fpnp}
        run_dir = write_run(args.out / f"run-{name}", results, gt_poses, conf=loc.conf)
        verdicts.append(evaluate_run(run_dir, loc.thresholds))
        _plot_night_query(args.out / f"query-{name}.png", loc, map_, queries, results, gt)
    headers = ["features", "condition", "stage", "n", "med m", "med deg", *keys]
    print()
    print(format_table(rows, headers))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\nverdict (success flag; also: benchmarks/verdict.py OUT/run-*):")
    print(format_table(verdicts, VERDICT_HEADERS))
    print(f"\nfigures: {args.out}/query-<features>.png; total {time.perf_counter() - t0:.0f} s")
    print("command: .venv/bin/python " + shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]))


if __name__ == "__main__":
    main()
