"""Trainer: configuration, a few real steps, exact resume, and DDP replicas (2 CPU processes)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from s2dloc.features.registry import load_extractor
from s2dloc.training.config import DEFAULTS, apply_overrides, load_config
from s2dloc.training.trainer import Trainer

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
    conf = apply_overrides(DEFAULTS, ["optim.lr=0.01", "data.image_size=[8, 6]", "new.key=true"])
    assert conf["optim"]["lr"] == 0.01 and conf["data"]["image_size"] == [8, 6]
    assert conf["new"]["key"] is True and DEFAULTS["optim"]["lr"] == 1e-3  # defaults untouched
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 0.5\n")
    assert load_config(path, ["optim.lr=0.25"])["optim"]["lr"] == 0.25
    assert load_config(path)["optim"]["scheduler"] == "cosine"  # merged, not replaced
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides(DEFAULTS, ["optim.lr"])
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_steps_update_the_model_log_and_checkpoint(tmp_path):
    trainer = Trainer(_conf(tmp_path, 2))
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
    straight = Trainer(_conf(tmp_path / "a", 4))
    straight.run()
    first = Trainer(_conf(tmp_path / "b", 4))
    for _ in range(2):  # then the process dies: only the step-2 checkpoint survives
        first.train_step()
    first.save()
    resumed = Trainer(_conf(tmp_path / "b", 4))
    assert resumed.step == 2
    resumed.run()
    assert torch.equal(_params(straight.model), _params(resumed.model))
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [int(float(r["step"])) for r in rows] == [3, 4]


def test_ddp_two_processes_keep_identical_replicas(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29517", "-m", "s2dloc", "train", "--out", str(tmp_path), *TINY,
           "train.steps=2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model replicas identical on 2 processes" in proc.stderr
    assert (tmp_path / "last.pt").is_file()


def test_validation_on_held_out_conditions_is_logged(tmp_path):
    Trainer(_conf(tmp_path, 1, "train.val_every=1")).run()
    row = next(csv.DictReader((tmp_path / "metrics.csv").open()))
    for key in ("val/fpnp_success@5", "val/fpnp_success@15"):
        assert 0.0 <= float(row[key]) <= 1.0
    assert 0.0 <= float(row["val/relpose_err_deg"]) <= 180.0
