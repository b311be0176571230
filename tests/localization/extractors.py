"""Deterministic test extractors: content-based random patch projections, and an oracle
positional encoding of pixel coordinates (distinctive everywhere)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from s2dloc.features.base import DenseExtractor
from s2dloc.features.photometric import photometric_pyramid


class PatchProjection(DenseExtractor):
    """Each level: a fixed random projection of the ``k x k`` patches of the photometric level."""

    def __init__(self, strides=(1, 2, 4, 8), channels: int = 32, k: int = 5, seed: int = 0):
        super().__init__()
        self.strides = tuple(strides)
        self.channels = (channels,) * len(strides)
        self.k = k
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(channels, 3 * k * k, generator=g))
        self.calls = 0

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self.calls += len(images)
        out = []
        for b in range(len(images)):
            levels = photometric_pyramid(images[b], self.strides, blur=0.7)
            per = []
            for x in levels:
                p = F.unfold(F.pad(x[None], (self.k // 2,) * 4, mode="replicate"), self.k)
                y = (self.proj @ p[0]).reshape(-1, *x.shape[-2:])
                per.append(y)
            out.append(per)
        return [torch.stack(lv) for lv in zip(*out)]


class PositionalEncoding(DenseExtractor):
    """Random Fourier features of the full-resolution pixel coordinates ``(u - du, v - dv)``."""

    def __init__(self, strides=(1, 2, 4, 8), channels: int = 64, shift=(0.0, 0.0), seed=0):
        super().__init__()
        self.strides = tuple(strides)
        self.channels = (channels,) * len(strides)
        g = torch.Generator().manual_seed(seed)
        # Wavelengths between ~4 and ~200 px so coarse matches are unique and fine ones precise.
        freq = torch.randn(channels // 2, 2, generator=g)
        freq = F.normalize(freq, dim=-1) * torch.logspace(-2.3, -0.6, channels // 2)[:, None]
        self.register_buffer("freq", freq * 2 * math.pi)
        self.register_buffer("phase", torch.rand(channels // 2, generator=g) * 2 * math.pi)
        self.shift = shift

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        B, _, H, W = images.shape
        out = []
        for s in self.strides:
            h, w = math.ceil(H / s), math.ceil(W / s)
            v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            uv = torch.stack([u * W / w - self.shift[0], v * H / h - self.shift[1]], -1)
            a = uv @ self.freq.T + self.phase
            f = torch.cat([a.sin(), a.cos()], -1).permute(2, 0, 1)
            out.append(f[None].expand(B, -1, -1, -1).contiguous())
        return out
