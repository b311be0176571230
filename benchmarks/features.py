"""Feature comparison with F-PnP on held-out conditions: success rate vs initial error.

Queries of an evaluation world (street scene, seed 0, never used for training) under the
held-out conditions (night, snow) are aligned against their nearest reference-condition
database image; points are lifted from the reference depth. Extractors: photometric
alignment, the untrained network, and trained checkpoints.

    python benchmarks/features.py [--extractors photometric gnnet-untrained gnnet]
                                  [--conditions night snow] [--size 320 240]
"""

from __future__ import annotations

import argparse
import time

import torch

from s2dloc.evaluation.convergence import SuccessCriterion, convergence_sweep, fpnp_solver
from s2dloc.evaluation.problems import synthetic_problems
from s2dloc.features.registry import load_extractor
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.training.data import synthetic_world
from s2dloc.utils.table import format_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extractors", nargs="+",
                        default=["photometric", "gnnet-untrained", "gnnet"])  # fmt: skip
    parser.add_argument("--conditions", nargs="+", default=["night", "snow"])
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240])
    parser.add_argument("--angles", type=float, nargs="+", default=[2, 5, 10, 15, 20, 30])
    parser.add_argument("--problems", type=int, default=12)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--points", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = synthetic_world("street", 0, tuple(args.conditions), tuple(args.size), num=24)
    solve = fpnp_solver(FeatureMetricPnP())
    criterion = SuccessCriterion()
    table, medians = {}, {}
    for name in args.extractors:
        tic = time.perf_counter()
        extractor = load_extractor(name)
        problems = synthetic_problems(world, extractor, tuple(args.conditions), args.points,
                                      args.problems)  # fmt: skip
        rows = convergence_sweep(problems, solve, args.angles, trials=args.trials,
                                 criterion=criterion, progress=False)  # fmt: skip
        table[name] = [f"{100 * r.success_rate:.0f}%" for r in rows]
        ok = [r for r in rows if r.success.any()]
        medians[name] = min((r.rot_final[r.success].mean() for r in ok), default=float("nan"))
        print(f"  {name}: {len(problems)} problems, {time.perf_counter() - tic:.0f} s", flush=True)
    headers = ["extractor", *[f"{a:g} deg" for a in args.angles], "mean rot err of successes"]
    rows = [[n, *table[n], f"{medians[n]:.3f} deg"] for n in args.extractors]
    print(
        f"F-PnP success ({criterion.describe()}), conditions {args.conditions}, "
        f"{args.problems} problems x {args.trials} starts, {args.size[0]}x{args.size[1]}:"
    )
    print(format_table(rows, headers))


if __name__ == "__main__":
    main()
