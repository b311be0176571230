"""Tests of quaternion <-> rotation matrix conversions (s2dloc.geometry.rotation), wxyz order."""

from __future__ import annotations

import math

import numpy as np
import pycolmap
import pytest
import torch
from scipy.spatial.transform import Rotation

from s2dloc.geometry.rotation import matrix_to_quat, quat_to_matrix

from ._helpers import assert_close, randn, random_rotation, rot_z


def _random_quats(n: int, seed: int = 0) -> torch.Tensor:
    q = randn(n, 4, seed=seed)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def _branch_quats() -> torch.Tensor:
    """Unit quaternions where each of w, x, y, z is the largest component (all four formulas)."""
    q = torch.tensor(
        [
            [0.9, 0.1, -0.3, 0.2],
            [0.1, 0.9, 0.3, -0.2],
            [0.05, -0.3, 0.9, 0.2],
            [0.2, 0.3, -0.1, -0.9],
            [0.0, 0.6, 0.0, 0.8],
            [0.01, 0.0, -1.0, 0.0],
        ],
        dtype=torch.float64,
    )
    return q / q.norm(dim=-1, keepdim=True)


def test_known_answers():
    s = math.sqrt(0.5)
    q = torch.tensor([s, 0.0, 0.0, s], dtype=torch.float64)  # 90 degrees about z
    assert_close(quat_to_matrix(q), rot_z(math.pi / 2), atol=1e-15)
    assert_close(matrix_to_quat(rot_z(math.pi / 2)), q, atol=1e-15)
    eye = torch.eye(3, dtype=torch.float64)
    assert_close(quat_to_matrix(torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)), eye)
    assert_close(matrix_to_quat(eye), torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    # 180 degrees about x: w = 0, x = 1
    R = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    assert_close(matrix_to_quat(R).abs(), torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_shapes(batch):
    q = torch.ones(*batch, 4)
    assert quat_to_matrix(q).shape == (*batch, 3, 3)
    assert matrix_to_quat(quat_to_matrix(q)).shape == (*batch, 4)


def test_normalisation_and_sign_invariance():
    q = _random_quats(20, seed=1)
    R = quat_to_matrix(q)
    assert_close(quat_to_matrix(3.5 * q), R)
    assert_close(quat_to_matrix(-q), R)


def test_quat_matrix_quat_round_trip(device, dtype):
    q = torch.cat([_random_quats(100, seed=2), _branch_quats()]).to(device, dtype)
    out = matrix_to_quat(quat_to_matrix(q))
    assert out.device == device and out.dtype == dtype
    assert (out[:, 0] >= 0).all()  # canonical sign
    assert_close(out, q, dtype=dtype, atol=1e-6 if dtype == torch.float32 else 1e-14)
    # negated inputs give the same canonical quaternion
    assert_close(
        matrix_to_quat(quat_to_matrix(-q)),
        q,
        dtype=dtype,
        atol=1e-6 if dtype == torch.float32 else 1e-14,
    )


def test_matrix_quat_matrix_round_trip(device, dtype, tol):
    R = random_rotation(200, seed=3, dtype=dtype, device=device)
    assert_close(quat_to_matrix(matrix_to_quat(R)), R, **tol)


def test_output_is_rotation():
    R = quat_to_matrix(randn(30, 4, seed=4))
    assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(30, 3, 3))
    assert_close(torch.linalg.det(R), torch.ones(30, dtype=torch.float64))


def test_agrees_with_scipy_xyzw():
    q = torch.cat([_random_quats(50, seed=5), _branch_quats()])
    q_xyzw = q[:, [1, 2, 3, 0]].numpy()
    assert_close(quat_to_matrix(q), torch.from_numpy(Rotation.from_quat(q_xyzw).as_matrix()))
    R = random_rotation(50, seed=6)
    ref = Rotation.from_matrix(R.numpy()).as_quat()[:, [3, 0, 1, 2]]  # -> wxyz
    ref = np.where(ref[:, :1] < 0, -ref, ref)
    assert_close(matrix_to_quat(R), torch.from_numpy(ref))


def test_agrees_with_pycolmap_xyzw():
    for q in torch.cat([_random_quats(10, seed=7), _branch_quats()]):
        rot = pycolmap.Rotation3d(q[[1, 2, 3, 0]].numpy())
        assert_close(quat_to_matrix(q), torch.from_numpy(rot.matrix()))
        ref = torch.from_numpy(np.asarray(pycolmap.Rotation3d(rot.matrix()).quat))[[3, 0, 1, 2]]
        assert_close(matrix_to_quat(quat_to_matrix(q)), ref if ref[0] >= 0 else -ref)


def test_gradcheck_quat_to_matrix(device):
    q = randn(5, 4, seed=8, device=device).requires_grad_()
    assert torch.autograd.gradcheck(quat_to_matrix, (q,))


def test_gradcheck_matrix_to_quat_every_branch(device):
    R = quat_to_matrix(_branch_quats()[:4].to(device))  # one matrix per formula
    assert torch.autograd.gradcheck(matrix_to_quat, (R.requires_grad_(),))
    R = random_rotation(5, seed=9, device=device).requires_grad_()
    assert torch.autograd.gradcheck(matrix_to_quat, (R,))
