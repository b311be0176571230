"""The channels-last bfloat16 input of a DISK decoder block equals the plain path's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2dloc.features import disk_backbone
from s2dloc.features.disk_backbone import DISKBackbone
from s2dloc.features.fused import instance_norm_prelu_channels_last, upsample_cat
from s2dloc.features.fused_decoder import norm_prelu_upsample_cat


def plain_path(bottom, skip, slope, eps, dtype=torch.bfloat16):
    """The plain tensors' route: concatenation written out, normalised channels-last in float32,
    then rounded to bfloat16 (nearest even)."""
    x = upsample_cat(bottom.contiguous(), skip.contiguous())
    return instance_norm_prelu_channels_last(x, slope, eps).to(dtype)


def inputs(B=2, Cb=6, Cs=3, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    bottom = torch.randn(B, Cb, h, w, generator=g) * 3 + 1
    skip = torch.randn(B, Cs, 2 * h, 2 * w, generator=g) * 2 - 0.5
    slope = torch.linspace(-0.2, 0.8, Cb + Cs)
    return bottom, skip, slope


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels_last_bottom", [False, True])
def test_equals_the_plain_path_bit_for_bit(threads, channels_last_bottom):
    bottom, skip, slope = inputs()
    expected = plain_path(bottom, skip, slope, 1e-5)
    if channels_last_bottom:  # as the previous bfloat16 convolution leaves it
        bottom = bottom.contiguous(memory_format=torch.channels_last)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            out = norm_prelu_upsample_cat(bottom, skip, slope, 1e-5)
    finally:
        torch.set_num_threads(before)
    assert out.dtype == torch.bfloat16 and out.shape == (2, 9, 10, 14)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_float32_equals_the_plain_path(threads):
    """In float32 (the input of a Winograd convolution): the plain path's values, up to the
    last bits of the statistics, summed in another order."""
    bottom, skip, slope = inputs(seed=2)
    expected = plain_path(bottom, skip, slope, 1e-5, torch.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            out = norm_prelu_upsample_cat(
                bottom.contiguous(memory_format=torch.channels_last),
                skip,
                slope,
                1e-5,
                torch.float32,
            )
    finally:
        torch.set_num_threads(before)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="bfloat16 or float32"):
        norm_prelu_upsample_cat(bottom, skip, slope, 1e-5, torch.float16)


def test_matches_the_torch_layers():
    bottom, skip, slope = inputs(B=1, Cb=4, Cs=2, h=6, w=4, seed=1)
    up = F.interpolate(bottom, scale_factor=2, mode="bilinear", align_corners=False)
    layers = F.prelu(F.instance_norm(torch.cat([up, skip], 1), eps=1e-5), slope)
    out = norm_prelu_upsample_cat(bottom, skip, slope, 1e-5).float()
    # bfloat16 keeps 8 significant bits: within half a unit of its last place
    torch.testing.assert_close(out, layers, rtol=2**-8, atol=1e-6)


def test_names_what_does_not_fit():
    bottom, skip, slope = inputs()
    with pytest.raises(ValueError, match="cannot upsample"):
        norm_prelu_upsample_cat(bottom, skip[..., :-1], slope, 1e-5)
    with pytest.raises(ValueError, match="4 values for 9 channels"):
        norm_prelu_upsample_cat(bottom, skip, slope[:4], 1e-5)


def test_bf16_extraction_builds_every_decoder_input_with_it(monkeypatch):
    """With the bfloat16 decoder, every decoder block's input comes from this kernel, and the
    features equal those of the plain path in its place, bit for bit."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    model.bf16_decoder = True
    image = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    calls = []

    def counted(bottom, skip, slope, eps, *dtype):
        calls.append(tuple(skip.shape))
        return norm_prelu_upsample_cat(bottom, skip, slope, eps, *dtype)

    monkeypatch.setattr(disk_backbone, "norm_prelu_upsample_cat", counted)
    fast = model.extract(image)
    assert len(calls) == 4  # every decoder block, the full-resolution one last
    assert calls[-1][-2:] == (48, 80)  # padded to a multiple of 16
    monkeypatch.setattr(disk_backbone, "norm_prelu_upsample_cat", plain_path)
    reference = model.extract(image)
    for a, b in zip(fast, reference, strict=True):
        assert a.permute(1, 2, 0).is_contiguous()  # (C, H, W) stored channels-last
        assert torch.equal(a, b)
