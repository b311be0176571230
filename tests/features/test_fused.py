"""The fused inference kernels of the DISK trunk compute what PyTorch's layers compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2dloc.features import disk_backbone, fused, gnnet
from s2dloc.features.common import fingerprint, finish_levels
from s2dloc.features.disk_backbone import DISKBackbone
from s2dloc.features.fused import (
    avg_pool2,
    can_fuse,
    conv1x1_channels_last,
    frozen,
    instance_norm_prelu_,
    instance_norm_prelu_channels_last,
    normalize_bfloat16_channels_last,
    normalize_channels_last,
    normalize_channels_last_,
    upsample_cat,
    upsample_nearest_cat,
)
from s2dloc.features.fused_group_norm import group_norm_act_
from s2dloc.features.gnnet import GNNet


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_instance_norm_prelu_matches_torch(dtype, threads):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 5, 9, 11, generator=g) * 3 + 2).to(dtype)
    slope = torch.tensor([0.25, -0.1, 0.0, 1.0, 0.6], dtype=torch.float32)
    expected = F.prelu(F.instance_norm(x, eps=1e-5), slope.to(dtype))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = instance_norm_prelu_(x, slope, 1e-5)
    finally:
        torch.set_num_threads(before)
    assert out is x  # in place
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_instance_norm_prelu_channels_last_matches_torch(dtype, threads):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(2, 5, 9, 70, generator=g) * 3 + 2).to(dtype)  # 70: tiles of 32 + a rest
    slope = torch.tensor([0.25, -0.1, 0.0, 1.0, 0.6], dtype=torch.float32)
    expected = F.prelu(F.instance_norm(x, eps=1e-5), slope.to(dtype))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = instance_norm_prelu_channels_last(x.clone(), slope, 1e-5)
    finally:
        torch.set_num_threads(before)
    assert out.shape == x.shape and out.dtype == dtype
    assert out.is_contiguous(memory_format=torch.channels_last)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="3 values for 5 channels"):
        instance_norm_prelu_channels_last(x, torch.ones(3), 1e-5)


def test_instance_norm_prelu_names_a_slope_mismatch():
    with pytest.raises(ValueError, match="3 values for 5 channels"):
        instance_norm_prelu_(torch.randn(1, 5, 4, 4), torch.ones(3), 1e-5)


@pytest.mark.parametrize("B", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_upsample_cat_matches_torch(B, dtype):
    g = torch.Generator().manual_seed(1)
    bottom = torch.randn(B, 3, 5, 7, generator=g).to(dtype)
    skip = torch.randn(B, 4, 10, 14, generator=g).to(dtype)
    up = F.interpolate(bottom, scale_factor=2, mode="bilinear", align_corners=False)
    out = upsample_cat(bottom, skip)
    assert out.dtype == dtype
    torch.testing.assert_close(out, torch.cat([up, skip], 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [(1, 16, 48, 64), (2, 3, 9, 11)])  # odd sizes: floor
def test_avg_pool2_is_avg_pool2d_bit_for_bit(dtype, threads, shape):
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(*shape, generator=g) * 1e3).to(dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = avg_pool2(x)
    finally:
        torch.set_num_threads(before)
    assert out.dtype == dtype and torch.equal(out, F.avg_pool2d(x, 2))


def test_kernels_only_without_gradients():
    x = torch.randn(1, 2, 4, 4)
    assert not can_fuse(x)  # gradients on: the layers, for autograd
    with torch.no_grad():
        assert can_fuse(x)
        assert not can_fuse(x.transpose(2, 3)) and not can_fuse(x.half())


def test_disk_trunk_fused_equals_layers(monkeypatch):
    """Extraction with the fused kernels gives the features of the trunk's own layers, and
    training (gradients on) still uses the layers and gets gradients."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    model.bf16_decoder = False  # float32 throughout (bfloat16: see the test below)
    model.winograd_decoder = False  # PyTorch's convolutions (Winograd: see below)
    image = np.random.default_rng(0).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    calls = []

    def counted(kernel):
        def run(x, slope, eps, *dtype):
            calls.append((kernel.__name__, x.shape))
            return kernel(x, slope, eps, *dtype)

        return run

    for name in ("instance_norm_prelu_", "instance_norm_prelu_channels_last"):
        monkeypatch.setattr(disk_backbone, name, counted(getattr(disk_backbone, name)))
    pools = []
    monkeypatch.setattr(disk_backbone, "avg_pool2", lambda x: pools.append(1) or avg_pool2(x))
    with_kernels = model.extract(image)
    assert len(calls) == 8  # every block but the first
    assert len(pools) == 4  # every downsampling block
    # the last block feeds the full-resolution convolution channels-last
    assert calls[-1][0] == "instance_norm_prelu_channels_last"
    assert all(name == "instance_norm_prelu_" for name, _ in calls[:-1])
    model.fuse_inference = False
    plain = model.extract(image)
    for a, b in zip(with_kernels, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert len(calls) == 8  # the layers ran
    model.fuse_inference = True
    images = torch.rand(1, 3, 32, 48)
    loss = sum(m.square().mean() for m in model(images))
    loss.backward()
    assert model.trunk.path_up[0].conv[1].weight.grad is not None


def test_workspace_is_reused_and_capped(monkeypatch):
    a = fused.workspace((2, 3, 4), torch.float32)
    b = fused.workspace((5, 2), torch.float64)
    assert a.shape == (2, 3, 4) and b.dtype == torch.float64
    assert a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()  # one buffer
    monkeypatch.setattr(fused, "WORKSPACE_MAX_BYTES", 64)
    c = fused.workspace((5, 2), torch.float64)  # 80 bytes: a fresh tensor
    assert c.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()
    out = upsample_cat(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 4, 4), reuse=True)
    assert out.shape == (1, 2, 4, 4) and out[0, 0].eq(1).all() and out[0, 1].eq(0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_normalize_channels_last_matches_torch(dtype, layout):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 9, 40, generator=g).to(dtype).contiguous(memory_format=layout)
    x = x[..., 1:7, 3:37]  # a cropped view
    x[0, :, 2, 3] = 0  # a zero pixel stays zero
    out = normalize_channels_last(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.normalize(x, dim=1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalize_channels_last_in_place_matches_torch(dtype):
    g = torch.Generator().manual_seed(3)
    x = (
        torch.randn(2, 37, 6, 9, generator=g)
        .to(dtype)
        .contiguous(memory_format=torch.channels_last)
    )
    x[1, :, 4, 2] = 0  # a zero pixel stays zero
    expected = F.normalize(x, dim=1)
    with torch.no_grad():
        assert normalize_channels_last_(x) is x
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    torch.testing.assert_close(x, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [(9, 40), (7, 33)])
def test_normalize_bfloat16_is_widen_then_normalize_bit_for_bit(threads, size):
    """A bfloat16 map widened and normalised in one pass, cropped to ``size``: the values of
    ``normalize_channels_last_(x.float())`` exactly, a fresh float32 channels-last tensor."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 32, 9, 40, generator=g).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    x[1, :, 3, 5] = 0  # a zero pixel stays zero
    before, n = x.clone(), torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        out = normalize_bfloat16_channels_last(x, size)
    finally:
        torch.set_num_threads(n)
    expected = normalize_channels_last_(x.float())[..., : size[0], : size[1]]
    assert out.dtype == torch.float32 and out.shape == (2, 32, *size)
    assert out.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, before)
    assert torch.equal(out, expected) and float(out[1, :, 3, 5].abs().max()) == 0.0
    torch.testing.assert_close(out, F.normalize(x.float(), dim=1)[..., : size[0], : size[1]])
    with torch.no_grad():
        levels = finish_levels([x, x.float()], (size[0], size[1]), (1, 1), True)
    assert torch.equal(levels[0], expected) and torch.equal(levels[1], expected)
    with pytest.raises(ValueError, match="channels-last bfloat16"):
        normalize_bfloat16_channels_last(x.contiguous(), size)
    with pytest.raises(ValueError, match="cannot crop a 9x40 map to 10x40"):
        normalize_bfloat16_channels_last(x, (10, 40))


def test_finish_levels_in_place_only_on_whole_channels_last_maps():
    """``in_place`` normalises a channels-last map where it is, never a cropped or plain one."""
    g = torch.Generator().manual_seed(5)
    whole = torch.randn(1, 4, 8, 5, generator=g).contiguous(memory_format=torch.channels_last)
    padded = torch.randn(1, 4, 8, 6, generator=g).contiguous(memory_format=torch.channels_last)
    plain = torch.randn(1, 4, 4, 3, generator=g)
    before = [m.clone() for m in (whole, padded, plain)]
    with torch.no_grad():
        out = finish_levels([whole, padded, plain], (8, 5), (1, 1, 2), True, in_place=True)
    assert out[0].data_ptr() == whole.data_ptr()  # normalised where it is
    assert out[1].shape == (1, 4, 8, 5) and torch.equal(padded, before[1])  # cropped: a copy
    assert torch.equal(plain, before[2])
    for o, b, size in zip(out, before, [(8, 5), (8, 5), (4, 3)], strict=True):
        expected = F.normalize(b[..., : size[0], : size[1]], dim=1)
        torch.testing.assert_close(o, expected, rtol=1e-6, atol=1e-6)
        assert o.is_contiguous(memory_format=torch.channels_last)


def test_upsample_nearest_cat_matches_torch():
    g = torch.Generator().manual_seed(4)
    cl = torch.channels_last
    bottom = torch.randn(2, 3, 5, 7, generator=g).contiguous(memory_format=cl)
    skip = torch.randn(2, 4, 10, 14, generator=g).contiguous(memory_format=cl)
    out = upsample_nearest_cat(bottom, skip)
    assert out.is_contiguous(memory_format=cl)
    up = F.interpolate(bottom, scale_factor=2, mode="nearest")
    torch.testing.assert_close(out, torch.cat([up, skip], 1), rtol=0, atol=0)


@pytest.mark.parametrize("act", [torch.nn.ReLU(), torch.nn.CELU(0.7)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("B", [1, 2])
def test_group_norm_act_matches_torch(act, dtype, B):
    g = torch.Generator().manual_seed(0)
    norm = torch.nn.GroupNorm(4, 8).to(dtype)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0, generator=g)
        norm.bias.uniform_(-1.0, 1.0, generator=g)
    x = 3.0 + 2.0 * torch.randn(B, 8, 6, 5, generator=g, dtype=dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    expected = act(norm(x.clone()))
    with torch.no_grad():
        out = group_norm_act_(x, norm, act)
    assert out is x and out.is_contiguous(memory_format=torch.channels_last)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out, expected, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="affine GroupNorm of 8 channels"):
        group_norm_act_(x, torch.nn.GroupNorm(2, 8), torch.nn.Tanh())


@pytest.mark.parametrize("activation", ["relu", "celu"])
def test_gnnet_fused_equals_layers(activation, monkeypatch):
    """GN-Net's extraction with the kernels gives the features of its layers; gradients on, the
    layers run."""
    torch.manual_seed(0)
    model = GNNet(activation=activation).eval()
    image = np.random.default_rng(1).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    calls = []

    def counted(bottom, skip):
        calls.append(bottom.shape[1])
        return upsample_nearest_cat(bottom, skip)

    norms = []

    def norm_counted(x, norm, act):
        norms.append(type(act).__name__)
        return group_norm_act_(x, norm, act)

    monkeypatch.setattr(gnnet, "upsample_nearest_cat", counted)
    monkeypatch.setattr(gnnet, "group_norm_act_", norm_counted)
    with_kernels = model.extract(image)
    assert calls == [128, 64, 32]  # the three decoder blocks
    assert norms == [activation.upper() if activation == "celu" else "ReLU"] * 14  # 7 blocks
    model.fuse_inference = False
    plain = model.extract(image)
    assert len(calls) == 3 and len(norms) == 14
    for a, b in zip(with_kernels, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    model.fuse_inference = True
    loss = sum(m.square().mean() for m in model(torch.rand(1, 3, 32, 48)))
    loss.backward()
    assert model.encoder[0][1].weight.grad is not None


@pytest.mark.parametrize("model_cls", [DISKBackbone, GNNet])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batches_fused_equal_layers(model_cls, dtype):
    """A batch of odd-sized images, without gradients: the kernels give the layers' features."""
    torch.manual_seed(0)
    kwargs = {"pretrained": False} if model_cls is DISKBackbone else {}
    model = model_cls(**kwargs).to(dtype).eval()
    model.bf16_decoder = False
    images = torch.rand(3, 3, 33, 17, dtype=dtype)
    with torch.no_grad():
        with_kernels = model(images)
        model.fuse_inference = False
        plain = model(images)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    if model_cls is DISKBackbone and dtype == torch.float32:
        tol = 2.5e-4  # the decoder convolves by Winograd's F(6x6, 5x5) (features/winograd.py)
    for a, b in zip(with_kernels, plain, strict=True):
        assert a.shape[0] == 3
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("Co", [1, 4])
def test_conv1x1_channels_last_matches_conv2d(B, dtype, layout, Co):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 6, 5, 7, generator=g, dtype=dtype)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = x.contiguous(memory_format=fmt)
    weight, bias = torch.randn(Co, 6, 1, 1, dtype=dtype), torch.randn(Co, dtype=dtype)
    out = conv1x1_channels_last(x, weight, bias)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, F.conv2d(x, weight, bias))
    with pytest.raises(ValueError, match="1x1 weight for 6 channels"):
        conv1x1_channels_last(x, torch.randn(Co, 6, 3, 3), bias)
    with pytest.raises(ValueError, match="contiguous or channels-last"):
        conv1x1_channels_last(x.transpose(2, 3), weight, bias)


