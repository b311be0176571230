"""Image pairs from known camera poses: each image with its nearest camera centres that look the
same way (for matching large posed image sets without trying every pair)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from s2dloc.utils.io import write_text_atomic


def pairs_from_poses(
    centers: np.ndarray,
    directions: np.ndarray,
    names: list[str],
    num_neighbors: int = 10,
    max_angle_deg: float = 75.0,
) -> list[tuple[str, str]]:
    """Pairs of each image with its ``num_neighbors`` nearest camera centres among the images
    whose viewing directions differ by at most ``max_angle_deg``.

    Args:
        centers: ``(N, 3)`` camera centres in the world frame.
        directions: ``(N, 3)`` viewing directions (optical axes, any length) in the world frame.
        names: the ``N`` image names.
    Returns:
        Sorted, unique pairs ``(a, b)`` with ``a < b``.
    """
    centers, directions = np.asarray(centers, float), np.asarray(directions, float)
    n = len(names)
    if centers.shape != (n, 3) or directions.shape != (n, 3):
        raise ValueError(
            f"expected ({n}, 3) centres and directions for {n} names, got "
            f"{centers.shape} and {directions.shape}"
        )
    if num_neighbors < 1:
        raise ValueError(f"num_neighbors must be >= 1, got {num_neighbors}")
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    cos = unit @ unit.T
    dist = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
    dist[cos < np.cos(np.deg2rad(max_angle_deg))] = np.inf
    np.fill_diagonal(dist, np.inf)
    pairs = set()
    for i in range(n):
        order = np.argsort(dist[i], kind="stable")[:num_neighbors]
        for j in order[np.isfinite(dist[i, order])]:
            a, b = sorted((names[i], names[int(j)]))
            pairs.add((a, b))
    return sorted(pairs)


def write_pairs(pairs: list[tuple[str, str]], path: str | Path) -> Path:
    """Write ``name_a name_b`` lines (hloc / COLMAP match-list format)."""
    write_text_atomic(path, "".join(f"{a} {b}\n" for a, b in pairs))
    return Path(path)
