"""Tests of the batched SE(3) Pose (s2dloc.geometry.pose), cam_from_world by convention."""

from __future__ import annotations

import math

import numpy as np
import pycolmap
import pytest
import torch

from s2dloc.geometry.lie import skew
from s2dloc.geometry.pose import Pose

from ._helpers import assert_close, randn, random_axis_angle, random_rotation, rot_z


def _random_pose(*batch: int, seed: int = 0, dtype=torch.float64, device=None) -> Pose:
    n = int(np.prod(batch)) if batch else 1
    R = random_rotation(n, seed=seed, dtype=dtype, device=device).reshape(*batch, 3, 3)
    t = randn(n, 3, seed=seed + 1000, dtype=dtype, device=device).reshape(*batch, 3)
    return Pose(R, t)


def _assert_pose_close(a: Pose, b: Pose, **kwargs):
    assert_close(a.R, b.R, **kwargs)
    assert_close(a.t, b.t, **kwargs)


# ----- construction, exceptions, shapes
def test_constructor_rejects_bad_shapes():
    with pytest.raises(ValueError, match="Pose expects"):
        Pose(torch.eye(3), torch.zeros(4))
    with pytest.raises(ValueError, match="Pose expects"):
        Pose(torch.eye(4), torch.zeros(3))
    with pytest.raises(ValueError, match="Pose expects"):
        Pose(torch.eye(3).expand(2, 3, 3), torch.zeros(3, 3))


def test_to_colmap_rejects_batched():
    with pytest.raises(ValueError, match="unbatched"):
        Pose.identity(2).to_colmap()


def test_constructors_and_shapes():
    R = rot_z(0.3).numpy()
    T = Pose.from_Rt(R, [1.0, 2.0, 3.0])
    assert T.shape == () and T.dtype == torch.float64
    M = T.matrix()
    assert M.shape == (4, 4)
    assert_close(M[3], torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=0, rtol=0)
    _assert_pose_close(Pose.from_matrix(M), T)
    _assert_pose_close(Pose.from_matrix(M[:3].numpy()), T)
    I = Pose.identity(2, 3)
    assert I.shape == (2, 3) and len(I) == 2 and I[1].shape == (3,)
    assert_close(I.matrix(), torch.eye(4, dtype=torch.float64).expand(2, 3, 4, 4))
    S = Pose.stack([T, T.inv()])
    assert S.shape == (2,)
    _assert_pose_close(S[1], T.inv())
    assert T.float().dtype == torch.float32 and T.float().double().dtype == torch.float64
    assert "Pose(q_wxyz=" in repr(T) and "shape=(2,)" in repr(S)


def test_detach():
    t = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    assert not Pose(torch.eye(3, dtype=torch.float64), t).detach().t.requires_grad


# ----- group properties
def test_inverse(device, dtype, tol):
    T = _random_pose(20, seed=1, dtype=dtype, device=device)
    I = Pose.identity(20, dtype=dtype, device=device)
    assert T.inv().device == device
    _assert_pose_close(T @ T.inv(), I, **tol)
    _assert_pose_close(T.inv() @ T, I, **tol)
    assert_close(T.inv().matrix(), torch.linalg.inv(T.matrix()), **tol)


def test_composition_is_associative_and_matches_matrices():
    A, B, C = (_random_pose(10, seed=s) for s in (2, 3, 4))
    _assert_pose_close((A @ B) @ C, A @ (B @ C))
    assert_close((A @ B).matrix(), A.matrix() @ B.matrix())
    X = randn(10, 7, 3, seed=5)
    # T_c_from_a = T_c_from_b @ T_b_from_a: apply B first, then A.
    assert_close((A @ B).transform(X), A.transform(B.transform(X)))


def test_transform_matches_homogeneous_matrix(device, dtype, tol):
    T = _random_pose(4, seed=6, dtype=dtype, device=device)
    X = randn(4, 9, 3, seed=7, dtype=dtype, device=device)
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], -1)
    expected = (T.matrix()[:, None] @ Xh[..., None])[..., :3, 0]
    assert T.transform(X).shape == (4, 9, 3) and T.matrix().device == device
    assert_close(T.transform(X), expected, **tol)
    assert_close(T * X, expected, **tol)


