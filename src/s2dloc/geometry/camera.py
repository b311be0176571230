"""Batched cameras with COLMAP models, parameter orders and pixel convention.

Pixel coordinates are continuous with the centre of the top-left pixel at ``(0.5, 0.5)``.
Every supported model is a special case of OPENCV, so projection is implemented once on
canonical parameters ``f (..., 2)``, ``c (..., 2)``, ``dist (..., 4) = (k1, k2, p1, p2)``.
Distortion is applied in projection (images are never undistorted).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from s2dloc.geometry.distortion import distort, distortion_valid, undistort

# Model name -> parameter names in COLMAP order.
MODELS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
}


def _canonical(model: str, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split COLMAP params ``(..., P)`` into ``f (..., 2)``, ``c (..., 2)``, ``dist (..., 4)``."""
    zero = torch.zeros_like(p[..., :1])
    if model == "SIMPLE_PINHOLE":
        return p[..., [0, 0]], p[..., 1:3], zero.expand(*p.shape[:-1], 4)
    if model == "PINHOLE":
        return p[..., 0:2], p[..., 2:4], zero.expand(*p.shape[:-1], 4)
    if model == "SIMPLE_RADIAL":
        return p[..., [0, 0]], p[..., 1:3], torch.cat([p[..., 3:4], zero, zero, zero], -1)
    if model == "RADIAL":
        return p[..., [0, 0]], p[..., 1:3], torch.cat([p[..., 3:5], zero, zero], -1)
    if model == "OPENCV":
        return p[..., 0:2], p[..., 2:4], p[..., 4:8]
    raise ValueError(f"Unsupported camera model {model!r}; expected one of {list(MODELS)}")


