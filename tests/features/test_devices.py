"""Extractors and their helpers on every device (``device`` fixture) and dtype (``dtype``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2dloc.features import load_extractor, photometric_pyramid
from s2dloc.features.common import finish_levels, pad_to_multiple
from s2dloc.features.disk_backbone import DISKBackbone
from s2dloc.features.gnnet import GNNet

torch.set_num_threads(1)

TINY = {"channels": 3, "widths": (4, 4, 8, 8), "groups": (2, 2, 2, 2)}


def _images(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(
        b, 3, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def test_pad_to_multiple_replicates_bottom_right(device, dtype):
    x = torch.arange(6, dtype=dtype, device=device).reshape(1, 1, 2, 3)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 4, 4) and y.device == device and y.dtype == dtype
    expected = torch.tensor([[0, 1, 2, 2], [3, 4, 5, 5], [3, 4, 5, 5], [3, 4, 5, 5]], dtype=dtype)
    assert torch.equal(y[0, 0].cpu(), expected)
    assert pad_to_multiple(x, 1) is x


def test_finish_levels_crops_normalises_channels_last(device, dtype, tol):
    maps = [torch.full((1, 2, 8, 8), 3.0, dtype=dtype, device=device), torch.ones(1, 2, 4, 4)]
    maps[1] = maps[1].to(device, dtype)
    out = finish_levels(maps, (7, 5), (1, 2), normalize=True)
    assert [tuple(m.shape) for m in out] == [(1, 2, 7, 5), (1, 2, 4, 3)]
    for m in out:
        assert m.device == device and m.dtype == dtype
        assert m.is_contiguous(memory_format=torch.channels_last)
        expected = torch.full_like(m, 2**-0.5)  # (c, c) normalised over 2 channels
        torch.testing.assert_close(m, expected, **tol)


def test_photometric_extractor_on_device(device, dtype, tol, no_tf32):
    images = _images(2, 24, 32).to(device, dtype)
    model = load_extractor("photometric", strides=(1, 2, 4))
    out = model(images)
    assert [tuple(m.shape) for m in out] == [(2, 3, 24, 32), (2, 3, 12, 16), (2, 3, 6, 8)]
    assert all(m.device == device and m.dtype == dtype for m in out)
    reference = photometric_pyramid(images[1].cpu().double(), (1, 2, 4))
    for m, r in zip(out, reference):
        torch.testing.assert_close(m[1].cpu(), r.to(dtype), **tol)


def test_gnnet_same_on_device_and_in_float64(device, no_tf32):
    """float32 on ``device`` agrees with float64 on the CPU (to float32 accuracy)."""
    model = GNNet(TINY).eval()
    x = _images(2, 20, 28)
    with torch.no_grad():
        reference = model.double()(x)
        out = model.float().to(device)(x.float().to(device))
    for m, r in zip(out, reference):
        assert m.device == device and m.dtype == torch.float32
        torch.testing.assert_close(m.cpu().double(), r, atol=1e-4, rtol=1e-4)


def test_gnnet_gradcheck_float64(device):
    """Input gradients of a smooth (CELU) GN-Net, float64, against finite differences.

    On CUDA the backward of max pooling and nearest upsampling adds with atomics, so two
    backward passes differ by round-off: ``nondet_tol`` allows that much, no more."""
    torch.manual_seed(0)
    model = GNNet(TINY, activation="celu", confidence=True).double().to(device)
    x = _images(1, 8, 8, seed=1).to(device).requires_grad_()

    def f(images):
        feats, conf = model.forward_with_confidence(images)
        return (*feats, *conf)

    nondet_tol = 1e-12 if device.type == "cuda" else 0.0
    assert torch.autograd.gradcheck(
        f, (x,), eps=1e-6, atol=1e-5, fast_mode=True, nondet_tol=nondet_tol
    )


def test_extract_runs_on_the_model_device_and_returns_cpu_maps(device, no_tf32):
    model = GNNet(TINY).eval().to(device)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    maps = model.extract(image)
    close = 1e-4 if device.type == "cuda" else 1e-5  # cuDNN may pick another algorithm
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float().to(device) / 255
    with torch.no_grad():
        expected = model(x)
    for m, e in zip(maps, expected):
        assert m.device.type == "cpu" and m.shape == e.shape[1:]
        torch.testing.assert_close(m, e[0].cpu(), atol=close, rtol=close)
    # A float64 model gets a float64 input.
    assert model.double().extract(image)[0].dtype == torch.float64


@pytest.mark.parametrize("confidence", [False, True])
def test_disk_backbone_on_device(device, confidence):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DISKBackbone(pretrained=False, channels=4, confidence=confidence)
    model = model.eval().to(device)
    with torch.no_grad():
        feats, conf = model.forward_with_confidence(_images(1, 20, 36).float().to(device))
    for m, s in zip(feats, model.strides):
        assert m.shape == (1, 4, -(-20 // s), -(-36 // s)) and m.device == device
        torch.testing.assert_close(m.norm(dim=1), torch.ones_like(m[:, 0]))  # normalised
    assert (conf is None) == (not confidence)
    assert conf is None or all(c.device == device and ((c > 0) & (c < 1)).all() for c in conf)