def test_transform_known_answer_and_broadcast():
    T = Pose.from_Rt(rot_z(math.pi / 2), [1.0, 0.0, 0.0])
    X = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 5.0]], dtype=torch.float64)
    expected = torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 5.0]], dtype=torch.float64)
    assert_close(T.transform(X), expected, atol=1e-15)
    Tb = Pose.stack([T, Pose.identity()])
    assert Tb.transform(X).shape == (2, 2, 3)  # batch of poses, shared points
    assert_close(Tb.transform(X)[1], X)


def test_center_is_minus_Rt_t():
    T = _random_pose(10, seed=8)
    assert_close(T.center(), -(T.R.transpose(-1, -2) @ T.t[..., None])[..., 0])
    assert_close(T.transform(T.center()[:, None])[:, 0], torch.zeros(10, 3, dtype=torch.float64))
    assert_close(T.center(), T.inv().t)


def test_camera_centre_conversion_hand_computed():
    """A loader storing camera centres c converts with t = -R c (hand-computed example)."""
    R = rot_z(math.pi / 2)  # [[0,-1,0],[1,0,0],[0,0,1]]
    c = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    t = -R @ c
    assert_close(t, torch.tensor([2.0, -1.0, -3.0], dtype=torch.float64), atol=1e-15)
    T = Pose.from_Rt(R, t)
    assert_close(T.center(), c, atol=1e-15)
    # the camera-to-world matrix of the same camera has c as its translation
    assert_close(T.inv().matrix()[:3, 3], c, atol=1e-15)


# ----- errors
def test_angle_to_known_answers(device, dtype):
    I = Pose.identity(dtype=dtype, device=device)
    for deg in (90.0, 1.0, 179.0, 180.0):
        T = Pose(
            rot_z(math.radians(deg), dtype, device), torch.zeros(3, dtype=dtype, device=device)
        )
        assert_close(
            I.angle_to(T),
            torch.tensor(deg, dtype=dtype, device=device),
            dtype=dtype,
            atol=1e-3 if dtype == torch.float32 else 1e-9,
        )
        assert_close(
            T.angle_to(I),
            torch.tensor(deg, dtype=dtype, device=device),
            dtype=dtype,
            atol=1e-3 if dtype == torch.float32 else 1e-9,
        )
    # Relative rotation only: a common rotation applied to both does not change the error.
    A = _random_pose(seed=9, dtype=dtype, device=device)
    B = Pose(A.R @ rot_z(math.radians(30), dtype, device), A.t)
    assert_close(
        A.angle_to(B),
        torch.tensor(30.0, dtype=dtype, device=device),
        dtype=dtype,
        atol=1e-3 if dtype == torch.float32 else 1e-9,
    )
    assert_close(
        A.angle_to(A),
        torch.tensor(0.0, dtype=dtype, device=device),
        dtype=dtype,
        atol=1e-2 if dtype == torch.float32 else 1e-6,
    )


def test_center_distance_uses_centres_not_t():
    c = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    A = Pose.from_Rt(torch.eye(3, dtype=torch.float64), -c)
    R = rot_z(math.radians(40))
    B = Pose.from_Rt(R, -R @ c)  # same centre, different rotation
    assert (A.t - B.t).norm() > 0.5
    assert_close(A.center_distance_to(B), torch.tensor(0.0, dtype=torch.float64), atol=1e-15)
    C = Pose.from_Rt(R, -R @ (c + torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)))
    assert_close(A.center_distance_to(C), torch.tensor(5.0, dtype=torch.float64))
    assert_close(C.center_distance_to(A), torch.tensor(5.0, dtype=torch.float64))


def test_errors_are_batched():
    A, B = _random_pose(6, seed=10), _random_pose(6, seed=11)
    assert A.angle_to(B).shape == (6,) and A.center_distance_to(B).shape == (6,)


# ----- exp / log and the left perturbation
def test_exp_log_round_trip():
    T = _random_pose(30, seed=12)
    _assert_pose_close(Pose.exp(T.log()), T, atol=1e-11)
    xi = torch.cat([randn(30, 3, seed=13), random_axis_angle(30, seed=14)], -1)
    assert_close(Pose.exp(xi).log(), xi, atol=1e-11)
    _assert_pose_close(Pose.exp(torch.zeros(6, dtype=torch.float64)), Pose.identity())


def test_exp_of_small_delta_is_first_order_left_update():
    """exp(delta) @ T moves points by rho + phi x (TX) to first order (left perturbation)."""
    T, X = _random_pose(seed=15), randn(5, 3, seed=16)
    delta = 1e-7 * torch.tensor([1.0, -2.0, 0.5, 0.3, 0.2, -0.7], dtype=torch.float64)
    moved = (Pose.exp(delta) @ T).transform(X) - T.transform(X)
    first_order = delta[:3] + torch.linalg.cross(delta[3:].expand(5, 3), T.transform(X))
    assert_close(moved, first_order, atol=1e-13)


