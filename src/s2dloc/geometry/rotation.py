"""Conversions between rotation matrices and unit quaternions (``w, x, y, z`` order)."""

from __future__ import annotations

import torch


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from quaternions ``(..., 4)`` in ``wxyz`` order.

    The quaternion is normalised first; ``q`` and ``-q`` give the same matrix.
    """
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*q.shape[:-1], 3, 3)  # fmt: skip


def matrix_to_quat(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` (``wxyz``, ``w >= 0``) of rotation matrices ``(..., 3, 3)``.

    Picks the numerically best of the four standard formulas per matrix.
    """
    m = R
    diag = torch.stack([m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    trace = diag.sum(-1)
    # Candidate (unnormalised) quaternions, each well conditioned in its own regime.
    c0 = torch.stack(
        [
            1 + trace,
            m[..., 2, 1] - m[..., 1, 2],
            m[..., 0, 2] - m[..., 2, 0],
            m[..., 1, 0] - m[..., 0, 1],
        ],
        -1,
    )
    c1 = torch.stack(
        [
            m[..., 2, 1] - m[..., 1, 2],
            1 + 2 * diag[..., 0] - trace,
            m[..., 0, 1] + m[..., 1, 0],
            m[..., 0, 2] + m[..., 2, 0],
        ],
        -1,
    )
    c2 = torch.stack(
        [
            m[..., 0, 2] - m[..., 2, 0],
            m[..., 0, 1] + m[..., 1, 0],
            1 + 2 * diag[..., 1] - trace,
            m[..., 1, 2] + m[..., 2, 1],
        ],
        -1,
    )
    c3 = torch.stack(
        [
            m[..., 1, 0] - m[..., 0, 1],
            m[..., 0, 2] + m[..., 2, 0],
            m[..., 1, 2] + m[..., 2, 1],
            1 + 2 * diag[..., 2] - trace,
        ],
        -1,
    )
    cands = torch.stack([c0, c1, c2, c3], -2)  # (..., 4, 4)
    choice = torch.cat([trace[..., None], diag], -1).argmax(-1)
    q = torch.gather(cands, -2, choice[..., None, None].expand(*choice.shape, 1, 4))[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)
