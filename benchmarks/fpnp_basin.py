"""Convergence basin of F-PnP on the toy scene with photometric features.

Success rate vs initial rotation error (translation scaled to match, see
``s2dloc.evaluation.convergence``), finest level only vs coarse-to-fine pyramids, with the
median final errors. Run::

    .venv/bin/python benchmarks/fpnp_basin.py            # ~30-60 s on 2 CPU cores
    .venv/bin/python benchmarks/fpnp_basin.py --trials 4 --angles 2 10   # quick look
"""

from __future__ import annotations

import argparse
import logging
import time
from functools import partial

import torch

from s2dloc.datasets.toy import make_toy_problem
from s2dloc.evaluation import (
    BasinProblem,
    SuccessCriterion,
    convergence_sweep,
    fpnp_solver,
    perturbation_translation,
)
from s2dloc.features import photometric_pyramid
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.utils.table import format_table

# name -> (strides, blur sigma per unit stride); (1, 2, 4) with blur 1 is the library default.
CONFIGS = {
    "finest": ((1,), 1.0),
    "c2f (1,2,4)": ((1, 2, 4), 1.0),
    "c2f (1,..,8)": ((1, 2, 4, 8), 1.0),
    "c2f (1,..,16)": ((1, 2, 4, 8, 16), 1.0),
    "c2f (1,..,16) blur2": ((1, 2, 4, 8, 16), 2.0),
}
DEFAULT_CONFIGS = ["finest", "c2f (1,2,4)", "c2f (1,..,16)", "c2f (1,..,16) blur2"]


def toy_problems(seeds: list[int], strides: tuple[int, ...], blur: float) -> list[BasinProblem]:
    """One toy problem per scene seed, with photometric features (reference from its image)."""
    out = []
    for seed in seeds:
        pb = make_toy_problem(seed=seed)
        ref, query = pb.features(extractor=partial(photometric_pyramid, strides=strides, blur=blur))
        out.append(
            BasinProblem(
                pb.points3d.float(),
                ref,
                query,
                pb.camera,
                pb.query_pose,
                pb.scene_depth,
                f"toy{seed}",
            )
        )
    return out


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--angles", type=float, nargs="+", default=[2, 5, 10, 15, 20, 30])
    parser.add_argument("--trials", type=int, default=24, help="random starts per scene and angle")
    parser.add_argument("--scenes", type=int, nargs="+", default=[0, 1], help="toy scene seeds")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--ratio", type=float, default=1.0, help="t = ratio * depth * tan(angle)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    return parser.parse_args()


def main() -> None:
    args = _parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    criterion = SuccessCriterion(max_rotation_deg=0.5, max_translation=0.01, relative=True)
    solver = fpnp_solver(FeatureMetricPnP(loss="cauchy", max_iterations=50), args.batch)

    start = time.perf_counter()
    results, depth = {}, None
    for name in args.configs:
        problems = toy_problems(args.scenes, *CONFIGS[name])
        depth = sum(p.scene_depth for p in problems) / len(problems)
        results[name] = convergence_sweep(
            problems,
            solver,
            args.angles,
            args.trials,
            criterion=criterion,
            translation_ratio=args.ratio,
            progress=True,
        )
    total = time.perf_counter() - start
    _report(args, results, depth, criterion)
    print(f"total {total:.0f} s with {args.threads} threads")


def _report(args: argparse.Namespace, results: dict, depth: float, criterion) -> None:
    """Success rates, median final errors and time per refinement, per config and angle."""
    n = len(args.scenes) * args.trials
    print(
        f"\nF-PnP convergence basin, toy scene(s) {args.scenes}, photometric features "
        f"(level s: sigma = blur * s), {n} starts per angle, Cauchy loss"
    )
    print(
        f"init: rotation theta about a random axis + translation {args.ratio:g} * depth * "
        f"tan(theta) in a random direction (mean scene depth {depth:.2f})"
    )
    print(f"success: {criterion.describe()}\n")
    headers = ["init rot", "init t"] + list(args.configs)
    rows = []
    for i, angle in enumerate(args.angles):
        t = perturbation_translation(angle, depth, args.ratio)
        rows.append(
            [f"{angle:g} deg", f"{t:.2f}"]
            + [f"{100 * results[c][i].success_rate:.0f}%" for c in args.configs]
        )
    print("Success rate")
    print(format_table(rows, headers))
    rows = []
    for i, angle in enumerate(args.angles):
        cells = []
        for c in args.configs:
            r = results[c][i]
            cells.append(
                f"{r.median('rot_final'):.3g} / {100 * r.median('trans_final') / depth:.2g}%"
            )
        rows.append([f"{angle:g} deg", *cells])
    print("\nMedian final error: rotation (deg) / camera-centre distance (% of depth)")
    print(format_table(rows, ["init rot", *args.configs]))
    ms = {
        c: 1000 * sum(r.seconds_per_refinement for r in results[c]) / len(args.angles)
        for c in args.configs
    }
    print(
        "\nmean ms per refinement (batched, "
        + str(args.batch)
        + " per call): "
        + ", ".join(f"{c} {v:.0f}" for c, v in ms.items())
    )


if __name__ == "__main__":
    main()
