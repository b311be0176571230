"""A DISK decoder block's input, channels-last from end to end (inference).

A decoder block upsamples its bottom input 2x (bilinear), concatenates the encoder's skip,
normalises every channel (instance norm), gates it (PReLU) and convolves. With the
convolutions in bfloat16 on channels-last input, building that input through plain
``(B, C, H, W)`` tensors (:func:`s2dloc.features.fused.upsample_cat`, then
:func:`s2dloc.features.fused.instance_norm_prelu_channels_last`) costs a conversion of the
previous convolution's output to a plain float32 tensor, the concatenation written in full
and a transposition. :func:`norm_prelu_upsample_cat` reads the bottom channels-last (the
previous convolution's output as it comes) and never stores the upsampled map: one pass
computes each channel's statistics from upsampled rows rebuilt in cache, and a second writes
the normalised, gated input of the convolution: in bfloat16 where the CPU has it natively,
else in float32 for a Winograd convolution (:mod:`s2dloc.features.winograd`). The values are
those of the plain path: the same float32 upsampled values, float64 statistics (summed in
another order, about the bottom's mean) and, in bfloat16, rounding to nearest even.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from s2dloc.features.fused import REDUCE, in_threads, nhwc, row_stats, workspace


@njit(cache=True, nogil=True)
def _upsampled_row(bottom, b, oy, vrow, orow):
    """Output row ``oy`` of the 2x bilinear upsampling (half-pixel centres, edges clamped) of
    ``bottom (B, h, w, C)`` into the first ``C`` columns of ``orow (2w, >= C)`` (float32), as
    :func:`s2dloc.features.fused.upsample_cat` computes it: rows blended 1/4 : 3/4 in float64
    into ``vrow (w, C)``, then columns."""
    h, w, C = bottom.shape[1], bottom.shape[2], bottom.shape[3]
    k = oy // 2
    ya = max(k - 1, 0) if oy % 2 == 0 else min(k + 1, h - 1)
    for j in range(w):
        ra, rb, o = bottom[b, ya, j], bottom[b, k, j], vrow[j]
        for c in range(C):
            o[c] = 0.25 * ra[c] + 0.75 * rb[c]
    for ox in range(2 * w):
        j = ox // 2
        xa = max(j - 1, 0) if ox % 2 == 0 else min(j + 1, w - 1)
        pa, pb, o = vrow[xa], vrow[j], orow[ox]
        for c in range(C):
            o[c] = 0.25 * pa[c] + 0.75 * pb[c]


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _row_moments(bottom, pilot, sums, squares, r0, r1):
    """Per channel, the sums of ``v - pilot[b]`` and of its square over upsampled output row
    ``r`` (``b * 2h + y``) into ``sums[r]``, ``squares[r]`` ``(C,)``."""
    h, w, C = bottom.shape[1], bottom.shape[2], bottom.shape[3]
    vrow, orow = np.empty((w, C)), np.empty((2 * w, C), dtype=np.float32)
    k = np.empty(C)
    for r in range(r0, r1):
        b = r // (2 * h)
        _upsampled_row(bottom, b, r % (2 * h), vrow, orow)
        k[:] = pilot[b]
        s, q = sums[r], squares[r]
        s[:] = 0.0
        q[:] = 0.0
        for ox in range(2 * w):
            o = orow[ox]
            for c in range(C):
                d = o[c] - k[c]
                s[c] += d
                q[c] += d * d


@njit(cache=True, nogil=True)
def _gated_row(bottom, skip, b, y, m, iv, slope, vrow, orow):
    """Row ``y`` of image ``b``: the upsampled ``bottom (B, h, w, Cb)`` then ``skip
    (B, Cs, 2h, 2w)``, normalised with ``m``, ``iv`` ``(Cb + Cs,)`` and gated by ``slope``,
    into ``orow (2w, Cb + Cs)`` (float32)."""
    Cb, Cs = bottom.shape[3], skip.shape[1]
    W = orow.shape[0]
    _upsampled_row(bottom, b, y, vrow, orow)
    for c in range(Cs):
        src = skip[b, c, y]
        for x in range(W):
            orow[x, Cb + c] = src[x]
    for x in range(W):
        o = orow[x]
        for c in range(Cb + Cs):
            v = (o[c] - m[c]) * iv[c]
            o[c] = v if v > 0 else slope[c] * v


@njit(cache=True, nogil=True)
def _write_rows(bottom, skip, mean, inv, slope, out, r0, r1):
    """Rows ``r0:r1`` (``b * 2h + y``) of ``out (B, 2h, 2w, Cb + Cs)``: the upsampled
    ``bottom (B, h, w, Cb)`` then ``skip (B, Cs, 2h, 2w)``, normalised with ``mean``, ``inv``
    ``(B, Cb + Cs)``, gated by ``slope (Cb + Cs,)``, in float32 (``out`` float32) or rounded
    from float32 to bfloat16 (``out`` ``uint16``: bfloat16 bits, nearest even)."""
    h, w, Cb = bottom.shape[1], bottom.shape[2], bottom.shape[3]
    C, W = Cb + skip.shape[1], 2 * w
    vrow, orow = np.empty((w, Cb)), np.empty((W, C), dtype=np.float32)
    bits = orow.view(np.uint32)
    m, iv = np.empty(C), np.empty(C)
    for r in range(r0, r1):
        b, y = r // (2 * h), r % (2 * h)
        m[:], iv[:] = mean[b], inv[b]
        dst = out[b, y]
        if out.itemsize == 4:  # float32: straight into the output row
            _gated_row(bottom, skip, b, y, m, iv, slope, vrow, dst)
            continue
        _gated_row(bottom, skip, b, y, m, iv, slope, vrow, orow)
        for x in range(W):
            u, t = bits[x], dst[x]
            for c in range(C):
                t[c] = (u[c] + 0x7FFF + ((u[c] >> 16) & 1)) >> 16


def norm_prelu_upsample_cat(
    bottom: torch.Tensor,
    skip: torch.Tensor,
    slope: torch.Tensor,
    eps: float,
    dtype: torch.dtype = torch.bfloat16,
) -> torch.Tensor:
    """``F.prelu(F.instance_norm(torch.cat([F.interpolate(bottom, scale_factor=2,
    mode="bilinear"), skip], 1), eps=eps), slope)`` in ``dtype`` (bfloat16 or float32),
    channels-last, in this thread's ``"channels_last"``
    :func:`~s2dloc.features.fused.workspace` (overwritten by the next call): the input of a
    bfloat16 or a Winograd convolution (:mod:`s2dloc.features.winograd`).

    ``bottom (B, Cb, h, w)`` float32 (channels-last is read in place), ``skip (B, Cs, 2h, 2w)``
    float32, ``slope (Cb + Cs,)``; returns ``(B, Cb + Cs, 2h, 2w)``. No gradients (CPU
    inference only, see :func:`~s2dloc.features.fused.can_fuse`).
    """
    B, Cb, h, w = bottom.shape
    Cs = skip.shape[1]
    if skip.shape != (B, Cs, 2 * h, 2 * w) or bottom.dtype != torch.float32:
        raise ValueError(f"cannot upsample {tuple(bottom.shape)} onto {tuple(skip.shape)}")
    if slope.numel() != Cb + Cs:
        raise ValueError(f"PReLU slope has {slope.numel()} values for {Cb + Cs} channels")
    if dtype not in (torch.bfloat16, torch.float32):
        raise ValueError(f"expected bfloat16 or float32 output, got {dtype}")
    H, W = 2 * h, 2 * w
    bot = nhwc(bottom.contiguous(memory_format=torch.channels_last))
    sk = skip.detach().contiguous().numpy()
    # One pass for both moments, about the bottom's channel means: bilinear upsampling keeps
    # a map's mean, so the deviations from it sum to about zero and the variance loses
    # nothing to cancellation.
    pilot = bottom.detach().mean((2, 3)).double().numpy()  # (B, Cb); float32 is close enough
    sums, squares = np.empty((B * H, Cb)), np.empty((B * H, Cb))
    in_threads(_row_moments, B * H, bot, pilot, sums, squares)
    shift = sums.reshape(B, H, Cb).sum(1) / (H * W)
    mean, inv = np.empty((B, Cb + Cs)), np.empty((B, Cb + Cs))
    mean[:, :Cb] = pilot + shift
    var = squares.reshape(B, H, Cb).sum(1) / (H * W) - shift * shift
    inv[:, :Cb] = 1.0 / np.sqrt(np.maximum(var, 0.0) + eps)
    stats = np.empty((B * Cs, 2))
    in_threads(row_stats, B * Cs, sk.reshape(B * Cs, H * W), eps, stats)
    mean[:, Cb:], inv[:, Cb:] = stats[:, 0].reshape(B, Cs), stats[:, 1].reshape(B, Cs)
    bf16 = dtype == torch.bfloat16
    out = workspace((B, H, W, Cb + Cs), torch.int16 if bf16 else dtype, "channels_last")
    a = slope.detach().to(torch.float32).double().contiguous().numpy()
    dst = out.numpy().view(np.uint16) if bf16 else out.numpy()
    in_threads(_write_rows, B * H, bot, sk, mean, inv, a, dst)
    return (out.view(torch.bfloat16) if bf16 else out).permute(0, 3, 1, 2)
