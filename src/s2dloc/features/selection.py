"""Choosing image points worth aligning: textured pixels with valid, smooth depth."""

from __future__ import annotations

import numpy as np
import torch


def select_textured_pixels(rgb: np.ndarray, depth: np.ndarray, n: int, rng) -> torch.Tensor:
    """Pixel centres ``(n, 2)`` with strong gradients and valid depth, spread over the image."""
    gray = rgb.mean(-1)
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    border = 8
    valid = np.zeros_like(depth, bool)
    valid[border:-border, border:-border] = True
    valid &= depth > 0
    # Avoid depth discontinuities, where the lifted point is ambiguous.
    dz_y, dz_x = np.gradient(depth)
    valid &= np.hypot(dz_x, dz_y) < 0.02 * np.maximum(depth, 1e-6)
    if not valid.any():
        raise ValueError("no pixel with valid, smooth depth to select points from")
    candidates = np.flatnonzero(valid & (mag > np.quantile(mag[valid], 0.5)))
    pick = rng.choice(candidates, size=min(n, candidates.size), replace=False)
    v, u = np.unravel_index(pick, depth.shape)
    return torch.from_numpy(np.stack([u + 0.5, v + 0.5], -1))


def lift_textured_points(
    rgb: np.ndarray, depth: np.ndarray, camera, cam_from_world, n: int, rng
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick textured pixels (:func:`select_textured_pixels`) and lift them with ``depth``.

    Returns world points ``(N, 3)``, pixels ``(N, 2)`` and their z-depths ``(N,)`` (float64).
    """
    pixels = select_textured_pixels(rgb, depth, n, rng).double()
    z = torch.from_numpy(np.asarray(depth)[pixels[:, 1].long(), pixels[:, 0].long()]).double()
    X_cam = camera.unproject(pixels[None], z[None])[0]
    return cam_from_world.inv().transform(X_cam), pixels, z
