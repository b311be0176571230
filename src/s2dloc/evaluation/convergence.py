"""Convergence-basin sweeps: how often a pose refiner recovers the truth from perturbed starts.

For each initial rotation error ``theta`` the start pose is ``exp(delta) @ T_true`` with a
random rotation axis (angle ``theta``) and a random translation direction of norm
``t = ratio * scene_depth * tan(theta)``: a rotation by ``theta`` about the camera centre and a
sideways translation by ``t`` shift the image of the scene (at ``scene_depth``) by about the same
amount, ``f tan(theta)`` pixels, so both parts of the perturbation are equally hard. Trial ``k``
uses the same random directions at every angle (common random numbers across angles).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from s2dloc.datasets.toy import perturb
from s2dloc.fpnp.start_search import search_and_refine
from s2dloc.geometry import Camera, Pose

logger = logging.getLogger(__name__)


@dataclass
class BasinProblem:
    """One alignment problem with known ground truth.

    Attributes:
        points3d: ``(N, 3)`` world points.
        ref_features: per level ``(N, C_l)``.
        query_features: per level ``(C_l, H_l, W_l)``.
        camera: unbatched full-resolution query camera.
        true_pose: unbatched ground-truth ``cam_from_world`` of the query.
        scene_depth: typical depth of the points in the query (scales translations).
    """

    points3d: torch.Tensor
    ref_features: list[torch.Tensor]
    query_features: list[torch.Tensor]
    camera: Camera
    true_pose: Pose
    scene_depth: float
    name: str = ""
    # Optional: where the points were observed in a reference view (for 2D-2D checks).
    ref_pixels: torch.Tensor | None = None
    ref_camera: Camera | None = None
    ref_pose: Pose | None = None


@dataclass
class SuccessCriterion:
    """Success: rotation error below ``max_rotation_deg`` and camera-centre error below
    ``max_translation`` (a fraction of the scene depth if ``relative``, else in map units)."""

    max_rotation_deg: float = 0.5
    max_translation: float = 0.01
    relative: bool = True

    def __call__(self, rot_deg: np.ndarray, trans: np.ndarray, depth: np.ndarray) -> np.ndarray:
        limit = self.max_translation * (depth if self.relative else 1.0)
        return (rot_deg < self.max_rotation_deg) & (trans < limit)

    def describe(self) -> str:
        t = (
            f"{100 * self.max_translation:g}% of depth"
            if self.relative
            else f"{self.max_translation:g}"
        )
        return f"rot < {self.max_rotation_deg:g} deg and trans < {t}"


@dataclass
class BasinRow:
    """Statistics at one initial rotation error over all problems and trials.

    Errors are arrays ``(trials_total,)``: rotation in degrees, translation as camera-centre
    distance (map units); ``depth`` is each trial's scene depth.
    """

    angle_deg: float
    success_rate: float
    seconds_per_refinement: float
    rot_init: np.ndarray = field(repr=False)
    trans_init: np.ndarray = field(repr=False)
    rot_final: np.ndarray = field(repr=False)
    trans_final: np.ndarray = field(repr=False)
    depth: np.ndarray = field(repr=False)
    success: np.ndarray = field(repr=False)
    solver_ok: np.ndarray = field(repr=False)  # the solver's own success flags

    @property
    def accepted(self) -> int:
        """Trials the solver flagged successful."""
        return int(self.solver_ok.sum())

    @property
    def accepted_right(self) -> int:
        """Trials the solver flagged successful that meet the success criterion."""
        return int((self.solver_ok & self.success).sum())

    def accepted_beyond(self, rot_deg: float, trans: float) -> int:
        """Trials the solver flagged successful that end more than ``rot_deg`` degrees or
        ``trans`` map units from the truth (wrong answers, not merely imprecise ones)."""
        off = (self.rot_final > rot_deg) | (self.trans_final > trans)
        return int((self.solver_ok & off).sum())

    @property
    def trials(self) -> int:
        return int(self.success.size)

    @property
    def improved_rate(self) -> float:
        """Fraction of trials whose final rotation and translation errors beat the initial ones."""
        return float(
            np.mean((self.rot_final < self.rot_init) & (self.trans_final < self.trans_init))
        )

    def median(self, name: str) -> float:
        """Median of one of ``rot_init``, ``trans_init``, ``rot_final``, ``trans_final``."""
        return float(np.median(getattr(self, name)))


def perturbation_translation(angle_deg: float, scene_depth: float, ratio: float = 1.0) -> float:
    """Translation norm matched to a rotation: ``ratio * scene_depth * tan(angle)``."""
    return ratio * scene_depth * math.tan(math.radians(angle_deg))


Solver = Callable[[BasinProblem, Pose], tuple[Pose, torch.Tensor]]


def fpnp_solver(
    solver, batch_size: int = 16, start_search: tuple[float, int] | None = None, keep: int = 1
) -> Solver:
    """Wrap a :class:`~s2dloc.fpnp.FeatureMetricPnP` as a sweep solver.

    The returned callable refines a batch of initial poses ``(B,)`` of one problem with
    ``refine_batch`` in chunks of ``batch_size`` and returns poses ``(B,)`` and success ``(B,)``.
    ``start_search = (step_deg, steps)`` searches a yaw/pitch grid around each start first and
    refines from its ``keep`` best candidates, keeping the best refinement
    (:func:`~s2dloc.fpnp.start_search.search_and_refine`).
    """

    def solve(problem: BasinProblem, init: Pose) -> tuple[Pose, torch.Tensor]:
        poses, flags = [], []
        for s in range(0, len(init), batch_size):
            chunk = init[s : s + batch_size]
            B = len(chunk)
            cam = problem.camera
            args = (
                problem.points3d[None].expand(B, -1, -1),
                [f[None].expand(B, -1, -1) for f in problem.ref_features],
                [f[None].expand(B, -1, -1, -1) for f in problem.query_features],
                Camera(cam.model, cam.size[None].expand(B, -1), cam.params[None].expand(B, -1)),
            )
            if start_search is None:
                res = solver.refine_batch(*args, chunk)
            else:
                res = search_and_refine(solver, *args, chunk, *start_search, keep=keep)
            poses.append(res.pose.to(init.dtype))
            flags.append(res.success)
        pose = Pose(torch.cat([p.R for p in poses]), torch.cat([p.t for p in poses]))
        return pose, torch.cat(flags)

    return solve


def convergence_sweep(
    problems: Callable[[int], BasinProblem] | Sequence[BasinProblem],
    solve: Solver,
    angles_deg: Sequence[float],
    trials: int = 10,
    num_problems: int | None = None,
    seed: int = 0,
    criterion: SuccessCriterion | None = None,
    translation_ratio: float = 1.0,
    progress: bool = True,
) -> list[BasinRow]:
    """Success rate and final errors per initial rotation error.

    Args:
        problems: a sequence of problems, or a callable ``index -> BasinProblem`` (built lazily,
            one at a time) together with ``num_problems``.
        solve: ``(problem, init_poses (B,)) -> (poses (B,), solver_success (B,))``, e.g.
            :func:`fpnp_solver`.
        angles_deg: initial rotation errors; translations follow :func:`perturbation_translation`.
        trials: random starts per problem and angle, seeded by ``(seed, problem, trial)``.
        criterion: success criterion (default: 0.5 deg and 1% of the scene depth).

    Returns:
        One :class:`BasinRow` per angle, in the order given.
    """
    criterion = criterion or SuccessCriterion()
    get, num_problems = _problem_getter(problems, num_problems)
    if num_problems <= 0 or trials <= 0 or not len(angles_deg):
        raise ValueError(
            f"Need problems, trials and angles, got {num_problems}, {trials}, {list(angles_deg)}"
        )
    runs: dict[float, list[_Trials]] = {a: [] for a in angles_deg}
    bar = tqdm(total=num_problems * len(angles_deg), desc="basin", disable=not progress)
    for pi in range(num_problems):
        problem = get(pi)
        for angle in angles_deg:
            seeds = [seed * 1_000_003 + pi * 1009 + k for k in range(trials)]
            runs[angle].append(_run_trials(problem, solve, angle, seeds, translation_ratio))
            bar.update()
    bar.close()
    return [_basin_row(angle, runs[angle], criterion) for angle in angles_deg]


def _problem_getter(problems, num_problems: int | None):
    """``(index -> problem, number of problems)`` for a sequence or a lazy callable."""
    if callable(problems) and not isinstance(problems, Sequence):
        if num_problems is None:
            raise ValueError("num_problems is required when problems is a callable")
        return problems, num_problems
    return problems.__getitem__, len(problems) if num_problems is None else num_problems


@dataclass
class _Trials:
    """Errors of the trials of one problem at one angle, each ``(trials,)``."""

    rot_init: np.ndarray
    trans_init: np.ndarray
    rot_final: np.ndarray
    trans_final: np.ndarray
    depth: np.ndarray
    solver_ok: np.ndarray
    seconds_per_trial: float


def _run_trials(
    problem: BasinProblem, solve: Solver, angle: float, seeds: list[int], ratio: float
) -> _Trials:
    """Refine one problem from a start per seed at rotation error ``angle`` (degrees)."""
    truth = problem.true_pose.double()
    t_norm = perturbation_translation(angle, problem.scene_depth, ratio)
    init = Pose.stack([perturb(truth, angle, t_norm, s) for s in seeds])
    start = time.perf_counter()
    final, ok = solve(problem, init.to(problem.points3d.dtype))
    elapsed = time.perf_counter() - start
    final = final.double()
    return _Trials(
        init.angle_to(truth).numpy(),
        init.center_distance_to(truth).numpy(),
        final.angle_to(truth).numpy(),
        final.center_distance_to(truth).numpy(),
        np.full(len(seeds), problem.scene_depth),
        ok.cpu().numpy().astype(bool),
        elapsed / len(seeds),
    )


def _basin_row(angle: float, runs: list[_Trials], criterion: SuccessCriterion) -> BasinRow:
    """Pool the trials of all problems at one angle."""

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(r, name) for r in runs])

    rot_final, trans_final, depth = cat("rot_final"), cat("trans_final"), cat("depth")
    success = criterion(rot_final, trans_final, depth)
    logger.info("basin %.1f deg: success %.2f (%s)", angle, success.mean(), criterion.describe())
    return BasinRow(
        float(angle),
        float(success.mean()),
        float(np.mean([r.seconds_per_trial for r in runs])),
        cat("rot_init"),
        cat("trans_init"),
        rot_final,
        trans_final,
        depth,
        success,
        cat("solver_ok"),
    )
