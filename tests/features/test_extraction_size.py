"""Images are resized before extraction so that every level spans the image exactly: sampling a
level at a full-resolution pixel scaled by ``W_l / W`` then reads the right place for any
image size, and a long-side limit (``resize_max``) keeps large photos cheap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2dloc.features.base import DenseExtractor, PhotometricExtractor, extraction_size
from s2dloc.features.coarse import CoarseLevels
from s2dloc.features.common import pad_to_multiple
from s2dloc.features.gnnet import GNNet
from s2dloc.localization.descriptors import sample_levels


@pytest.mark.parametrize(
    "size, multiple, max_side, expected",
    [
        ((640, 480), 8, None, (640, 480)),  # already multiples: untouched
        ((605, 405), 8, None, (608, 408)),  # nearest multiples
        ((1600, 1066), 8, 1024, (1024, 680)),  # long side limited, aspect kept to rounding
        ((4000, 3000), 8, 1024, (1024, 768)),
        ((1030, 700), 8, 1024, (1024, 696)),  # never above the limit after rounding
        ((3, 2), 8, None, (8, 8)),  # at least one multiple
        ((500, 300), 16, 1024, (496, 304)),  # never enlarged by the limit
    ],
)
def test_extraction_sizes(size, multiple, max_side, expected):
    assert extraction_size(*size, multiple, max_side) == expected


def test_extraction_size_refuses_bad_input():
    with pytest.raises(ValueError, match="positive"):
        extraction_size(0, 10, 8)
    with pytest.raises(ValueError, match="multiple"):
        extraction_size(100, 100, 16, max_side=8)


class BlockAverages(DenseExtractor):
    """Level ``s``: the image padded to a multiple of 8 and averaged over ``s x s`` blocks,
    cropped to ``ceil(H / s), ceil(W / s)`` (how the learned extractors treat odd sizes)."""

    strides = (1, 2, 4, 8)
    channels = (3, 3, 3, 3)

    def forward(self, images):
        H, W = images.shape[-2:]
        x = pad_to_multiple(images, 8)
        return [
            F.avg_pool2d(x, s)[..., : math.ceil(H / s), : math.ceil(W / s)] for s in self.strides
        ]


def _ramp(W: int, H: int) -> np.ndarray:
    """Channels ``u / W``, ``v / H`` and 0.5 at pixel centres ``(x + 0.5, y + 0.5)``."""
    u = (np.arange(W) + 0.5) / W
    v = (np.arange(H) + 0.5) / H
    return np.stack(np.broadcast_arrays(u[None], v[:, None], 0.5), -1).astype(np.float32)


@pytest.mark.parametrize("size, max_side", [((203, 157), None), ((1000, 650), 256)])
def test_levels_are_sampled_at_the_right_place_for_any_size(size, max_side):
    W, H = size
    maps = BlockAverages().extract(_ramp(W, H), max_side)
    w, h = extraction_size(W, H, 8, max_side)
    assert [tuple(m.shape[-2:]) for m in maps] == [(h // s, w // s) for s in (1, 2, 4, 8)]
    g = np.random.default_rng(0)
    # interior pixels (a coarse cell from the border), full-resolution coordinates
    border = np.array([16 * W / w, 16 * H / h])
    pix = torch.from_numpy(g.uniform(border, [W, H] - border, (200, 2)))
    for level in sample_levels(maps, pix.float(), (W, H)):
        torch.testing.assert_close(level[:, 0], (pix[:, 0] / W).float(), atol=2e-4, rtol=0)
        torch.testing.assert_close(level[:, 1], (pix[:, 1] / H).float(), atol=2e-4, rtol=0)


def test_without_the_rounding_the_coarse_level_is_misplaced():
    """What the rounding fixes: an odd-sized image extracted as is puts its coarse level
    several full-resolution pixels off at the far border."""
    W, H = 203, 157
    x = torch.from_numpy(_ramp(W, H)).permute(2, 0, 1)[None]
    maps = [m[0] for m in BlockAverages()(x)]
    pix = torch.tensor([[190.0, 80.0]])
    coarse = sample_levels(maps, pix, (W, H))[-1]
    assert abs(float(coarse[0, 0]) * W - 190.0) > 3.0


def test_learned_and_wrapped_extractors_return_exact_multiples():
    image = np.random.default_rng(1).integers(0, 255, (157, 203, 3), dtype=np.uint8)
    net = GNNet().eval()
    maps = net.extract(image)
    assert [tuple(m.shape[-2:]) for m in maps] == [(160 // s, 200 // s) for s in net.strides]
    assert [tuple(m.shape[-2:]) for m in net.extract(image, 96)] == [
        (72 // s, 96 // s) for s in net.strides
    ]
    photometric = PhotometricExtractor()  # strides up to 16: sides rounded to multiples of 16
    assert photometric.size_multiple == 16
    assert tuple(photometric.extract(image)[0].shape[-2:]) == (160, 208)
    coarse = CoarseLevels(PhotometricExtractor(strides=(1, 2, 4)), (2, 4))
    assert coarse.size_multiple == 4  # the wrapped extractor's, not the pooled strides'
    assert tuple(coarse.extract(image)[0].shape[-2:]) == (156, 204)
