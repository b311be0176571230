"""Bilinear sampling of dense feature maps, with spatial gradients, at sub-pixel points.

Points are continuous pixel coordinates of the map (COLMAP convention: pixel centres at
``+0.5``), which ``grid_sample(align_corners=False)`` expects as ``2 * p / size - 1``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_gradients(fmap: torch.Tensor) -> torch.Tensor:
    """Central-difference gradients of maps ``(B, C, H, W)`` -> ``(B, 2, C, H, W)`` (d/du, d/dv).

    One-sided differences are used on the border rows and columns.
    """
    pad = F.pad(fmap, (1, 1, 1, 1), mode="replicate")
    du = (pad[..., 1:-1, 2:] - pad[..., 1:-1, :-2]) / 2
    dv = (pad[..., 2:, 1:-1] - pad[..., :-2, 1:-1]) / 2
    # Replicate padding halves the border derivative; restore the one-sided difference.
    du[..., :, 0] *= 2
    du[..., :, -1] *= 2
    dv[..., 0, :] *= 2
    dv[..., -1, :] *= 2
    return torch.stack([du, dv], 1)


def stack_with_gradients(fmap: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 3C, H, W)``: features, d/du and d/dv, for one-pass sampling."""
    grads = feature_gradients(fmap)
    return torch.cat([fmap, grads[:, 0], grads[:, 1]], 1)


def sample(
    fmap: torch.Tensor, points: torch.Tensor, margin: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly sample maps ``(B, C, H, W)`` at pixels ``(B, N, 2)``.

    Returns values ``(B, N, C)`` and a validity mask ``(B, N)``: points whose coordinates lie in
    ``[margin, size - margin]`` (with the default 0.5, inside the span of pixel centres, where
    bilinear interpolation needs no padding).
    """
    size = points.new_tensor(fmap.shape[-1:-3:-1])  # (W, H)
    grid = points * (2 / size) - 1
    values = F.grid_sample(
        fmap, grid[:, None], mode="bilinear", padding_mode="border", align_corners=False
    )
    valid = ((points >= margin) & (points <= size - margin)).all(-1)
    return values[:, :, 0].transpose(1, 2), valid


def sample_with_gradients(
    fmap: torch.Tensor, points: torch.Tensor, margin: float = 0.5, stacked: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample features ``(B, N, C)``, their gradients ``(B, N, C, 2)`` and validity ``(B, N)``.

    The gradient is the central-difference map of :func:`feature_gradients` sampled
    bilinearly. Bilinear interpolation commutes with shifts, so away from the border this
    equals ``(F(p + e) - F(p - e)) / 2`` sampled at 5 points per query, which costs ``O(N C)``
    instead of ``O(H W C)`` for building gradient maps; points within 1.5 px of the border
    are marked invalid on this path. With ``stacked`` the input is the
    output of :func:`stack_with_gradients` and is sampled directly (exact at the border too).
    """
    B, N, _ = points.shape
    if stacked:
        values, valid = sample(fmap, points, margin)
        C = fmap.shape[1] // 3
        values = values.reshape(B, N, 3, C)
        return values[..., 0, :], values[..., 1:, :].transpose(-1, -2), valid
    offsets = points.new_tensor([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]])
    shifted = (points[:, None] + offsets[None, :, None]).reshape(B, 5 * N, 2)
    values, _ = sample(fmap, shifted, margin)
    values = values.reshape(B, 5, N, -1)
    grads = torch.stack([values[:, 1] - values[:, 2], values[:, 3] - values[:, 4]], -1) / 2
    # The shifted samples reach 1 px further: within 1.5 px of the border they would be
    # clamped and the difference would no longer be the central difference of the map.
    m = max(margin, 1.5)
    size = points.new_tensor(fmap.shape[-1:-3:-1])
    valid = ((points >= m) & (points <= size - m)).all(-1)
    return values[:, 0], grads, valid
