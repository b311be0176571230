"""``s2dloc refine`` from priors far from the truth: the default settings against a preset.

Every query of a synthetic world (by default the demo's, ``outputs/demo/world``, written by
``make demo``) gets a prior: its true pose rotated by ``--angles`` degrees about a random axis
and shifted by ``--shift`` world units per 10 degrees in a random direction (seeded per query).
Each preset refines the priors (F-PnP only: no retrieval or matching). Columns: queries,
accepted (``success``), accepted within (0.25, 2 deg), accepted beyond (1, 5 deg) (world
units; the verdict tables' :data:`~s2dloc.viz.verdict.RECALL_AT` and ``PRECISION_AT``), and
seconds per query.

    .venv/bin/python benchmarks/refine_far.py [--world outputs/demo/world] [--angles 10 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.datasets.toy import perturb
from s2dloc.geometry import Pose
from s2dloc.localization import Localizer, Map
from s2dloc.localization.io import read_queries
from s2dloc.utils.table import format_table
from s2dloc.viz.verdict import PRECISION_AT, RECALL_AT, within

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--world", type=Path, default=ROOT / "outputs" / "demo" / "world")
    p.add_argument("--angles", type=float, nargs="+", default=[10.0, 20.0])
    p.add_argument("--shift", type=float, default=0.5, help="world units per 10 deg")
    p.add_argument("--presets", nargs="+", default=["default", "far-prior"])
    p.add_argument("--extractor", default="default")
    p.add_argument("--cache-dir", type=Path, default=ROOT / "outputs" / "refine_far")
    args = p.parse_args()
    if not (args.world / "poses_query.txt").exists():
        sys.exit(f"error: {args.world} holds no synthetic world (run `make demo` or s2dloc synth)")
    world_map = Map.load(args.world)
    queries = read_queries(args.world / "queries_with_intrinsics.txt", args.world / "images")
    gt = {n: Pose.from_quat_t(*v) for n, v in read_poses(args.world / "poses_query.txt").items()}
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for preset in args.presets:
        cache = args.cache_dir / f"cache-{args.extractor}-{preset}.h5"
        conf = {"extractor": args.extractor}
        loc = Localizer(world_map, conf, preset=preset, cache=cache, progress=False)
        for angle in args.angles:
            accepted = right = wrong = 0
            start = time.perf_counter()
            for i, q in enumerate(queries):
                truth = gt[q.name].double()
                q.prior = perturb(truth, angle, args.shift * angle / 10.0, 1000 + i)
                r = loc.refine(q)
                if not r.success:
                    continue
                accepted += 1
                right += within(truth, r.pose.double(), RECALL_AT)
                wrong += not within(truth, r.pose.double(), PRECISION_AT)
            seconds = (time.perf_counter() - start) / len(queries)
            rows.append(
                [preset, f"{angle:g}", len(queries), accepted, right, wrong, f"{seconds:.2f}"]
            )
            print(f"  {preset} from {angle:g} deg: done", flush=True)
    heads = [
        "preset",
        "prior (deg)",
        "queries",
        "accepted",
        "within .25/2",
        "beyond 1/5",
        "s/query",
    ]
    print(format_table(rows, heads))


if __name__ == "__main__":
    main()
