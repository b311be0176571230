"""Inference-only CPU kernels for the DISK trunk and GN-Net (no autograd), each a drop-in for
what its PyTorch layers compute.

A DISK block normalises its input per channel (instance norm, no affine), applies a
per-channel PReLU, then convolves; a decoder block (DISK's and GN-Net's) first upsamples 2x
and concatenates a skip. PyTorch runs each step as a pass over the tensor with a fresh
full-size output, and at full resolution these passes (and the page faults of their outputs)
cost a quarter to a third of the extraction. Here:

- :func:`instance_norm_prelu_`: normalise and gate in one pass per channel, in place;
- :func:`upsample_cat` (bilinear, DISK) and :func:`upsample_nearest_cat` (nearest,
  channels-last, GN-Net): the upsampled map written straight into the concatenation, which
  can live in a per-thread :func:`workspace` reused between calls;
- :func:`normalize_channels_last`: the output levels L2-normalised and stored channels-last in
  one pass.

The DISK decoder's bfloat16 path builds its blocks' input channels-last from end to end
(:mod:`s2dloc.features.fused_decoder`).

Each kernel splits its rows or channels over ``torch.get_num_threads()`` workers of the
calling thread's own pool (the kernels release the GIL; a background extraction's workers keep
its lower priority). :func:`can_fuse` and :func:`can_fuse_channels_last` say when they apply.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch
from numba import njit

from s2dloc.utils.threads import worker_pool

# Reductions may reorder their float64 sums (and so vectorise): 3x faster, equal to ~1e-15.
REDUCE = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _mean_inv_std(row, eps):
    """``(mean, 1 / sqrt(var + eps))`` of a 1-D array (two passes, float64 sums)."""
    n = row.shape[0]
    s = 0.0
    for i in range(n):
        s += row[i]
    mean = s / n
    s2 = 0.0
    for i in range(n):
        d = row[i] - mean
        s2 += d * d
    return mean, 1.0 / math.sqrt(s2 / n + eps)


@njit(cache=True, nogil=True)
def _norm_prelu_rows(x, slope, eps, r0, r1):
    """Rows ``r0:r1`` of ``x (R, n)`` (row ``r`` is channel ``r % len(slope)``), in place:
    ``(x - mean) / sqrt(var + eps)``, then ``y if y > 0 else slope * y``."""
    n = x.shape[1]
    C = slope.shape[0]
    for r in range(r0, r1):
        row = x[r]
        mean, inv = _mean_inv_std(row, eps)
        a = slope[r % C]
        for i in range(n):
            y = (row[i] - mean) * inv
            row[i] = y if y > 0 else a * y


@njit(cache=True, nogil=True)
def row_stats(x, eps, stats, r0, r1):
    """Rows ``r0:r1`` of ``x (R, n)``: ``stats[r] = (mean, 1 / sqrt(var + eps))``."""
    for r in range(r0, r1):
        stats[r, 0], stats[r, 1] = _mean_inv_std(x[r], eps)


@njit(cache=True, nogil=True)
def _norm_prelu_to_channels_last(x, stats, slope, out, r0, r1):
    """Rows ``r0:r1`` (``b * H + y``) of ``x (B, C, H, W)`` normalised with ``stats (B * C, 2)``
    and gated by ``slope (C,)`` into ``out (B, H, W, C)``: per block of 32 pixels, each
    channel's run computed contiguously into a tile, then the tile transposed (it stays in
    L1)."""
    B, C, H, W = x.shape
    tile = np.empty((C, 32), dtype=x.dtype)
    for r in range(r0, r1):
        b, y = r // H, r % H
        for i0 in range(0, W, 32):
            n = min(32, W - i0)
            for c in range(C):
                mean, inv = stats[b * C + c, 0], stats[b * C + c, 1]
                a = slope[c]
                src = x[b, c, y, i0 : i0 + n]
                t = tile[c]
                for i in range(n):
                    v = (src[i] - mean) * inv
                    t[i] = v if v > 0 else a * v
            for i in range(n):
                o = out[b, y, i0 + i]
                for c in range(C):
                    o[c] = tile[c, i]


@njit(cache=True, nogil=True)
def _upsample2_channels(x, out, c0, c1):
    """Channels ``c0:c1`` of ``x (C, h, w)`` upsampled 2x into ``out (C, 2h, 2w)``: bilinear,
    half-pixel centres, edges clamped (``F.interpolate(..., scale_factor=2, mode="bilinear",
    align_corners=False)``). Every output pixel blends its source pixels with weights 3/4 and
    1/4 along each axis (1 at the borders)."""
    h, w = x.shape[1], x.shape[2]
    row = np.empty(w, dtype=np.float64)
    for c in range(c0, c1):
        for oy in range(2 * h):
            k = oy // 2
            if oy % 2 == 0:  # source row k - 1/4
                ya, yb = max(k - 1, 0), k
            else:  # source row k + 1/4
                ya, yb = min(k + 1, h - 1), k
            for j in range(w):  # 3/4 of the near row + 1/4 of the far one
                row[j] = 0.25 * x[c, ya, j] + 0.75 * x[c, yb, j]
            o = out[c, oy]
            o[0] = row[0]
            for j in range(1, w):
                o[2 * j] = 0.25 * row[j - 1] + 0.75 * row[j]
            for j in range(w - 1):
                o[2 * j + 1] = 0.75 * row[j] + 0.25 * row[j + 1]
            o[2 * w - 1] = row[w - 1]


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _normalize_rows(x, out, r0, r1):
    """Rows ``r0:r1`` (``b * H + y``) of ``x (B, C, H, W)`` (any strides), each pixel divided by
    its L2 norm over channels (at least 1e-12), into ``out (B, H, W, C)``: pixel by pixel when
    ``x`` is channels-last, else channel runs per row."""
    B, C, H, W = x.shape
    if x.strides[1] == x.itemsize:  # channels-last input: each pixel's channels adjacent
        for r in range(r0, r1):
            b, y = r // H, r % H
            for i in range(W):
                s = 0.0
                for c in range(C):
                    v = x[b, c, y, i]
                    s += v * v
                inv = 1.0 / max(math.sqrt(s), 1e-12)
                for c in range(C):
                    out[b, y, i, c] = x[b, c, y, i] * inv
        return
    norm = np.empty(W, dtype=np.float64)
    for r in range(r0, r1):
        b, y = r // H, r % H
        norm[:] = 0.0
        for c in range(C):
            for i in range(W):
                v = x[b, c, y, i]
                norm[i] += v * v
        for i in range(W):
            norm[i] = 1.0 / max(math.sqrt(norm[i]), 1e-12)
        for i0 in range(0, W, 16):  # 16 pixels at a time: their C channels stay in L1
            i1 = min(i0 + 16, W)
            for c in range(C):
                for i in range(i0, i1):
                    out[b, y, i, c] = x[b, c, y, i] * norm[i]


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _normalize_pixel_(row):
    """One pixel's channels ``row (C,)`` divided in place by their L2 norm (at least 1e-12)."""
    s = 0.0
    for c in range(row.shape[0]):
        s += row[c] * row[c]
    inv = 1.0 / max(math.sqrt(s), 1e-12)
    for c in range(row.shape[0]):
        row[c] = row[c] * inv


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _normalize_pixels_(x, r0, r1):
    """Rows ``r0:r1`` of ``x (P, C)`` (one pixel's channels per row) divided in place by their L2
    norm (at least 1e-12)."""
    for p in range(r0, r1):
        _normalize_pixel_(x[p])


