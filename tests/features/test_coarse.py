"""Pooled coarse levels: exact averages, sizes and strides of the wrapped extractor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from s2dloc.features.base import PhotometricExtractor
from s2dloc.features.coarse import CoarseLevels, coarse_levels


def test_pooled_levels_are_block_averages_of_the_coarsest_map():
    g = torch.Generator().manual_seed(0)
    fine, top = torch.randn(3, 40, 64, generator=g), torch.randn(3, 10, 16, generator=g)
    out = coarse_levels([fine, top], (2, 4))
    assert len(out) == 4 and out[0] is fine and out[1] is top
    assert out[2].shape == (3, 5, 8) and out[3].shape == (3, 3, 4)  # ceil(10 / 4) = 3
    torch.testing.assert_close(out[2][:, 1, 2], top[:, 2:4, 4:6].mean(dim=(1, 2)))
    torch.testing.assert_close(out[3][:, 2, 3], top[:, 8:10, 12:16].mean(dim=(1, 2)))
    batched = coarse_levels([top[None]], (2,))
    torch.testing.assert_close(batched[1][0], out[2])


@pytest.mark.parametrize("factors", [(1,), (4, 2), (2, 2), ()])
def test_bad_factors_are_refused(factors):
    if not factors:
        assert len(coarse_levels([torch.zeros(1, 4, 4)], factors)) == 1
        return
    with pytest.raises(ValueError, match="pooling factors"):
        coarse_levels([torch.zeros(1, 4, 4)], factors)


def test_wrapped_extractor_reports_its_levels():
    base = PhotometricExtractor(strides=(1, 2, 4))
    ext = CoarseLevels(base, (2, 4))
    assert ext.strides == (1, 2, 4, 8, 16) and ext.channels == (3,) * 5
    image = np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    maps, own = ext.extract(image), base.extract(image)
    h, w = own[-1].shape[-2:]
    assert [tuple(m.shape[-2:]) for m in maps] == [
        *(tuple(m.shape[-2:]) for m in own),
        (math.ceil(h / 2), math.ceil(w / 2)),
        (math.ceil(h / 4), math.ceil(w / 4)),
    ]
    for a, b in zip(maps, own):
        torch.testing.assert_close(a, b)
