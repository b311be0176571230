"""Convergence-basin sweep: known success rates with stand-in solvers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2dloc.evaluation.convergence import (
    BasinProblem,
    SuccessCriterion,
    convergence_sweep,
    perturbation_translation,
)
from s2dloc.geometry import Camera, Pose


def _problem(depth: float = 4.0) -> BasinProblem:
    truth = Pose.exp(torch.tensor([0.1, -0.2, 0.3, 0.05, 0.02, -0.1], dtype=torch.float64))
    camera = Camera.from_colmap("PINHOLE", 64, 48, [50.0, 50.0, 32.0, 24.0])
    return BasinProblem(
        torch.zeros(5, 3, dtype=torch.float64), [], [], camera, truth, depth, "fake"
    )


def _snap_below(limit_deg: float):
    """A solver that returns the truth when the start is within ``limit_deg``, else the start."""

    def solve(problem: BasinProblem, init: Pose):
        close = init.angle_to(problem.true_pose) < limit_deg
        truth = problem.true_pose.to(init.dtype)
        R = torch.where(close[:, None, None], truth.R.expand_as(init.R), init.R)
        t = torch.where(close[:, None], truth.t.expand_as(init.t), init.t)
        return Pose(R, t), close

    return solve


def test_perturbation_translation_known_answer():
    assert perturbation_translation(45.0, 2.0) == pytest.approx(2.0)
    assert perturbation_translation(10.0, 5.0, ratio=0.5) == pytest.approx(
        2.5 * math.tan(0.17453292519943295)
    )


def test_success_rates_follow_the_solver_basin():
    rows = convergence_sweep(
        [_problem(), _problem(6.0)], _snap_below(7.0), [2.0, 5.0, 10.0], trials=4, progress=False
    )
    assert [r.success_rate for r in rows] == [1.0, 1.0, 0.0]
    assert [r.accepted for r in rows] == [8, 8, 0]
    assert [r.trials for r in rows] == [8, 8, 8]
    assert rows[0].improved_rate == 1.0 and rows[2].improved_rate == 0.0
    # Starts have exactly the requested rotation and matched translation.
    np.testing.assert_allclose(rows[1].rot_init, 5.0, atol=1e-9)
    expected_t = [perturbation_translation(10.0, d) for d in (4.0,) * 4 + (6.0,) * 4]
    # The start is exp(delta) @ T: its centre moves by V(phi) rho, within 0.5% of |rho| here.
    np.testing.assert_allclose(rows[2].trans_init, expected_t, rtol=5e-3)
    assert rows[2].median("rot_final") == pytest.approx(10.0)


def test_same_seed_same_starts_and_lazy_problems():
    a = convergence_sweep(
        lambda i: _problem(),
        _snap_below(0.0),
        [3.0],
        trials=3,
        num_problems=2,
        seed=1,
        progress=False,
    )
    b = convergence_sweep(
        [_problem(), _problem()], _snap_below(0.0), [3.0], trials=3, seed=1, progress=False
    )
    np.testing.assert_array_equal(a[0].trans_final, b[0].trans_final)


def test_criterion_absolute_and_relative():
    rot, trans, depth = np.array([0.1, 0.1, 1.0]), np.array([0.01, 0.5, 0.01]), np.full(3, 10.0)
    assert SuccessCriterion(0.5, 0.01)(rot, trans, depth).tolist() == [True, False, False]
    assert SuccessCriterion(0.5, 0.2, relative=False)(rot, trans, depth).tolist() == [
        True,
        False,
        False,
    ]
    assert "1% of depth" in SuccessCriterion().describe()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_problems"):
        convergence_sweep(lambda i: _problem(), _snap_below(1.0), [1.0])
    with pytest.raises(ValueError, match="Need problems"):
        convergence_sweep([_problem()], _snap_below(1.0), [], progress=False)


def test_flags_of_wrong_answers_are_counted():
    """A solver that flags every start successful but snaps only those within 7 deg: of the
    flagged trials, only the snapped ones are right."""

    def overconfident(problem, init):
        pose, _ = _snap_below(7.0)(problem, init)
        return pose, torch.ones(len(init), dtype=torch.bool)

    rows = convergence_sweep([_problem()], overconfident, [5.0, 10.0], trials=3, progress=False)
    assert [(r.accepted, r.accepted_right) for r in rows] == [(3, 3), (3, 0)]
    assert [r.accepted_beyond(9.0, 100.0) for r in rows] == [0, 3]  # 10 deg off
    assert [r.accepted_beyond(11.0, 100.0) for r in rows] == [0, 0]
    honest = convergence_sweep([_problem()], _snap_below(7.0), [5.0, 10.0], 3, progress=False)
    assert [(r.accepted, r.accepted_right) for r in honest] == [(3, 3), (0, 0)]