@njit(cache=True, nogil=True, fastmath=REDUCE)
def _normalize_bfloat16_rows(bits, out, out_bits, r0, r1):
    """Rows ``r0:r1`` (``b * H + y``) of ``out (B, H, W, C)`` (float32; ``out_bits`` its
    ``uint32`` view): the pixels of the bfloat16 map ``bits (B, >= H, >= W, C)`` (``uint16``)
    widened to float32 (exact) and divided by their L2 norm as :func:`_normalize_pixels_` does."""
    B, H, W, C = out.shape
    for r in range(r0, r1):
        b, y = r // H, r % H
        for i in range(W):
            src, wide = bits[b, y, i], out_bits[b, y, i]
            for c in range(C):
                wide[c] = np.uint32(src[c]) << 16
            _normalize_pixel_(out[b, y, i])


@njit(cache=True, nogil=True)
def _upsample_nearest_cat(bottom, skip, out, r0, r1):
    """Rows ``r0:r1`` of ``out (B, 2h, 2w, Cb + Cs)``: ``bottom (B, h, w, Cb)`` repeated 2x2,
    then ``skip (B, 2h, 2w, Cs)`` (all channels-last)."""
    B, _, w, Cb = bottom.shape
    Cs = skip.shape[3]
    for b in range(B):
        for y in range(r0, r1):
            for x in range(2 * w):
                for c in range(Cb):
                    out[b, y, x, c] = bottom[b, y // 2, x // 2, c]
                for c in range(Cs):
                    out[b, y, x, Cb + c] = skip[b, y, x, c]


@njit(cache=True, nogil=True)
def _avg_pool2_planes(x, out, r0, r1):
    """Planes ``r0:r1`` of ``out (R, h, w)``: the 2x2 means of ``x (R, >= 2h, >= 2w)``, summed
    in ``F.avg_pool2d``'s order (row by row), so the results are the same bit for bit."""
    _, h, w = out.shape
    for r in range(r0, r1):
        for y in range(h):
            for c in range(w):
                s = x[r, 2 * y, 2 * c] + x[r, 2 * y, 2 * c + 1]
                out[r, y, c] = (s + x[r, 2 * y + 1, 2 * c] + x[r, 2 * y + 1, 2 * c + 1]) / 4


def in_threads(kernel, n: int, *args) -> None:
    """``kernel(*args, r0, r1)`` over ``range(n)`` split into one range per thread."""
    workers = min(n, max(1, torch.get_num_threads()))
    bounds = np.linspace(0, n, workers + 1).astype(int)
    ranges = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers == 1:
        kernel(*args, *ranges[0])
        return
    pool = worker_pool()
    jobs = [pool.submit(kernel, *args, r0, r1) for r0, r1 in ranges]
    for job in jobs:
        job.result()


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 convolutions natively (AVX-512 BF16 or AMX): there a
    5x5 convolution of 80 channels at 640x480 takes 0.45x its float32 time; elsewhere
    bfloat16 is emulated and slower."""
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


FLOATS = (torch.float32, torch.float64)


def can_fuse(x: torch.Tensor, contiguous: bool = True, dtypes: tuple = FLOATS) -> bool:
    """Whether a forward pass on ``x`` can use these kernels: gradients off (they bypass
    autograd) and ``x`` a CPU tensor of one of ``dtypes``, contiguous where ``contiguous``."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype in dtypes
        and (x.is_contiguous() or not contiguous)
    )


