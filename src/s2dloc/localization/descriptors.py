"""Descriptors from dense feature levels: hypercolumns for sparse-to-dense matching, global
descriptors for retrieval, and point features for F-PnP.

Levels are lists of maps ``(C_l, H_l, W_l)`` of an image of size ``(W, H)``, finest first.
Pixel coordinates are full-resolution COLMAP coordinates; a level's coordinates are
``p * (W_l / W, H_l / H)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from s2dloc.features.registry import load_extractor as load_extractor  # re-exported
from s2dloc.geometry import sample

logger = logging.getLogger(__name__)


GLOBAL_SIDE = 90.0  # pixels: the long side of the level pooled into the global descriptor


def global_level(strides: Sequence[float], long_side: float, side: float = GLOBAL_SIDE) -> int:
    """Index of the level whose long side ``long_side / stride`` is nearest ``side`` pixels
    (in ratio), so that the global descriptor pools maps of about the same size, and so about
    the same share of the scene per cell, whatever the image size: stride 4 for 320x240
    images, stride 8 for 768x512."""
    return min(range(len(strides)), key=lambda i: abs(math.log(long_side / strides[i] / side)))


def match_level(strides: list[float], match_stride: float) -> int:
    """Index of the level whose stride is closest to ``match_stride``."""
    return min(range(len(strides)), key=lambda i: abs(strides[i] - match_stride))


def hypercolumn_levels(strides: list[float], m: int) -> list[int]:
    """Levels at least as coarse as the matching level ``m`` (the hypercolumn)."""
    return [i for i, s in enumerate(strides) if s >= strides[m] - 1e-6]


def _offsets(context: int) -> torch.Tensor:
    """``(K, 2)`` (du, dv) offsets of a ``(2r+1)^2`` window, rows (dv) outer, columns inner."""
    r = torch.arange(-context, context + 1, dtype=torch.float32)
    dv, du = torch.meshgrid(r, r, indexing="ij")
    return torch.stack([du.flatten(), dv.flatten()], -1)


def sample_levels(maps: list[torch.Tensor], pixels: torch.Tensor, size) -> list[torch.Tensor]:
    """Sample each level ``(C_l, H_l, W_l)`` at full-res pixels ``(M, 2)`` -> ``(M, C_l)``."""
    W, H = size
    out = []
    for fmap in maps:
        s = pixels.new_tensor([fmap.shape[-1] / W, fmap.shape[-2] / H])
        values, _ = sample(fmap[None].float(), (pixels * s)[None].float(), margin=0.0)
        out.append(values[0])
    return out


def point_descriptors(
    maps: list[torch.Tensor], pixels: torch.Tensor, size, levels: list[int], m: int, context: int
) -> torch.Tensor:
    """Hypercolumn descriptors ``(M, D)`` at pixels ``(M, 2)``: for each level of ``levels``, its
    features in a ``(2 context + 1)^2`` window of matching-level pixels, L2-normalised per level,
    concatenated and scaled to unit norm."""
    W = size[0]
    step = W / maps[m].shape[-1]
    offs = _offsets(context).to(pixels) * step  # (K, 2) full-res pixels
    M, K = len(pixels), len(offs)
    pts = (pixels[:, None] + offs[None]).reshape(M * K, 2)
    blocks = []
    for li in levels:
        (v,) = sample_levels([maps[li]], pts, size)
        v = v.reshape(M, K, -1).transpose(1, 2).reshape(M, -1)  # (M, C*K), channel outer
        blocks.append(F.normalize(v, dim=-1))
    return torch.cat(blocks, -1) / len(levels) ** 0.5


def dense_descriptors(
    maps: list[torch.Tensor], levels: list[int], m: int, context: int
) -> torch.Tensor:
    """The query's dense hypercolumn ``(D, H_m, W_m)`` at the matching level's resolution."""
    Hm, Wm = maps[m].shape[-2:]
    k = 2 * context + 1
    blocks = []
    for li in levels:
        x = maps[li][None].float()
        if x.shape[-2:] != (Hm, Wm):
            x = F.interpolate(x, size=(Hm, Wm), mode="bilinear", align_corners=False)
        if context > 0:
            x = F.pad(x, (context,) * 4, mode="replicate")
            x = F.unfold(x, k).reshape(1, -1, Hm, Wm)  # (1, C*k*k, Hm, Wm), channel outer
        blocks.append(F.normalize(x[0], dim=0))
    return torch.cat(blocks, 0) / len(levels) ** 0.5


def global_descriptor(
    maps: list[torch.Tensor], levels: list[int], grid: int = 4, p: float = 3.0
) -> torch.Tensor:
    """GeM pooling over a ``grid x grid`` layout of the chosen levels -> L2-normalised ``(G,)``.

    Signed features are split into their positive and negative parts so zero-mean features
    (e.g. photometric) keep their information.
    """
    parts = []
    for li in levels:
        x = maps[li].float()
        x = torch.cat([x.clamp_min(0), (-x).clamp_min(0)], 0).clamp_min(1e-6)
        g = F.adaptive_avg_pool2d(x[None].pow(p), (grid, grid))[0].pow(1 / p)
        parts.append(F.normalize(g.flatten(), dim=0))
    return F.normalize(torch.cat(parts), dim=0)