def test_frozen_weights_follow_every_change():
    lin = torch.nn.Linear(3, 2)
    lin.load_state_dict({"weight": torch.ones(2, 3), "bias": torch.zeros(2)})
    calls = []

    def make(w, b):
        calls.append(1)
        return w.sum() + b.sum()

    tensors = (lin.weight, lin.bias)
    first = frozen(lin, "sum", tensors, make)
    assert first == 6.0 and frozen(lin, "sum", tensors, make) is first and len(calls) == 1
    with torch.no_grad():
        lin.weight.add_(1.0)  # in place: the version counter moves
    assert frozen(lin, "sum", (lin.weight, lin.bias), make) == 12.0 and len(calls) == 2
    lin.load_state_dict({"weight": torch.zeros(2, 3), "bias": torch.ones(2)})
    assert frozen(lin, "sum", (lin.weight, lin.bias), make) == 2.0 and len(calls) == 3
    lin.bias = torch.nn.Parameter(torch.full((2,), 2.0))  # another tensor
    assert frozen(lin, "sum", (lin.weight, lin.bias), make) == 4.0 and len(calls) == 4


def test_disk_folded_head_is_never_stale():
    """The stride-1 head folded into the last convolution is kept between extractions, and
    recomputed after the weights change (an optimizer step, a loaded checkpoint)."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    model.bf16_decoder = False
    images = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        before = model(images)[0]
        torch.nn.init.orthogonal_(model.heads[0].weight)  # in place, as a step would
        after = model(images)[0]
        model.fuse_inference = False
        plain = model(images)[0]
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, plain, rtol=0, atol=2.5e-4)  # Winograd's rounding


@pytest.mark.parametrize("model_cls", [DISKBackbone, GNNet])
@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("confidence", [False, True])
def test_features_do_not_depend_on_the_thread_count(model_cls, bf16, confidence):
    """One and two threads give the same features (and confidences) bit for bit: a background
    extraction (one thread) equals the foreground's (every thread)."""
    if bf16 and (model_cls is GNNet or not fused.native_bf16()):
        pytest.skip("bfloat16 decoder: DISK trunk on a CPU with native bfloat16 only")
    torch.manual_seed(0)
    kwargs = {"pretrained": False} if model_cls is DISKBackbone else {}
    model = model_cls(**kwargs, confidence=confidence).eval()
    model.bf16_decoder = bf16
    images = torch.rand(1, 3, 96, 128)
    threads = torch.get_num_threads()
    maps = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch.no_grad():
                feats, conf = model.forward_with_confidence(images)
                maps[n] = [m.clone() for m in feats + (conf or [])]
    finally:
        torch.set_num_threads(threads)
    assert len(maps[1]) == (8 if confidence else 4)
    for a, b in zip(maps[1], maps[2], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("confidence", [False, True])
def test_winograd_decoder_convolutions(monkeypatch, confidence):
    """Without bfloat16 the decoder's convolutions (the folded head's included) run by
    Winograd's F(6x6, 5x5): features within 2.5e-4 of PyTorch's convolutions' (unit vectors); the
    setting is part of the fingerprint."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False, confidence=confidence).eval()
    model.bf16_decoder = False
    assert model.winograd_decoder
    calls = []
    conv = disk_backbone.conv5x5
    monkeypatch.setattr(disk_backbone, "conv5x5", lambda *a: calls.append(a[0].shape) or conv(*a))
    images = torch.rand(1, 3, 45, 62)
    with torch.no_grad():
        fast, conf = model.forward_with_confidence(images)
        digest = fingerprint(model)
        model.winograd_decoder = False
        direct, conf_direct = model.forward_with_confidence(images)
    assert [s[1] for s in calls] == [128, 128, 96, 80]  # every decoder block, finest last
    assert fingerprint(model) != digest and model.winograd_tile is None
    model.winograd_decoder = True
    assert model.winograd_tile == 6 and fingerprint(model) == digest
    for a, b in zip(fast + (conf or []), direct + (conf_direct or []), strict=True):
        assert a.shape == b.shape and not torch.equal(a, b)
        torch.testing.assert_close(a, b, rtol=0, atol=2.5e-4)


def test_winograd_only_where_every_decoder_convolution_fits(monkeypatch):
    """A decoder convolution that Winograd's F(6x6, 5x5) does not compute (here reflection
    padding) leaves the whole decoder to PyTorch's convolutions, and the tile leaves the
    fingerprint."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    model.bf16_decoder = False
    images = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert model._decoder_mode(images) == "winograd" and model.winograd_tile == 6
        model.trunk.path_up[1].conv[-1].padding_mode = "reflect"
        assert model._decoder_mode(images) == "fused" and model.winograd_tile is None
        calls = []
        conv = disk_backbone.conv5x5
        monkeypatch.setattr(disk_backbone, "conv5x5", lambda *a: calls.append(1) or conv(*a))
        fast = model(images)
        model.fuse_inference = False
        plain = model(images)
    assert calls == []
    for a, b in zip(fast, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_strided_images_take_the_fused_path(monkeypatch):
    """An image batch viewed from channels-last storage (as from numpy) runs the fused kernels
    like a contiguous one, with the same features bit for bit."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    model.bf16_decoder = False
    calls = []
    conv = disk_backbone.conv5x5
    monkeypatch.setattr(disk_backbone, "conv5x5", lambda *a: calls.append(1) or conv(*a))
    hwc = torch.rand(1, 40, 56, 3)
    strided = hwc.permute(0, 3, 1, 2)
    assert not strided.is_contiguous()
    with torch.no_grad():
        a = [m.clone() for m in model(strided)]
        b = model(strided.contiguous())
    assert len(calls) == 8  # four decoder convolutions per call
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_bf16_decoder_convolutions():
    """With ``bf16_decoder`` the decoder's convolutions read bfloat16 and the features of
    every level stay within bfloat16 rounding of float32 ones; the setting is part of the
    fingerprint."""
    torch.manual_seed(0)
    model = DISKBackbone(pretrained=False).eval()
    assert model.bf16_decoder == fused.native_bf16()
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    model.bf16_decoder = False
    exact, digest = model.extract(image), fingerprint(model)
    model.bf16_decoder = True
    low = model.extract(image)
    assert fingerprint(model) != digest
    assert all(a.dtype == torch.float32 for a in low)
    for a, b in zip(low, exact, strict=True):
        diff = (a - b).norm(dim=0)  # unit-norm features
        assert 0 < float(diff.max()) < 0.05 and float(diff.mean()) < 0.01