def avg_pool2(x: torch.Tensor) -> torch.Tensor:
    """``F.avg_pool2d(x, 2)`` of ``x (B, C, H, W)`` (contiguous, CPU, see :func:`can_fuse`), the
    same values, in threads over the planes: torch's kernel for this layout does not vectorise
    (a 16x480x640 map took 16 ms, 3.5 ms channels-last)."""
    B, C, H, W = x.shape
    out = x.new_empty(B, C, H // 2, W // 2)
    planes = x.view(B * C, H, W).numpy()
    in_threads(_avg_pool2_planes, B * C, planes, out.view(B * C, H // 2, W // 2).numpy())
    return out


def frozen(owner: torch.nn.Module, name: str, tensors: tuple, make):
    """``make(*tensors)`` (weights derived for inference: cast, folded) kept on ``owner`` under
    ``name`` until one of ``tensors`` is replaced or changed in place (another tensor, or its
    storage or version counter moves, as an optimizer step or ``load_state_dict`` does; the
    entry holds the tensors, so a new one cannot take a freed one's place). Detached: for
    passes without gradients."""
    key = tuple((t.data_ptr(), t._version) for t in tensors)
    cache = owner.__dict__.setdefault("_frozen", {})
    hit = cache.get(name)
    same = hit is not None and all(a is b for a, b in zip(hit[0], tensors, strict=True))
    if not same or hit[1] != key:
        with torch.no_grad():
            hit = cache[name] = (tensors, key, make(*(t.detach() for t in tensors)))
    return hit[2]


def conv1x1_channels_last(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
    """``F.conv2d(x, weight, bias)`` of ``x (B, C, H, W)`` (CPU, see :func:`can_fuse`;
    contiguous, or with each pixel's channels adjacent: channels-last, or the first channels of
    a channels-last map) with a 1x1 ``weight (C', C, 1, 1)``, as one batched matrix product
    whose ``(B, H * W, C')`` result is the output channels-last. The values do not depend on
    the number of threads: on some CPUs (AVX2 without AVX-512) ``conv2d``'s 1x1 kernels split
    the channel sums by thread (for ``(C, H, W)`` input, and for one output channel), which
    would make a background extraction differ from the foreground's. At 64 channels it is also
    1.6-3x faster than ``conv2d`` on ``(C, H, W)`` input."""
    B, C, H, W = x.shape
    Co = weight.shape[0]
    if weight.shape[1:] != (C, 1, 1):
        raise ValueError(f"expected a 1x1 weight for {C} channels, got {tuple(weight.shape)}")
    if x.is_contiguous():
        rows = x.reshape(B, C, H * W).transpose(1, 2)
    elif channels_adjacent(x):
        rows = x.permute(0, 2, 3, 1).reshape(B, H * W, C)  # a view: pixels at a fixed stride
    else:
        raise ValueError(f"expected a contiguous or channels-last map, got strides {x.stride()}")
    out = torch.baddbmm(bias, rows, weight.reshape(Co, C).t().expand(B, C, Co))
    return out.view(B, H, W, Co).permute(0, 3, 1, 2)


def channels_adjacent(x: torch.Tensor) -> bool:
    """Whether each pixel's channels of ``x (B, C, H, W)`` are adjacent and the pixels of an
    image evenly spaced, row after row (channels-last, or a leading channel slice of it)."""
    B, C, H, W = x.shape
    return (C == 1 or x.stride(1) == 1) and (H == 1 or x.stride(2) == W * x.stride(3))


def instance_norm_prelu_(x: torch.Tensor, slope: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.prelu(F.instance_norm(x, eps=eps), slope)`` computed in place in ``x (B, C, H, W)``
    (contiguous, CPU, see :func:`can_fuse`); ``slope (C,)``. Returns ``x``."""
    B, C, H, W = x.shape
    if slope.numel() != C:
        raise ValueError(f"PReLU slope has {slope.numel()} values for {C} channels")
    rows = x.view(B * C, H * W).numpy()
    a = slope.detach().to(x.dtype).contiguous().numpy()
    in_threads(_norm_prelu_rows, B * C, rows, a, eps)
    return x


def instance_norm_prelu_channels_last(
    x: torch.Tensor, slope: torch.Tensor, eps: float
) -> torch.Tensor:
    """``F.prelu(F.instance_norm(x, eps=eps), slope)`` of ``x (B, C, H, W)`` (contiguous, CPU,
    see :func:`can_fuse`) as a new channels-last tensor in this thread's second
    :func:`workspace` (overwritten by the next call): what a convolution reads fastest (a 5x5
    convolution of 80 channels at 640x480 takes about 0.65x the time on channels-last input).
    For a bfloat16 convolution see :func:`s2dloc.features.fused_decoder.norm_prelu_upsample_cat`."""
    B, C, H, W = x.shape
    if slope.numel() != C:
        raise ValueError(f"PReLU slope has {slope.numel()} values for {C} channels")
    src = x.numpy()
    stats = np.empty((B * C, 2), dtype=np.float64)
    in_threads(row_stats, B * C, src.reshape(B * C, H * W), eps, stats)
    out = workspace((B, H, W, C), x.dtype, "channels_last")
    a = slope.detach().to(x.dtype).contiguous().numpy()
    in_threads(_norm_prelu_to_channels_last, B * H, src, stats, a, out.numpy())
    return out.permute(0, 3, 1, 2)


# Largest buffer kept for reuse between calls (per thread), see :func:`workspace`.
WORKSPACE_MAX_BYTES = 256 * 2**20
_local = threading.local()


def workspace(shape: tuple[int, ...], dtype: torch.dtype, name: str = "buffer") -> torch.Tensor:
    """An uninitialised tensor of ``shape`` on this thread's reused buffer ``name``, for a
    temporary that is dead before the next call (a fresh allocation of 100 MB costs about 40 ms
    of page faults here, 5x the pass that fills it). Above :data:`WORKSPACE_MAX_BYTES`: a fresh
    tensor."""
    size = math.prod(shape) * dtype.itemsize
    if size > WORKSPACE_MAX_BYTES:
        return torch.empty(shape, dtype=dtype)
    buf = getattr(_local, name, None)
    if buf is None or buf.numel() < size:
        buf = torch.empty(size, dtype=torch.uint8)
        setattr(_local, name, buf)
    return buf[:size].view(dtype).view(shape)


def upsample_cat(bottom: torch.Tensor, skip: torch.Tensor, reuse: bool = False) -> torch.Tensor:
    """``torch.cat([F.interpolate(bottom, scale_factor=2, mode="bilinear"), skip], 1)`` with
    the upsampled channels written in place into the result: ``bottom (B, Cb, h, w)``,
    ``skip (B, Cs, 2h, 2w)`` -> ``(B, Cb + Cs, 2h, 2w)``. With ``reuse`` the result lives in
    this thread's :func:`workspace`: it is overwritten by the next call."""
    B, Cb, h, w = bottom.shape
    shape = (B, Cb + skip.shape[1], 2 * h, 2 * w)
    out = workspace(shape, bottom.dtype) if reuse else torch.empty(shape, dtype=bottom.dtype)
    up = (
        out[:, :Cb].view(B * Cb, 2 * h, 2 * w)
        if B == 1
        else torch.empty(B * Cb, 2 * h, 2 * w, dtype=bottom.dtype)
    )
    src = bottom.contiguous().view(B * Cb, h, w)
    in_threads(_upsample2_channels, B * Cb, src.numpy(), up.numpy())
    if B > 1:
        out[:, :Cb] = up.view(B, Cb, 2 * h, 2 * w)
    out[:, Cb:] = skip
    return out


def normalize_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=1)`` of ``x (B, C, H, W)`` (CPU, any strides) stored channels-last,
    in one pass and one allocation."""
    B, C, H, W = x.shape
    out = torch.empty(B, H, W, C, dtype=x.dtype)
    in_threads(_normalize_rows, B * H, x.detach().numpy(), out.numpy())
    return out.permute(0, 3, 1, 2)


def normalize_channels_last_(x: torch.Tensor) -> torch.Tensor:
    """``F.normalize(x, dim=1)`` of the channels-last ``x (B, C, H, W)`` (see
    :func:`can_fuse_channels_last`) computed in place; returns ``x``. For a temporary: it saves
    the new tensor of :func:`normalize_channels_last` (at 640x480, a third of its time)."""
    B, C, H, W = x.shape
    in_threads(_normalize_pixels_, B * H * W, nhwc(x).reshape(B * H * W, C))
    return x


def normalize_bfloat16_channels_last(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.normalize(x[..., :H, :W].float(), dim=1)`` of the channels-last bfloat16 ``x
    (B, C, H', W')`` (``size = (H, W)``, at most ``(H', W')``) as a new channels-last float32
    tensor, in one pass: the widening and the normalisation of
    :func:`normalize_channels_last_`, bit for bit, without the float32 copy in between."""
    if x.dtype != torch.bfloat16 or not x.is_contiguous(memory_format=torch.channels_last):
        raise ValueError(f"expected a channels-last bfloat16 map, got {x.dtype} {x.stride()}")
    B, C, Hp, Wp = x.shape
    H, W = size
    if H > Hp or W > Wp:
        raise ValueError(f"cannot crop a {Hp}x{Wp} map to {H}x{W}")
    out = torch.empty(B, H, W, C, dtype=torch.float32)
    bits = x.detach().permute(0, 2, 3, 1).view(torch.int16).numpy().view(np.uint16)
    o = out.numpy()
    in_threads(_normalize_bfloat16_rows, B * H, bits, o, o.view(np.uint32))
    return out.permute(0, 3, 1, 2)


def nhwc(x: torch.Tensor) -> np.ndarray:
    """The ``(B, H, W, C)`` numpy view of a channels-last ``(B, C, H, W)`` tensor."""
    return x.detach().permute(0, 2, 3, 1).numpy()


def can_fuse_channels_last(x: torch.Tensor, dtypes: tuple = FLOATS) -> bool:
    """:func:`can_fuse` for a channels-last ``(B, C, H, W)`` tensor."""
    cl = x.is_contiguous(memory_format=torch.channels_last)
    return can_fuse(x, contiguous=False, dtypes=dtypes) and cl


def upsample_nearest_cat(bottom: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """``torch.cat([F.interpolate(bottom, scale_factor=2, mode="nearest"), skip], 1)`` of
    channels-last tensors, channels-last, in this thread's :func:`workspace` (overwritten by the
    next call): ``bottom (B, Cb, h, w)``, ``skip (B, Cs, 2h, 2w)``."""
    B, Cb, h, w = bottom.shape
    Cs = skip.shape[1]
    out = workspace((B, 2 * h, 2 * w, Cb + Cs), bottom.dtype)
    in_threads(_upsample_nearest_cat, 2 * h, nhwc(bottom), nhwc(skip), out.numpy())
    return out.permute(0, 3, 1, 2)
