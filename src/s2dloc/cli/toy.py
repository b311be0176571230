"""``s2dloc toy``: the F-PnP toy example with exact ground truth (table + convergence plot)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from s2dloc.datasets.toy import MIN_POINTS, make_toy_problem, perturb
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.utils.table import format_table
from s2dloc.viz.fpnp_plots import plot_error_vs_iteration

NAME = "toy"
HELP = "Run the F-PnP toy example (known ground truth) and plot its convergence."
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/toy"), help="output folder")
    parser.add_argument(
        "--angles",
        type=float,
        nargs="+",
        default=[2.0, 5.0, 10.0, 15.0],
        help="initial rotation errors in degrees",
    )
    parser.add_argument("--trials", type=int, default=3, help="random starts per angle")
    parser.add_argument(
        "--points", type=int, default=1024, help=f"3D points to align (>= {MIN_POINTS})"
    )
    parser.add_argument("--loss", default="cauchy")
    parser.add_argument("--seed", type=int, default=0)


HEADERS = [
    "start deg",
    "trial",
    "init rot [deg]",
    "init centre [% depth]",
    "final rot [deg]",
    "final centre [% depth]",
    "iters/level",
    "time [ms]",
    "converged",
]


def _check_args(args: argparse.Namespace) -> None:
    if args.points < MIN_POINTS:
        raise ValueError(
            f"s2dloc toy --points must be >= {MIN_POINTS} (F-PnP needs at least "
            f"{MIN_POINTS} points), got {args.points}"
        )
    if args.trials < 1:
        raise ValueError(f"s2dloc toy --trials must be >= 1, got {args.trials}")


def _row(angle: float, trial: int, init, res, gt, depth: float, ms: float) -> list:
    """One table row: start and final errors (centre errors in % of the scene depth)."""
    e0r, e0t = float(init.angle_to(gt)), float(init.center_distance_to(gt))
    e1r, e1t = float(res.pose.angle_to(gt)), float(res.pose.center_distance_to(gt))
    return [
        f"{angle:g}",
        trial,
        f"{e0r:.2f}",
        f"{100 * e0t / depth:.2f}",
        f"{e1r:.4f}",
        f"{100 * e1t / depth:.4f}",
        "/".join(str(int(i)) for i in res.iterations),
        f"{ms:.1f}",
        "yes" if bool(res.success) and e1r < 0.1 else "no",
    ]


def run(args: argparse.Namespace) -> int:
    _check_args(args)
    torch.manual_seed(args.seed)
    problem = make_toy_problem(seed=args.seed, num_points=args.points)
    ref, query = problem.features()
    solver = FeatureMetricPnP(loss=args.loss)
    points, gt = problem.points3d.float(), problem.query_pose
    depth = problem.scene_depth
    rows, histories = [], {}
    # The first call compiles the solver's kernels (cached on disk afterwards): not timed.
    solver.refine(points, ref, query, problem.camera, gt)
    for angle in args.angles:
        for trial in range(args.trials):
            # Translation matched to the rotation: the same image motion at the scene depth.
            init = perturb(gt, angle, depth * angle / 57.3 / 4, seed=1000 * trial + int(angle))
            tic = time.perf_counter()
            res = solver.refine(points, ref, query, problem.camera, init)
            ms = 1000 * (time.perf_counter() - tic)
            if trial == 0:  # the history (for the plot) comes from the torch reference path
                hist = solver.refine(points, ref, query, problem.camera, init, return_history=True)
                histories[f"{angle:g} deg"] = hist.history
            rows.append(_row(angle, trial, init, res, gt, depth, ms))
    table = format_table(rows, HEADERS)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "toy_results.txt").write_text(table + "\n")
    plot = plot_error_vs_iteration(
        histories,
        gt,
        args.out / "toy_convergence.png",
        title="F-PnP on the toy scene (photometric features)",
    )
    print(
        f"Toy scene: {len(points)} points, mean depth {depth:.2f} m, "
        f"{problem.camera.model} {int(problem.camera.width)}x{int(problem.camera.height)}"
    )
    print(table)
    converged = sum(r[-1] == "yes" for r in rows)
    print(f"converged (< 0.1 deg): {converged}/{len(rows)}")
    print(f"wrote {args.out / 'toy_results.txt'} and {plot}")
    return 0
