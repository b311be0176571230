"""Tests of the GN-Net extractor (s2dloc.features.gnnet)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from s2dloc.features.base import DenseExtractor
from s2dloc.features.gnnet import GNNet, GNNetConfig, merge_config
from s2dloc.features.registry import load_baseline
from s2dloc.utils.config import ConfigError

torch.set_num_threads(1)

SMALL = {"channels": 8, "widths": (8, 8, 16, 16), "groups": (4, 4, 4, 4)}


def _images(h: int, w: int, b: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [(37, 53), (16, 24), (9, 8)])
def test_shapes_strides_and_channels_last_for_any_size(size, device):
    h, w = size
    model = GNNet(SMALL).eval().to(device)
    with torch.no_grad():
        out = model(_images(h, w, b=2).to(device))
    assert isinstance(model, DenseExtractor)
    assert model.strides == (1, 2, 4, 8) and model.channels == (8,) * 4
    assert len(out) == 4
    for m, s in zip(out, model.strides):
        assert m.shape == (2, 8, -(-h // s), -(-w // s)) and m.device == device
        assert m.is_contiguous(memory_format=torch.channels_last)
        assert torch.isfinite(m).all()


def test_odd_size_output_is_the_crop_of_the_padded_computation():
    """An odd-sized image gives the top-left crop of its replicate-padded image's output."""
    model = GNNet(SMALL).eval()
    x = _images(13, 21)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="replicate")
    with torch.no_grad():
        a, b = model(x), model(padded)
    torch.testing.assert_close(a[0], b[0][..., :13, :21])
    torch.testing.assert_close(a[3], b[3][..., :2, :3])


def test_nearest_upsampling_only_no_transposed_convs():
    model = GNNet()
    ups = [m for m in model.modules() if isinstance(m, nn.Upsample)]
    assert ups and all(m.mode == "nearest" for m in ups)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert [n.num_groups for n in norms[:2]] == [4, 4]


def test_default_model_is_small():
    model = GNNet()
    n = model.num_parameters()
    assert 100_000 < n < 1_000_000  # under 4 MB of float32 weights
    assert model.config == GNNetConfig()


def test_seeded_untrained_model_is_deterministic():
    x = _images(16, 16)
    a = load_baseline("gnnet-untrained", seed=3, **SMALL)
    b = load_baseline("gnnet-untrained", seed=3, **SMALL)
    c = load_baseline("gnnet-untrained", seed=4, **SMALL)
    with torch.no_grad():
        fa, fb, fc = a(x), b(x), c(x)
    for u, v in zip(fa, fb):
        assert torch.equal(u, v)
    assert not torch.equal(fa[0], fc[0])
    assert not a.training


def test_global_rng_untouched_by_seeded_construction():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_baseline("gnnet-untrained", seed=0, **SMALL)
    assert torch.equal(torch.rand(3), expected)


def test_confidence_head_and_normalisation(device):
    model = GNNet(SMALL, confidence=True, normalize=True, activation="celu").eval().to(device)
    with torch.no_grad():
        feats, conf = model.forward_with_confidence(_images(19, 22).to(device))
    assert any(isinstance(m, nn.CELU) for m in model.modules())
    for f, c, s in zip(feats, conf, model.strides):
        assert c.shape == (1, 1, -(-19 // s), -(-22 // s)) and f.device == c.device == device
        assert ((c > 0) & (c < 1)).all()
        torch.testing.assert_close(f.norm(dim=1), torch.ones_like(f[:, 0]))
    assert GNNet(SMALL).forward_with_confidence(_images(8, 8))[1] is None


def test_backward_reaches_every_parameter(device):
    model = GNNet(SMALL, confidence=True).to(device)
    feats, conf = model.forward_with_confidence(_images(16, 16).to(device))
    (sum(f.square().mean() for f in feats) + sum(c.mean() for c in conf)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_config_merging_and_errors():
    conf = merge_config(GNNetConfig, {"widths": [8, 8, 16, 16]}, channels=4, groups=[2] * 4)
    assert conf.widths == (8, 8, 16, 16) and conf.channels == 4 and conf.groups == (2,) * 4
    assert merge_config(GNNetConfig, conf) == conf
    with pytest.raises(ConfigError, match=r"unknown setting 'chanels'; valid keys: \['activation'"):
        GNNet(chanels=3)
    with pytest.raises(ConfigError, match=r"'channels' must be of type int.*got '8'"):
        GNNet(channels="8")
    with pytest.raises(ConfigError, match=r"'groups' must be of type list.*got 2 \(int\)"):
        GNNet(groups=2)
    with pytest.raises(ValueError, match="one GroupNorm group count per width"):
        GNNet(groups=(4, 8))
    with pytest.raises(ValueError, match="do not divide"):
        GNNet(widths=(16, 32, 64, 128), groups=(3, 8, 8, 16))
    with pytest.raises(ValueError, match="activation"):
        GNNet(activation="gelu")
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        GNNet(SMALL)(torch.rand(1, 1, 8, 8))
