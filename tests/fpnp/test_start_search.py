"""The coarse start search: exact grid, and the truth recovered from a start one grid step
(or two) away in yaw and pitch, on exact problems with known ground truth."""

from __future__ import annotations

import pytest
import torch

from s2dloc.evaluation.convergence import BasinProblem, fpnp_solver
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.fpnp.result import FPnPResult
from s2dloc.fpnp.start_search import (
    best_result,
    search_and_refine,
    start_candidates,
    yaw_pitch_grid,
)
from s2dloc.geometry import Pose

from ._fuzz import well_posed


def test_grid_is_yaw_then_pitch_with_the_identity_first():
    grid = yaw_pitch_grid(10.0, 1)
    assert grid.shape == (9, 3, 3)
    torch.testing.assert_close(grid[0], torch.eye(3, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand(9, 3, 3)
    torch.testing.assert_close(grid @ grid.transpose(1, 2), eye)
    angles = torch.rad2deg(torch.arccos(((grid.diagonal(0, 1, 2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert sorted(round(float(a), 6) for a in angles[1:5]) == [10.0] * 4  # one axis first
    with pytest.raises(ValueError, match="steps"):
        yaw_pitch_grid(0.0, 2)


@pytest.mark.parametrize("k", [2, 11, 24])
def test_recovers_the_truth_from_a_rotated_start(k):
    """A start rotated about the camera centre by the inverse of grid entry ``k`` (up to 12 deg
    in yaw and pitch with 6 deg steps): the search returns the truth."""
    step, batch = 6.0, well_posed(0, B=4, N=256, C=8)
    rot = yaw_pitch_grid(step, 2)
    R0 = rot[k].T @ batch.truth.R
    t0 = (rot[k].T @ batch.truth.t[..., None])[..., 0]
    assert Pose(R0, t0).angle_to(batch.truth).min() > step - 1e-6
    start = start_candidates(
        batch.points, batch.refs, batch.maps, batch.camera, Pose(R0, t0), step, steps=2
    )[:, 0]
    assert start.angle_to(batch.truth).max() < 1e-6
    assert start.center_distance_to(batch.truth).max() < 1e-6


def test_sweep_solver_searches_before_refining():
    """``fpnp_solver(start_search=...)`` refines from the searched start: exact truth from a
    start 12 deg away in yaw and pitch."""
    step, batch = 6.0, well_posed(1, B=2, N=256, C=8)
    problem = BasinProblem(
        batch.points[0],
        [r[0] for r in batch.refs],
        [m[0] for m in batch.maps],
        batch.camera[0],
        batch.truth[0],
        4.0,
    )
    rot = yaw_pitch_grid(step, 2)[-1]  # (+2, +2) steps
    truth = batch.truth[0]
    init = Pose.stack([Pose(rot.T @ truth.R, rot.T @ truth.t)] * 2)
    pose, ok = fpnp_solver(FeatureMetricPnP(), start_search=(step, 2))(problem, init.float())
    assert ok.all()
    assert pose.double().angle_to(truth).max() < 1e-2


def test_candidates_are_the_grid_ranked_by_score():
    """``start_candidates`` ranks the whole grid by the coarse score: its first candidate is
    the best one alone, and with ``keep`` = the grid size it holds every grid pose once."""
    step, batch = 6.0, well_posed(2, B=2, N=128, C=8)
    rot = yaw_pitch_grid(step, 1)
    init = Pose(rot[3].T @ batch.truth.R, (rot[3].T @ batch.truth.t[..., None])[..., 0])
    args = (batch.points, batch.refs, batch.maps, batch.camera, init, step, 1)
    ranked = start_candidates(*args, keep=len(rot))
    assert ranked.R.shape == (2, 9, 3, 3)
    best = start_candidates(*args)[:, 0]
    torch.testing.assert_close(ranked.R[:, 0], best.R)
    torch.testing.assert_close(ranked.R[:, 0], batch.truth.R)
    expected = rot[None] @ init.R[:, None]
    for b in range(2):
        found = (ranked.R[b][:, None] - expected[b][None]).flatten(2).abs().amax(-1)
        assert sorted(found.argmin(1).tolist()) == list(range(9))
    with pytest.raises(ValueError, match="keep"):
        start_candidates(*args, keep=10)


def _result(B: int, success, ratio, shift: float) -> FPnPResult:
    """A batch result whose poses are translations by ``shift`` (which result a query took)."""
    t = torch.full((B, 3), shift, dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64).expand(B, 3, 3)
    return FPnPResult(
        pose=Pose(R, t),
        success=torch.tensor(success),
        iterations=torch.full((B, 2), int(shift)),
        cost_init=torch.full((B,), shift),
        cost_final=torch.full((B,), shift),
        num_valid=torch.full((B,), int(shift)),
        covariance=torch.full((B, 6, 6), shift),
        message=[f"{shift}"] * B,
        information=torch.full((B,), shift),
        match_ratio=torch.tensor(ratio, dtype=torch.float64),
    )


def test_best_result_is_the_successful_one_matching_best():
    """Per query: the successful result with the lowest match ratio; a NaN ratio never wins;
    the best-scored start (index 0) when none succeeded; ``pick`` takes every field from it."""
    results = [
        _result(4, [True, False, False, True], [0.5, 0.2, 0.9, float("nan")], 0.0),
        _result(4, [True, True, False, True], [0.4, 0.6, 0.1, 0.7], 1.0),
        _result(4, [True, True, False, False], [0.45, 0.3, 0.2, 0.1], 2.0),
    ]
    index = best_result(results)
    assert index.tolist() == [1, 2, 0, 1]
    picked = FPnPResult.pick(results, index)
    assert picked.pose.t[:, 0].tolist() == [1.0, 2.0, 0.0, 1.0]
    assert picked.success.tolist() == [True, True, False, True]
    assert picked.match_ratio.tolist() == [0.4, 0.3, 0.9, 0.7]
    assert picked.message == ["1.0", "2.0", "0.0", "1.0"]
    assert picked.iterations[:, 0].tolist() == [1, 2, 0, 1]
    assert picked.covariance[:, 5, 5].tolist() == [1.0, 2.0, 0.0, 1.0]
    assert picked.history is None


class _FailFirstStart:
    """A solver whose refinement from the best-scored candidate always fails (as when the
    coarse score prefers a wrong place): only the later candidates can give the answer."""

    def __init__(self):
        self.solver, self.calls = FeatureMetricPnP(), 0

    def refine_batch(self, *args, **kwargs):
        result = self.solver.refine_batch(*args, **kwargs)
        if self.calls == 0:
            result.success = torch.zeros_like(result.success)
        self.calls += 1
        return result


def test_search_and_refine_falls_back_on_the_next_candidates():
    """With the best candidate's refinement failing, three kept starts still reach the truth
    from 12 deg away (the next candidates are one grid step off), one start does not."""
    step, batch = 6.0, well_posed(3, B=2, N=256, C=8)
    rot = yaw_pitch_grid(step, 2)[-1]
    init = Pose(rot.T @ batch.truth.R, (rot.T @ batch.truth.t[..., None])[..., 0])
    args = (batch.points, batch.refs, batch.maps, batch.camera, init.float(), step, 2)
    one = search_and_refine(_FailFirstStart(), *args, keep=1)
    assert not one.success.any()
    three = search_and_refine(_FailFirstStart(), *args, keep=3)
    assert three.success.all()
    assert three.pose.double().angle_to(batch.truth).max() < 1e-2
    plain = search_and_refine(FeatureMetricPnP(), *args, keep=3)
    assert plain.success.all()
    assert plain.pose.double().angle_to(batch.truth).max() < 1e-2