class Camera:
    """A batch of cameras of one COLMAP model.

    Attributes:
        model: COLMAP model name.
        size: ``(..., 2)`` image width and height in pixels.
        params: ``(..., P)`` COLMAP parameters in COLMAP order.
    """

    __slots__ = ("model", "size", "params", "f", "c", "dist")

    def __init__(self, model: str, size: torch.Tensor, params: torch.Tensor):
        if model not in MODELS:
            raise ValueError(f"Unsupported camera model {model!r}; expected one of {list(MODELS)}")
        if params.shape[-1] != len(MODELS[model]):
            raise ValueError(
                f"{model} expects {len(MODELS[model])} params {MODELS[model]}, "
                f"got {params.shape[-1]}"
            )
        if not torch.isfinite(params).all() or (size <= 0).any():
            raise ValueError(f"Invalid camera: size={size.tolist()}, params={params.tolist()}")
        self.model = model
        self.size = size.to(params.dtype)
        self.params = params
        self.f, self.c, self.dist = _canonical(model, params)

    @classmethod
    def from_colmap(
        cls,
        model,
        width: float | None = None,
        height: float | None = None,
        params: Sequence[float] | np.ndarray | torch.Tensor | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Camera:
        """From ``(model_name, width, height, params)`` or from a ``pycolmap.Camera``."""
        if not isinstance(model, str):  # a pycolmap.Camera
            cam = model
            model, width, height, params = cam.model.name, cam.width, cam.height, cam.params
        params = torch.as_tensor(np.asarray(params, dtype=np.float64)).to(dtype)
        size = torch.tensor([float(width), float(height)], dtype=dtype)
        return cls(model, size, params)

    def to_colmap(self):
        """As a ``pycolmap.Camera`` (unbatched cameras only)."""
        import pycolmap

        if self.size.dim() != 1:
            raise ValueError(f"to_colmap needs an unbatched Camera, got shape {self.shape}")
        w, h = (int(round(v)) for v in self.size.tolist())
        return pycolmap.Camera(
            model=self.model, width=w, height=h, params=self.params.detach().cpu().double().numpy()
        )

    @classmethod
    def stack(cls, cameras: Sequence[Camera]) -> Camera:
        """Stack unbatched cameras; mixed models are promoted to OPENCV."""
        models = {c.model for c in cameras}
        if len(models) > 1:
            cameras = [c.as_opencv() for c in cameras]
        size = torch.stack([c.size for c in cameras])
        return cls(cameras[0].model, size, torch.stack([c.params for c in cameras]))

    def as_opencv(self) -> Camera:
        """The same camera expressed in the OPENCV model."""
        return Camera("OPENCV", self.size, torch.cat([self.f, self.c, self.dist], -1))

    # ----- properties
    @property
    def shape(self) -> torch.Size:
        return self.size.shape[:-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.params.dtype

    @property
    def width(self) -> torch.Tensor:
        return self.size[..., 0]

    @property
    def height(self) -> torch.Tensor:
        return self.size[..., 1]

    @property
    def has_distortion(self) -> bool:
        return self.model not in ("SIMPLE_PINHOLE", "PINHOLE")

    @property
    def K(self) -> torch.Tensor:
        """Pinhole calibration matrices ``(..., 3, 3)``."""
        K = torch.zeros(*self.shape, 3, 3, dtype=self.dtype, device=self.params.device)
        K[..., 0, 0], K[..., 1, 1] = self.f[..., 0], self.f[..., 1]
        K[..., 0, 2], K[..., 1, 2] = self.c[..., 0], self.c[..., 1]
        K[..., 2, 2] = 1
        return K

    def scale(self, s: float | Sequence[float] | torch.Tensor) -> Camera:
        """Camera of the image resized by ``s`` (scalar or ``(sx, sy)``).

        With the COLMAP pixel convention, pixel coordinates simply scale by ``s``.
        """
        s = torch.as_tensor(s, dtype=self.dtype, device=self.params.device)
        s = s.expand(2) if s.dim() == 0 else s
        names = MODELS[self.model]
        if "f" in names and not torch.allclose(s[..., 0], s[..., 1]):
            raise ValueError(f"{self.model} has one focal length; scale must be isotropic, got {s}")
        axis = {"f": 0, "fx": 0, "cx": 0, "fy": 1, "cy": 1}
        factors = [s[..., axis[n]] if n in axis else torch.ones_like(s[..., 0]) for n in names]
        p = self.params * torch.stack(factors, -1)
        return Camera(self.model, self.size * s, p)

    # ----- projection
    def project(
        self, points: torch.Tensor, margin: float = 0.0, min_depth: float = 1e-3
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Project camera-frame points ``(..., N, 3)`` to pixels ``(..., N, 2)``.

        Returns the pixels and a validity mask ``(..., N)``: in front of the camera
        (``z > min_depth``), distortion valid, and inside the image shrunk by ``margin``.
        """
        z = points[..., 2]
        valid = z > min_depth
        xy = points[..., :2] / torch.where(valid, z, torch.ones_like(z))[..., None]
        dist = self.dist[..., None, :]
        if self.has_distortion:
            valid = valid & distortion_valid(xy, dist)
            xy = distort(xy, dist)[0]
        p = xy * self.f[..., None, :] + self.c[..., None, :]
        return p, valid & self.in_image(p, margin)

    def project_with_jacobian(
        self, points: torch.Tensor, margin: float = 0.0, min_depth: float = 1e-3
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Like :meth:`project`, also returning ``d pixel / d point`` ``(..., N, 2, 3)``."""
        z = points[..., 2]
        valid = z > min_depth
        iz = 1 / torch.where(valid, z, torch.ones_like(z))
        xy = points[..., :2] * iz[..., None]
        # d(x, y)/dX = [[1/z, 0, -x/z], [0, 1/z, -y/z]]
        zero = torch.zeros_like(iz)
        J_xy = torch.stack([iz, zero, -xy[..., 0] * iz, zero, iz, -xy[..., 1] * iz], -1)
        J_xy = J_xy.reshape(*iz.shape, 2, 3)
        if self.has_distortion:
            dist = self.dist[..., None, :]
            valid = valid & distortion_valid(xy, dist)
            xy, J_dist = distort(xy, dist, with_jacobian=True)
            J_xy = J_dist @ J_xy
        f = self.f[..., None, :]
        p = xy * f + self.c[..., None, :]
        return p, valid & self.in_image(p, margin), J_xy * f[..., None]

    def in_image(self, p: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
        """Mask ``(..., N)`` of pixels ``(..., N, 2)`` inside ``[margin, size - margin]``."""
        size = self.size[..., None, :]
        return ((p >= margin) & (p <= size - margin)).all(-1)

    def unproject(self, p: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels ``(..., N, 2)`` to normalized coordinates ``(..., N, 2)`` (distortion removed).

        With ``depth`` ``(..., N)`` (z in the camera frame) returns 3D points ``(..., N, 3)``.
        """
        xy = (p - self.c[..., None, :]) / self.f[..., None, :]
        if self.has_distortion:
            xy = undistort(xy, self.dist[..., None, :])
        if depth is None:
            return xy
        return torch.cat([xy, torch.ones_like(xy[..., :1])], -1) * depth[..., None]

    # ----- tensor plumbing
    def __getitem__(self, index) -> Camera:
        return Camera(self.model, self.size[index], self.params[index])

    def to(self, *args, **kwargs) -> Camera:
        return Camera(self.model, self.size.to(*args, **kwargs), self.params.to(*args, **kwargs))

    def float(self) -> Camera:
        return self.to(torch.float32)

    def double(self) -> Camera:
        return self.to(torch.float64)

    def __repr__(self) -> str:
        if self.shape == ():
            w, h = (int(v) for v in self.size.tolist())
            params = [round(v, 6) for v in self.params.tolist()]
            return f"Camera({self.model}, {w}x{h}, params={params})"
        return f"Camera({self.model}, shape={tuple(self.shape)})"
