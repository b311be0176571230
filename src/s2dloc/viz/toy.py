"""The F-PnP toy experiment with exact ground truth: a table of start and final errors and a
convergence plot (used by ``s2dloc toy`` and ``s2dloc demo``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from s2dloc.datasets.toy import MIN_POINTS, make_toy_problem, perturb
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.utils.table import format_table
from s2dloc.viz.fpnp_plots import plot_error_vs_iteration

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


def check_toy_args(points: int, trials: int) -> None:
    """Raise ``ValueError`` for too few points or trials."""
    if points < MIN_POINTS:
        raise ValueError(
            f"s2dloc toy --points must be >= {MIN_POINTS} (F-PnP needs at least "
            f"{MIN_POINTS} points), got {points}"
        )
    if trials < 1:
        raise ValueError(f"s2dloc toy --trials must be >= 1, got {trials}")


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


def run_toy(
    out: Path,
    angles: list[float],
    trials: int = 3,
    points: int = 1024,
    loss: str = "cauchy",
    seed: int = 0,
) -> Path:
    """Run the toy experiment: write ``out/toy_results.txt`` and the convergence plot, print
    the table; return the plot's path."""
    check_toy_args(points, trials)
    torch.manual_seed(seed)
    problem = make_toy_problem(seed=seed, num_points=points)
    ref, query = problem.features()
    solver = FeatureMetricPnP(loss=loss)
    pts, gt = problem.points3d.float(), problem.query_pose
    depth = problem.scene_depth
    rows, histories = [], {}
    # The first call compiles the solver's kernels (cached on disk afterwards): not timed.
    solver.refine(pts, ref, query, problem.camera, gt)
    for angle in angles:
        for trial in range(trials):
            # Translation matched to the rotation: the same image motion at the scene depth.
            init = perturb(gt, angle, depth * angle / 57.3 / 4, seed=1000 * trial + int(angle))
            tic = time.perf_counter()
            res = solver.refine(pts, ref, query, problem.camera, init)
            ms = 1000 * (time.perf_counter() - tic)
            if trial == 0:  # the history (for the plot) comes from the torch reference path
                hist = solver.refine(pts, ref, query, problem.camera, init, return_history=True)
                histories[f"{angle:g} deg"] = hist.history
            rows.append(_row(angle, trial, init, res, gt, depth, ms))
    table = format_table(rows, HEADERS)
    out.mkdir(parents=True, exist_ok=True)
    (out / "toy_results.txt").write_text(table + "\n")
    plot = plot_error_vs_iteration(
        histories,
        gt,
        out / "toy_convergence.png",
        title="F-PnP on the toy scene (photometric features)",
    )
    print(
        f"Toy scene: {len(pts)} points, mean depth {depth:.2f} m, "
        f"{problem.camera.model} {int(problem.camera.width)}x{int(problem.camera.height)}"
    )
    print(table)
    converged = sum(r[-1] == "yes" for r in rows)
    print(f"converged (< 0.1 deg): {converged}/{len(rows)}")
    print(f"wrote {out / 'toy_results.txt'} and {plot}")
    return plot
