"""Inference-only CPU kernels for the DISK trunk's blocks (no autograd).

A DISK block normalises its input per channel (instance norm, no affine), applies a
per-channel PReLU, then convolves. PyTorch runs the first two as separate passes that each
allocate a full-size output; at full resolution (80 channels x the image) these passes cost
as much as a quarter of the extractor's time. :func:`instance_norm_prelu_` does both in one
pass per channel, in place, over channel ranges in parallel threads (the kernel releases the
GIL), and :func:`upsample_cat` writes the decoder's upsampled input straight into the
concatenation buffer.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit

_pool: ThreadPoolExecutor | None = None


@njit(cache=True, nogil=True)
def _norm_prelu_rows(x, slope, r0, r1, eps):
    """Rows ``r0:r1`` of ``x (R, n)`` (row ``r`` is channel ``r % len(slope)``), in place:
    ``(x - mean) / sqrt(var + eps)``, then ``y if y > 0 else slope * y``."""
    n = x.shape[1]
    C = slope.shape[0]
    for r in range(r0, r1):
        row = x[r]
        s = 0.0
        for i in range(n):
            s += row[i]
        mean = s / n
        s2 = 0.0
        for i in range(n):
            d = row[i] - mean
            s2 += d * d
        inv = 1.0 / math.sqrt(s2 / n + eps)
        a = slope[r % C]
        for i in range(n):
            y = (row[i] - mean) * inv
            row[i] = y if y > 0 else a * y


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max(1, torch.get_num_threads()))
    return _pool


def can_fuse(x: torch.Tensor) -> bool:
    """Whether a forward pass on ``x`` can use these kernels: gradients off (they bypass
    autograd) and ``x`` a contiguous float CPU tensor."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.is_contiguous()
    )


def instance_norm_prelu_(x: torch.Tensor, slope: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.prelu(F.instance_norm(x, eps=eps), slope)`` computed in place in ``x (B, C, H, W)``
    (contiguous, CPU, see :func:`can_fuse`); ``slope (C,)``. Returns ``x``."""
    B, C, H, W = x.shape
    if slope.numel() != C:
        raise ValueError(f"PReLU slope has {slope.numel()} values for {C} channels")
    rows = x.view(B * C, H * W).numpy()
    a = slope.detach().to(x.dtype).contiguous().numpy()
    workers = min(B * C, max(1, torch.get_num_threads()))
    if workers == 1:
        _norm_prelu_rows(rows, a, 0, B * C, eps)
        return x
    bounds = np.linspace(0, B * C, workers + 1).astype(int)
    jobs = [
        _threads().submit(_norm_prelu_rows, rows, a, int(r0), int(r1), eps)
        for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    for job in jobs:
        job.result()
    return x


def upsample_cat(bottom: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``torch.cat([F.interpolate(bottom, scale_factor=2, mode="bilinear"), skip], 1)`` with
    the upsampled channels written in place into the result: ``bottom (B, Cb, h, w)``,
    ``skip (B, Cs, 2h, 2w)`` -> ``(B, Cb + Cs, 2h, 2w)``."""
    B, Cb, h, w = bottom.shape
    out = torch.empty(B, Cb + skip.shape[1], 2 * h, 2 * w, dtype=bottom.dtype)
    for b in range(B):  # each batch entry's channel slice is contiguous
        torch.ops.aten.upsample_bilinear2d.out(
            bottom[b : b + 1], [2 * h, 2 * w], False, 2.0, 2.0, out=out[b : b + 1, :Cb]
        )
    out[:, Cb:] = skip
    return out
