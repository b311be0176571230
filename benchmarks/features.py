"""Feature comparison with F-PnP on held-out conditions: success rate vs initial error.

Synthetic (default): queries of an evaluation world (street scene, seed 0, never used for
training) under the held-out conditions (night, snow) are aligned against their nearest
reference-condition database image; points are lifted from the reference depth.
Fountain (``--dataset fountain``, real RGB-D): frame i (as captured) against frame i+1 with a
night-like or snow-like appearance change applied, points lifted from frame i's depth; the
ground truth is only ~1 deg / 2 cm accurate, so success there is < 2 deg and < 5 cm.
Extractors: photometric alignment, the untrained network, and trained checkpoints.

    python benchmarks/features.py [--extractors photometric gnnet-untrained gnnet]
                                  [--conditions night snow] [--size 320 240]
    python benchmarks/features.py --dataset fountain
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.fountain import FountainDataset
from s2dloc.evaluation.convergence import SuccessCriterion, convergence_sweep, fpnp_solver
from s2dloc.evaluation.problems import lifted_problem, synthetic_problems
from s2dloc.features.registry import load_extractor_or_baseline
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.training.data import synthetic_world
from s2dloc.utils.table import format_table


def fountain_problems(frames, extractor, conditions, num_points: int, count: int) -> list:
    """Pairs (i, i+1) spread over the sequence; the query frame gets a condition change."""
    step = max(1, (len(frames) - 1) // count)
    problems = []
    for k, i in enumerate(range(0, len(frames) - 1, step)[:count]):
        cond = conditions[k % len(conditions)]
        query = frames[i + 1]
        image = build_augmentation(cond, seed=k)(query.image.astype(np.float32) / 255)
        query = dataclasses.replace(query, image=(255 * image).round().astype(np.uint8))
        problems.append(
            lifted_problem(
                frames[i], query, extractor, num_points, seed=k, name=f"{i}->{i + 1} {cond}"
            )
        )
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extractors", nargs="+", default=["photometric", "gnnet-untrained", "gnnet"]
    )
    parser.add_argument("--conditions", nargs="+", default=["night", "snow"])
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240])
    parser.add_argument("--angles", type=float, nargs="+", default=[2, 5, 10, 15, 20, 30])
    parser.add_argument("--problems", type=int, default=12)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--dataset", choices=["synthetic", "fountain"], default="synthetic")
    parser.add_argument("--fountain", default="../shared/data/fountain_rgbd")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.dataset == "synthetic":
        world = synthetic_world("street", 0, tuple(args.conditions), tuple(args.size), num=24)
        # The benchmark's finest localization threshold, and a strict depth-relative one.
        criteria = [SuccessCriterion(2.0, 0.25, relative=False), SuccessCriterion(0.5, 0.01)]
    else:
        frames = list(FountainDataset(args.fountain))
        criteria = [SuccessCriterion(2.0, 0.05, relative=False)]
    solve = fpnp_solver(FeatureMetricPnP())
    tables = [({}, {}) for _ in criteria]
    for name in args.extractors:
        tic = time.perf_counter()
        extractor = load_extractor_or_baseline(name)
        if args.dataset == "synthetic":
            problems = synthetic_problems(
                world, extractor, tuple(args.conditions), args.points, args.problems
            )
        else:
            problems = fountain_problems(
                frames, extractor, args.conditions, args.points, args.problems
            )
        rows = convergence_sweep(problems, solve, args.angles, trials=args.trials, progress=False)
        for criterion, (table, medians) in zip(criteria, tables):
            success = [criterion(r.rot_final, r.trans_final, r.depth) for r in rows]
            table[name] = [f"{100 * s.mean():.0f}%" for s in success]
            errs = np.concatenate([r.rot_final[s] for r, s in zip(rows, success)])
            medians[name] = float(np.median(errs)) if errs.size else float("nan")
        print(f"  {name}: {len(problems)} problems, {time.perf_counter() - tic:.0f} s", flush=True)
    size = "640x480" if args.dataset == "fountain" else f"{args.size[0]}x{args.size[1]}"
    headers = ["extractor", *[f"{a:g} deg" for a in args.angles], "median rot err of successes"]
    for criterion, (table, medians) in zip(criteria, tables):
        print(
            f"\n{args.dataset}: F-PnP success ({criterion.describe()}), conditions "
            f"{args.conditions}, {len(problems)} problems x {args.trials} starts, {size}:"
        )
        rows = [[n, *table[n], f"{medians[n]:.3f} deg"] for n in args.extractors]
        print(format_table(rows, headers))


if __name__ == "__main__":
    main()
