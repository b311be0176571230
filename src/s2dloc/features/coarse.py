"""Coarser feature levels for a wider F-PnP basin.

The coarsest map of an extractor, average-pooled by 2, 4, 8, ...: on those levels a start that
is tens of pixels off at full resolution lies within a few pixels of the optimum, and the
averaged features vary smoothly over that distance. Reference features for those levels are
sampled from the reference image's pooled maps like any other level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from s2dloc.features.base import DenseExtractor


def coarse_levels(maps: Sequence[torch.Tensor], factors: Sequence[int]) -> list[torch.Tensor]:
    """``maps`` (per level ``(B, C_l, H_l, W_l)`` or ``(C_l, H_l, W_l)``, finest first) followed
    by the coarsest map average-pooled by each of ``factors`` (sizes ``ceil(H_L / k)``)."""
    maps = list(maps)
    if not maps:
        raise ValueError("coarse_levels needs at least one feature map")
    check_factors(factors)
    top = maps[-1]
    batched = top if top.dim() == 4 else top[None]
    for k in factors:
        pooled = F.avg_pool2d(batched, int(k), int(k), ceil_mode=True)
        maps.append(pooled if top.dim() == 4 else pooled[0])
    return maps


def check_factors(factors: Sequence[int]) -> None:
    """``ValueError`` unless ``factors`` are increasing integers >= 2."""
    if any(int(k) < 2 for k in factors) or list(factors) != sorted(set(factors)):
        raise ValueError(f"pooling factors must be increasing integers >= 2, got {list(factors)}")


class CoarseLevels(DenseExtractor):
    """``extractor``'s levels plus its coarsest level pooled by each of ``factors``."""

    def __init__(self, extractor: DenseExtractor, factors: Sequence[int] = (2, 4, 8)):
        super().__init__()
        check_factors(factors)
        self.extractor = extractor
        self.factors = tuple(int(k) for k in factors)
        top = extractor.strides[-1]
        self.strides = (*extractor.strides, *(top * k for k in self.factors))
        self.channels = (*extractor.channels, *(extractor.channels[-1],) * len(self.factors))

    @property
    def size_multiple(self) -> int:
        """The wrapped extractor's (the pooled levels are ``ceil(H_L / k)``, as pooled)."""
        return self.extractor.size_multiple

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return coarse_levels(self.extractor(images), self.factors)
