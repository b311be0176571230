"""Input checking and per-level preparation for the F-PnP solver, and the residual model.

For a level with query map ``F (B, C, H, W)`` and reference features ``f (B, N, C)``, the
residual of point ``i`` at pose ``T`` is ``r_i = F(pi(T X_i)) - f_i``; its Jacobian w.r.t. the
left perturbation is ``dF/dp (C, 2) @ dp/ddelta (2, 6)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from s2dloc.fpnp.jacobians import project_with_pose_jacobian
from s2dloc.geometry import Camera, Pose

# Sampling offsets (pixels) for the value and the central differences along u and v.
_OFFSETS = torch.tensor([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])


@dataclass
class Samples:
    """Projected points of a level and their five bilinear feature samples.

    Attributes:
        Xc: ``(B, N, 3)`` camera-frame points.
        valid: ``(B, N)`` in front of the camera and inside the image (less the margin).
        J: ``(B, N, 2, 6)`` pixel Jacobian w.r.t. the left pose perturbation.
        values: ``(B, 5, N, C)`` features at ``p``, ``p +- e_u``, ``p +- e_v`` (in this order).
    """

    Xc: torch.Tensor
    valid: torch.Tensor
    J: torch.Tensor
    values: torch.Tensor


@dataclass
class Residuals:
    """Per-point residual statistics of a level at some poses.

    Attributes:
        Xc: ``(B, N, 3)`` camera-frame points.
        valid: ``(B, N)`` projected inside the image with finite statistics.
        J: ``(B, N, 2, 6)`` pixel Jacobian w.r.t. the left pose perturbation.
        gram: ``(B, N, 3, 3)`` Gram matrix of ``[dF/du, dF/dv, r]`` over channels (so
            ``[:2, :2]`` is ``G^T G``, ``[:2, 2]`` is ``G^T r``, ``[2, 2]`` is ``||r||^2``);
            zero where not finite.
        channels: the channel count ``C``.
    """

    Xc: torch.Tensor
    valid: torch.Tensor
    J: torch.Tensor
    gram: torch.Tensor
    channels: int

    @property
    def sq(self) -> torch.Tensor:
        """Squared residual norms ``(B, N)``."""
        return self.gram[..., 2, 2]


@dataclass
class MatchResiduals:
    """Squared residuals ``(B, N)`` of the valid points (NaN where invalid).

    Attributes:
        sq_match: against their own reference feature.
        sq_null: against another valid point's reference feature.
        sq_grad: squared norms of the feature gradients ``dF/d(u, v)``.
    """

    sq_match: torch.Tensor
    sq_null: torch.Tensor
    sq_grad: torch.Tensor


@dataclass
class Level:
    """One feature level: query ``maps (B, C, H, W)``, ``ref (B, N, C)`` and its camera."""

    maps: torch.Tensor
    ref: torch.Tensor
    camera: Camera

    def __post_init__(self):
        size = self.camera.size[:, None, :]  # (B, 1, 2), equals the map size (W, H)
        self._to_grid = 2 / size
        self._offsets = (_OFFSETS.to(size) * self._to_grid)[:, :, None, :]  # (B, 5, 1, 2)

    @property
    def channels(self) -> int:
        return self.ref.shape[-1]

    def samples(
        self, points: torch.Tensor, M: torch.Tensor, margin: float, min_depth: float
    ) -> Samples:
        """Project points ``(B, N, 3)`` at poses ``M (B, 4, 4)`` and sample the maps there."""
        Xc = torch.baddbmm(M[:, None, :3, 3], points, M[:, :3, :3].transpose(1, 2))
        p, valid, J = project_with_pose_jacobian(self.camera, Xc, margin, min_depth)
        grid = (p * self._to_grid - 1)[:, None] + self._offsets  # (B, 5, N, 2)
        v = F.grid_sample(
            self.maps, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        return Samples(Xc, valid, J, v.permute(0, 2, 3, 1))

    def residuals(
        self, points: torch.Tensor, M: torch.Tensor, margin: float, min_depth: float
    ) -> Residuals:
        """Residual statistics at poses ``M (B, 4, 4)`` for points ``(B, N, 3)``."""
        return self._residuals(self.samples(points, M, margin, min_depth))

    def _residuals(self, s: Samples) -> Residuals:
        v = s.values
        S = torch.stack([(v[:, 1] - v[:, 2]) / 2, (v[:, 3] - v[:, 4]) / 2, v[:, 0] - self.ref], 2)
        gram = S @ S.transpose(-1, -2)
        finite = torch.isfinite(gram.flatten(-2).sum(-1))
        return Residuals(s.Xc, s.valid & finite, s.J, gram.nan_to_num(0.0, 0.0, 0.0), self.channels)

    def match_residuals(
        self,
        points: torch.Tensor,
        M: torch.Tensor,
        weights: torch.Tensor,
        margin: float,
        min_depth: float,
    ) -> MatchResiduals:
        """Squared residuals ``(B, N)`` of the valid points against their own reference and
        against another point's (the ``k``-th of ``n`` valid points is paired with the
        ``(k + n // 2) % n``-th), and squared feature gradient norms; NaN where invalid."""
        samples = self.samples(points, M, margin, min_depth)
        res = self._residuals(samples)
        valid = res.valid & (weights > 0)
        values = samples.values[:, 0]  # (B, N, C)
        B, N = valid.shape
        order = torch.argsort((~valid).to(torch.uint8), dim=-1, stable=True)
        n = valid.sum(-1, keepdim=True)
        k = torch.arange(N, device=valid.device)
        partner = order.gather(-1, (k + n // 2) % n.clamp_min(1))  # of the point order[k]
        other = torch.empty_like(order).scatter_(-1, order, partner)  # partner of point i
        null = self.ref.gather(1, other[..., None].expand_as(self.ref))
        nan = torch.full_like(values[..., 0], float("nan"))
        return MatchResiduals(
            sq_match=torch.where(valid, res.sq, nan),
            sq_null=torch.where(valid, (values - null).square().sum(-1), nan),
            sq_grad=torch.where(valid, res.gram[..., 0, 0] + res.gram[..., 1, 1], nan),
        )


def prepare_levels(
    points3d: torch.Tensor,
    ref_features: list[torch.Tensor],
    query_features: list[torch.Tensor],
    camera: Camera,
    init_pose: Pose,
    weights: torch.Tensor | None,
    mask: torch.Tensor | None,
    channels_last: bool = True,
) -> tuple[list[Level], torch.Tensor]:
    """Validate inputs and build levels sorted coarse to fine, plus point weights ``(B, N)``.

    Non-finite points and padding get zero weight; points whose reference features or query
    samples are not finite are invalid (checked on the residuals). ``channels_last`` stores the
    maps channels-last (for ``grid_sample``); otherwise they keep their layout. Raises
    ``ValueError`` naming the argument for malformed inputs.
    """
    if points3d.dim() != 3 or points3d.shape[-1] != 3:
        raise ValueError(f"points3d must be (B, N, 3), got {tuple(points3d.shape)}")
    B, N, _ = points3d.shape
    if len(ref_features) != len(query_features) or not query_features:
        raise ValueError(
            f"ref_features and query_features must list the same levels, got "
            f"{len(ref_features)} and {len(query_features)}"
        )
    if init_pose.shape != (B,) or camera.shape != (B,):
        raise ValueError(
            f"init_pose and camera must have batch shape ({B},), got "
            f"{tuple(init_pose.shape)} and {tuple(camera.shape)}"
        )
    if not (torch.isfinite(init_pose.R).all() and torch.isfinite(init_pose.t).all()):
        raise ValueError("init_pose contains NaN or inf")
    dtype = query_features[0].dtype
    w = torch.ones(B, N, dtype=dtype, device=points3d.device)
    if weights is not None:
        if weights.shape != (B, N):
            raise ValueError(f"weights must be ({B}, {N}), got {tuple(weights.shape)}")
        w = w * torch.nan_to_num(weights.to(dtype), 0.0).clamp_min(0)
    if mask is not None:
        if mask.shape != (B, N):
            raise ValueError(f"mask must be ({B}, {N}), got {tuple(mask.shape)}")
        w = w * mask.to(dtype)
    w = w * torch.isfinite(points3d).all(-1).to(dtype)
    levels = [
        _level(i, ref, fmap, camera, (B, N), dtype, channels_last)
        for i, (ref, fmap) in enumerate(zip(ref_features, query_features))
    ]
    levels.sort(key=lambda lv: lv.maps.shape[-1] * lv.maps.shape[-2])
    return levels, w


def level_weights(w: torch.Tensor, num_levels: int, coarse_max_points: int) -> list[torch.Tensor]:
    """Point weights per level ``[(B, N)] * num_levels`` (coarse to fine): the finest keeps
    ``w``; coarser ones keep at most ``coarse_max_points`` of each row's weighted points,
    evenly spaced in their order, and zero the rest (0: every level keeps ``w``)."""
    if coarse_max_points <= 0 or w.shape[1] <= coarse_max_points:
        return [w] * num_levels
    coarse = torch.zeros_like(w)
    for b in range(w.shape[0]):
        idx = torch.nonzero(w[b] > 0).squeeze(1)
        if len(idx) > coarse_max_points:
            pick = torch.linspace(0, len(idx) - 1, coarse_max_points, dtype=torch.float64)
            idx = idx[pick.round().long().to(idx.device)]
        coarse[b, idx] = w[b, idx]
    return [coarse] * (num_levels - 1) + [w]


def _level(i, ref, fmap, camera: Camera, BN: tuple[int, int], dtype, channels_last: bool) -> Level:
    """Check and build level ``i`` (maps in ``dtype``, the camera scaled to the map size)."""
    B, N = BN
    if fmap.dim() != 4 or fmap.shape[0] != B:
        raise ValueError(f"query_features[{i}] must be (B={B}, C, H, W), got {tuple(fmap.shape)}")
    if ref.shape != (B, N, fmap.shape[1]):
        raise ValueError(
            f"ref_features[{i}] must be ({B}, {N}, {fmap.shape[1]}) to match "
            f"query_features[{i}], got {tuple(ref.shape)}"
        )
    maps = fmap.to(dtype)
    if channels_last:  # 5-point grid_sample is ~5x faster on channels-last maps
        maps = maps.contiguous(memory_format=torch.channels_last)
    return Level(maps, ref.to(dtype), map_camera(camera, fmap).to(dtype))


def map_camera(camera: Camera, fmap: torch.Tensor) -> Camera:
    """The full-resolution cameras ``(B,)`` scaled to the size of maps ``(B, C, H, W)``."""
    H, W = fmap.shape[-2:]
    return scale_batch(camera, torch.stack([W / camera.size[..., 0], H / camera.size[..., 1]], -1))


def scale_batch(camera: Camera, scale: torch.Tensor) -> Camera:
    """Scale each camera of a batch by its own ``(sx, sy)``."""
    if torch.allclose(scale[:, 0], scale[:, 1], rtol=1e-5):
        scale = scale.mean(-1, keepdim=True).expand(-1, 2)  # isotropic models need sx == sy
    elif camera.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        camera = camera.as_opencv()  # one focal length cannot scale anisotropically
    return camera.scale(scale)
