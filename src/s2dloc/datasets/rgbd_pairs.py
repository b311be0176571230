"""Training pairs of posed RGB-D frames, matched by lifting pixels with their depth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .pairs import PairDataset, as_float_rgb


def rgbd_correspondences(
    frame_a: Any, frame_b: Any, pixels: np.ndarray, rel_tol: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Lift pixel indices (N, 2) (u, v) of ``frame_a`` with its depth to 3D, project into
    ``frame_b`` and keep those inside the image whose z agrees with ``frame_b``'s depth at the
    pixel they fall in (relative ``rel_tol``; occlusion check). Frames have ``depth`` (H, W)
    metres (0 = none), ``camera`` and ``cam_from_world``. Returns points_a, points_b (M, 2)."""
    pixels = np.asarray(pixels, np.int64).reshape(-1, 2)
    z_a = np.asarray(frame_a.depth, np.float64)[pixels[:, 1], pixels[:, 0]]
    pixels = pixels[z_a > 0]
    p_a = torch.from_numpy(pixels + 0.5)
    X_a = frame_a.camera.double().unproject(p_a, torch.from_numpy(z_a[z_a > 0]))
    T_b_from_a = frame_b.cam_from_world.double() @ frame_a.cam_from_world.double().inv()
    X_b = T_b_from_a.transform(X_a)
    p_b, valid = frame_b.camera.double().project(X_b)
    depth_b = np.asarray(frame_b.depth, np.float64)
    h, w = depth_b.shape
    p_b, valid, z_b = p_b.numpy(), valid.numpy(), X_b[:, 2].numpy()
    u = np.clip(np.floor(np.nan_to_num(p_b[:, 0])).astype(np.int64), 0, w - 1)
    v = np.clip(np.floor(np.nan_to_num(p_b[:, 1])).astype(np.int64), 0, h - 1)
    d = depth_b[v, u]
    valid &= (d > 0) & (np.abs(d - z_b) <= rel_tol * z_b)
    return p_a.numpy()[valid], p_b[valid]


class RGBDPairs(PairDataset):
    """Pairs of RGB-D frames with poses (e.g. ``FountainDataset`` or synthetic ``View`` s).

    Frames have ``image`` (uint8 or float) or ``rgb``, ``depth``, ``camera``, ``cam_from_world``
    and ``name``. ``pairs`` lists (i, j); default: every i with i + 1 .. i + ``max_gap``.
    ``num_samples`` pixels of a with valid depth are drawn per item (default 4 * max_points).
    """

    def __init__(
        self,
        frames: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None = None,
        max_gap: int = 1,
        rel_tol: float = 0.03,
        num_samples: int | None = None,
        condition: str = "",
        **kw,
    ):
        super().__init__(**kw)
        self.frames, self.rel_tol, self.condition = frames, rel_tol, condition
        n = len(frames)
        if pairs is None:
            pairs = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + max_gap + 1))]
        self.pairs = [(int(i), int(j)) for i, j in pairs]
        if any(not (0 <= i < n and 0 <= j < n) for i, j in self.pairs):
            raise ValueError(f"pair indices out of range for {n} frames")
        self.num_samples = num_samples or 4 * self.max_points

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index, rng):
        i, j = self.pairs[index]
        fa, fb = self.frames[i], self.frames[j]
        v, u = np.nonzero(np.asarray(fa.depth) > 0)
        sel = rng.choice(len(u), min(len(u), self.num_samples), replace=False)
        pts_a, pts_b = rgbd_correspondences(fa, fb, np.stack([u[sel], v[sel]], 1), self.rel_tol)
        img = [as_float_rgb(f.image if hasattr(f, "image") else f.rgb) for f in (fa, fb)]
        return img[0], img[1], pts_a, pts_b, fa.name, fb.name, self.condition
