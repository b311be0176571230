"""Batched rigid transforms ``Pose`` (world-to-camera ``cam_from_world`` by convention)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from s2dloc.geometry.lie import se3_exp, se3_log, so3_log
from s2dloc.geometry.rotation import matrix_to_quat, quat_to_matrix

TensorLike = torch.Tensor | np.ndarray | Sequence[float]


def _as_tensor(x: TensorLike, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    dtype = like.dtype if like is not None else torch.float64
    return torch.as_tensor(np.asarray(x), dtype=dtype)


class Pose:
    """A batch of SE(3) transforms ``X_dst = R X_src + t`` with shape ``(...)``.

    Used as ``cam_from_world`` throughout s2dloc. Stored as ``R (..., 3, 3)`` and ``t (..., 3)``.
    Tangent vectors are ``xi = (rho, phi)`` (translation, rotation); updates are applied on
    the left: ``T <- exp(delta) @ T``.
    """

    __slots__ = ("R", "t")

    def __init__(self, R: torch.Tensor, t: torch.Tensor):
        if R.shape[-2:] != (3, 3) or t.shape[-1:] != (3,) or R.shape[:-2] != t.shape[:-1]:
            raise ValueError(
                f"Pose expects R (...,3,3) and t (...,3), got {tuple(R.shape)}, {tuple(t.shape)}"
            )
        self.R = R
        self.t = t

    # ----- constructors
    @classmethod
    def from_Rt(cls, R: TensorLike, t: TensorLike) -> Pose:
        R = _as_tensor(R)
        return cls(R, _as_tensor(t, R).to(R.dtype))

    @classmethod
    def from_matrix(cls, T: TensorLike) -> Pose:
        """From homogeneous matrices ``(..., 4, 4)`` or ``(..., 3, 4)``."""
        T = _as_tensor(T)
        return cls(T[..., :3, :3], T[..., :3, 3])

    @classmethod
    def from_quat_t(cls, q_wxyz: TensorLike, t: TensorLike) -> Pose:
        """From quaternions ``(..., 4)`` in ``w x y z`` order and translations ``(..., 3)``."""
        q = _as_tensor(q_wxyz)
        return cls(quat_to_matrix(q), _as_tensor(t, q).to(q.dtype))

    @classmethod
    def from_colmap(cls, rigid) -> Pose:
        """From a ``pycolmap.Rigid3d`` (e.g. ``image.cam_from_world()``)."""
        return cls.from_matrix(np.asarray(rigid.matrix(), dtype=np.float64))

    @classmethod
    def identity(cls, *batch: int, dtype=torch.float64, device=None) -> Pose:
        R = torch.eye(3, dtype=dtype, device=device).expand(*batch, 3, 3).clone()
        return cls(R, torch.zeros(*batch, 3, dtype=dtype, device=device))

    @classmethod
    def exp(cls, xi: torch.Tensor) -> Pose:
        """Exponential map of tangent vectors ``(..., 6) = (rho, phi)``."""
        return cls(*se3_exp(xi))

    @classmethod
    def stack(cls, poses: Sequence[Pose], dim: int = 0) -> Pose:
        return cls(torch.stack([p.R for p in poses], dim), torch.stack([p.t for p in poses], dim))

    # ----- conversions
    def log(self) -> torch.Tensor:
        """Tangent vectors ``(..., 6) = (rho, phi)`` with ``Pose.exp(T.log()) == T``."""
        return se3_log(self.R, self.t)

    def matrix(self) -> torch.Tensor:
        """Homogeneous matrices ``(..., 4, 4)``."""
        bottom = torch.zeros(*self.shape, 1, 4, dtype=self.dtype, device=self.device)
        bottom[..., 0, 3] = 1
        return torch.cat([torch.cat([self.R, self.t[..., None]], -1), bottom], -2)

    def quat(self) -> torch.Tensor:
        """Quaternions ``(..., 4)`` in ``w x y z`` order with ``w >= 0``."""
        return matrix_to_quat(self.R)

    def to_colmap(self):
        """As a ``pycolmap.Rigid3d`` (unbatched poses only)."""
        import pycolmap

        if self.shape != ():
            raise ValueError(f"to_colmap needs an unbatched Pose, got batch shape {self.shape}")
        return pycolmap.Rigid3d(self.matrix()[:3].detach().cpu().double().numpy())

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.R.detach().cpu().numpy(), self.t.detach().cpu().numpy()

    # ----- group operations
    def inv(self) -> Pose:
        Rt = self.R.transpose(-1, -2)
        return Pose(Rt, -(Rt @ self.t[..., None])[..., 0])

    def compose(self, other: Pose) -> Pose:
        """``self @ other``: apply ``other`` first, then ``self`` (``other`` cast to our dtype)."""
        other = other.to(self.dtype)
        return Pose(self.R @ other.R, (self.R @ other.t[..., None])[..., 0] + self.t)

    def __matmul__(self, other: Pose) -> Pose:
        return self.compose(other)

    def transform(self, points: torch.Tensor) -> torch.Tensor:
        """Apply to points ``(..., N, 3)``; the pose batch shape broadcasts with ``...``."""
        return points @ self.R.transpose(-1, -2) + self.t[..., None, :]

    def __mul__(self, points: torch.Tensor) -> torch.Tensor:
        return self.transform(points)

    def center(self) -> torch.Tensor:
        """Camera centres ``(..., 3)`` in the source (world) frame: ``c = -R^T t``."""
        return -(self.R.transpose(-1, -2) @ self.t[..., None])[..., 0]

    # ----- errors
    def angle_to(self, other: Pose) -> torch.Tensor:
        """Rotation error in degrees, from the angle of ``R_self^T R_other``."""
        rel = self.R.transpose(-1, -2) @ other.R.to(self.dtype)
        return so3_log(rel).norm(dim=-1) * (180 / math.pi)

    def center_distance_to(self, other: Pose) -> torch.Tensor:
        """Distance between camera centres (not between ``t`` vectors)."""
        return (self.center() - other.center().to(self.dtype)).norm(dim=-1)

    # ----- tensor plumbing
    @property
    def shape(self) -> torch.Size:
        return self.t.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.t.dtype

    @property
    def device(self) -> torch.device:
        return self.t.device

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> Pose:
        return Pose(self.R[index], self.t[index])

    def to(self, *args, **kwargs) -> Pose:
        return Pose(self.R.to(*args, **kwargs), self.t.to(*args, **kwargs))

    def float(self) -> Pose:
        return self.to(torch.float32)

    def double(self) -> Pose:
        return self.to(torch.float64)

    def detach(self) -> Pose:
        return Pose(self.R.detach(), self.t.detach())

    def __repr__(self) -> str:
        if self.shape == ():
            q = self.quat().tolist()
            t = self.t.tolist()
            return f"Pose(q_wxyz={[round(v, 6) for v in q]}, t={[round(v, 6) for v in t]})"
        return f"Pose(shape={tuple(self.shape)}, dtype={self.dtype})"