def test_left_perturbation_jacobian():
    """d(exp(delta) T X)/d delta at delta = 0 equals [I, -[TX]_x] (rho first, then phi)."""
    T = _random_pose(seed=17)
    X = randn(4, 3, seed=18)

    def f(delta):
        return (Pose.exp(delta) @ T).transform(X)

    J = torch.autograd.functional.jacobian(f, torch.zeros(6, dtype=torch.float64))  # (4, 3, 6)
    TX = T.transform(X)
    expected = torch.cat([torch.eye(3, dtype=torch.float64).expand(4, 3, 3), -skew(TX)], -1)
    assert_close(J, expected, atol=1e-12)


def test_gradcheck_pose_ops(device):
    T = _random_pose(seed=19, device=device)
    X = randn(3, 3, seed=20, device=device).requires_grad_()
    xi = torch.cat([randn(3, seed=21), random_axis_angle(1, seed=22)[0]]).to(device)
    xi.requires_grad_()

    def f(xi, X):
        P = Pose.exp(xi) @ T
        return P.transform(X), P.inv().t, P.log()

    assert torch.autograd.gradcheck(f, (xi, X))


# ----- quaternions and file conventions
def test_quat_round_trip():
    T = _random_pose(10, seed=23)
    q = T.quat()
    assert q.shape == (10, 4) and (q[:, 0] >= 0).all()
    _assert_pose_close(Pose.from_quat_t(q, T.t), T)
    _assert_pose_close(Pose.from_quat_t(-q, T.t), T)  # q and -q are the same rotation


def test_colmap_round_trip_and_agreement():
    for T in _random_pose(5, seed=24):
        rigid = T.to_colmap()
        assert isinstance(rigid, pycolmap.Rigid3d)
        _assert_pose_close(Pose.from_colmap(rigid), T)
        q_xyzw = np.asarray(rigid.rotation.quat)
        q_wxyz = torch.from_numpy(q_xyzw[[3, 0, 1, 2]])
        assert_close(T.quat(), q_wxyz if q_wxyz[0] >= 0 else -q_wxyz)
        assert_close(T.t, torch.from_numpy(np.asarray(rigid.translation)))
        X = randn(3, seed=25)
        assert_close(T.transform(X[None])[0], torch.from_numpy(rigid * X.numpy()))
        assert_close(T.inv().matrix()[:3], torch.from_numpy(rigid.inverse().matrix()))
    # pycolmap built from a wxyz quaternion (given as xyzw) equals from_quat_t
    q = torch.tensor([0.5, -0.5, 0.5, 0.5], dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    rigid = pycolmap.Rigid3d(pycolmap.Rotation3d(q[[1, 2, 3, 0]].numpy()), t.numpy())
    _assert_pose_close(Pose.from_colmap(rigid), Pose.from_quat_t(q, t))


def _write_line(name: str, T: Pose) -> str:
    values = [*T.quat().tolist(), *T.t.tolist()]
    return " ".join([name, *(repr(v) for v in values)])


def _parse_line(line: str) -> tuple[str, Pose]:
    name, *values = line.split()
    v = [float(x) for x in values]
    return name, Pose.from_quat_t(v[:4], v[4:])


def test_file_line_round_trip():
    """`name qw qx qy qz tx ty tz` (world-to-camera) written and parsed back is the same pose."""
    for i, T in enumerate(_random_pose(10, seed=26)):
        line = _write_line(f"query/img_{i:03d}.jpg", T)
        assert len(line.split()) == 8
        name, T2 = _parse_line(line)
        assert name == f"query/img_{i:03d}.jpg"
        _assert_pose_close(T2, T, atol=1e-12, rtol=0)


def test_file_line_known_answer():
    """Hand-written line: 90 degrees about z, so X_cam = Rz(90) X_world + t."""
    s = math.sqrt(0.5)
    _, T = _parse_line(f"db/0001.png {s} 0 0 {s} 1 2 3")
    assert_close(T.R, rot_z(math.pi / 2), atol=1e-15)
    assert_close(
        T.transform(torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64))[0],
        torch.tensor([1.0, 3.0, 3.0], dtype=torch.float64),
        atol=1e-15,
    )
