"""GN-Net's GroupNorm and activation as one in-place pass over a channels-last map (inference).

PyTorch's channels-last GroupNorm sums each group in per-thread chunks, so its output depends
on the number of threads: a background extraction (one thread) would differ from the
foreground's (every thread) in the last bits. Here every image row's partial sums are
computed on their own and added in row order, so the values are the same for any number of
threads; normalisation, affine and activation are then one pass in place.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import nn

from s2dloc.features.fused import in_threads, nhwc

ACTIVATIONS = {nn.ReLU: 0, nn.CELU: 1}


@njit(cache=True, nogil=True)
def _row_channel_sums(x, centre, rows_per_image, square, sums, r0, r1):
    """Rows ``r0:r1`` of ``x (R, W, C)``: ``sums[r, c]`` the float64 sum over the row of
    ``x[r, :, c] - centre[b, c]`` (``b = r // rows_per_image``), or with ``square`` of its
    square (per channel, so the inner loop runs along contiguous channels)."""
    W, C = x.shape[1], x.shape[2]
    acc = np.empty(C)
    for r in range(r0, r1):
        acc[:] = 0.0
        m = centre[r // rows_per_image]
        for i in range(W):
            px = x[r, i]
            if square:
                for c in range(C):
                    d = px[c] - m[c]
                    acc[c] += d * d
            else:
                for c in range(C):
                    acc[c] += px[c]
        sums[r] = acc


@njit(cache=True, nogil=True)
def _scale_shift_act_rows(x, scale, shift, rows_per_image, act, alpha, r0, r1):
    """Rows ``r0:r1`` of ``x (R, W, C)`` in place: ``y = x * scale[b, c] + shift[b, c]`` (``b =
    r // rows_per_image``), then ReLU (``act`` 0) or CELU with ``alpha`` (``act`` 1)."""
    W, C = x.shape[1], x.shape[2]
    for r in range(r0, r1):
        a, t = scale[r // rows_per_image], shift[r // rows_per_image]
        for i in range(W):
            px = x[r, i]
            for c in range(C):
                y = px[c] * a[c] + t[c]
                if y < 0:
                    y = 0.0 if act == 0 else alpha * (math.exp(y / alpha) - 1.0)
                px[c] = y


def can_group_norm_act(norm: nn.Module, act: nn.Module) -> bool:
    """Whether :func:`group_norm_act_` computes ``act(norm(x))``: an affine GroupNorm followed by
    ReLU or CELU."""
    return isinstance(norm, nn.GroupNorm) and norm.affine and type(act) in ACTIVATIONS


def group_norm_act_(x: torch.Tensor, norm: nn.GroupNorm, act: nn.Module) -> torch.Tensor:
    """``act(norm(x))`` in place in the channels-last ``x (B, C, H, W)`` (CPU, no gradients:
    :func:`~s2dloc.features.fused.can_fuse_channels_last`); the same values for any number
    of threads. The group statistics take two passes (mean, then squared deviations), in
    float64. Returns ``x``."""
    B, C, H, W = x.shape
    G = norm.num_groups
    if not can_group_norm_act(norm, act) or C != norm.num_channels:
        raise ValueError(f"expected an affine GroupNorm of {C} channels and ReLU or CELU")
    rows = nhwc(x).reshape(B * H, W, C)
    count, per = H * W * (C // G), C // G
    sums = np.empty((B * H, C))

    def group_totals() -> np.ndarray:  # (B, C): each channel's group total, in row order
        totals = sums.reshape(B, H, G, per).sum(1).sum(-1)  # (B, G)
        return np.repeat(totals, per, axis=1)

    in_threads(_row_channel_sums, B * H, rows, np.zeros((B, C)), H, False, sums)
    mean = group_totals() / count
    in_threads(_row_channel_sums, B * H, rows, mean, H, True, sums)
    inv = 1.0 / np.sqrt(group_totals() / count + norm.eps)
    gamma = norm.weight.detach().double().numpy()
    beta = norm.bias.detach().double().numpy()
    scale = inv * gamma  # (B, C)
    shift = beta - mean * scale
    dtype = rows.dtype
    kind = ACTIVATIONS[type(act)]
    alpha = float(getattr(act, "alpha", 1.0))
    args = (scale.astype(dtype), shift.astype(dtype), H, kind, alpha)
    in_threads(_scale_shift_act_rows, B * H, rows, *args)
    return x
