"""The coarse start search: exact grid, and the truth recovered from a start one grid step
(or two) away in yaw and pitch, on exact problems with known ground truth."""

from __future__ import annotations

import pytest
import torch

from s2dloc.evaluation.convergence import BasinProblem, fpnp_solver
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.fpnp.start_search import search_start, yaw_pitch_grid
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
    start = search_start(
        batch.points, batch.refs, batch.maps, batch.camera, Pose(R0, t0), step, steps=2
    )
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
