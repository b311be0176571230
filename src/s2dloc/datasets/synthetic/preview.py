"""A PNG grid of the same viewpoints under every condition, plus depth."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .world import World, same_view_all_conditions
from .write import write_png


def colorize_depth(depth: np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) float RGB (turbo colour map of inverse depth, black = none)."""
    valid = depth > 0
    inv = np.where(valid, 1.0 / np.maximum(depth, 1e-6), 0.0)
    hi = 1.0 / max(float(depth[valid].min()) if valid.any() else 1.0, 1e-6)
    lo = 1.0 / max_depth if max_depth else 0.0
    x = np.clip((inv - lo) / max(hi - lo, 1e-9), 0, 1)
    bgr = cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    return np.where(valid[..., None], bgr[..., ::-1] / 255.0, 0.0).astype(np.float32)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
    scale = max(img.shape[0] / 300, 0.35)
    org = (4, int(14 * scale) + 2)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(
        img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale * 0.5, (255, 255, 255), 1, cv2.LINE_AA
    )
    return img.astype(np.float32) / 255.0


def preview_grid(world: World, num_views: int = 3, max_width: int = 320) -> np.ndarray:
    """(rows * h, (num_conditions + 1) * w, 3) grid: one row per database viewpoint, one column per
    condition, last column the depth."""
    n = len(world.database)
    indices = np.linspace(0, n - 1, min(num_views, n)).round().astype(int)
    rows = []
    for i in indices:
        views = same_view_all_conditions(world, int(i))
        tiles = [_label(v.rgb, v.condition) for v in views]
        tiles.append(_label(colorize_depth(views[0].depth), "depth"))
        rows.append(np.concatenate(tiles, 1))
    grid = np.concatenate(rows, 0)
    h, w = views[0].depth.shape
    if w > max_width:
        s = max_width / w
        size = (int(grid.shape[1] * s), int(grid.shape[0] * s))
        grid = cv2.resize(grid, size, interpolation=cv2.INTER_AREA)
    return grid


def write_preview(world: World, path: str | Path, num_views: int = 3) -> Path:
    """Write :func:`preview_grid` as a PNG (one column per condition in ``CONDITIONS`` + depth)."""
    write_png(Path(path), preview_grid(world, num_views))
    return Path(path)
