"""Distillation: the loss, the crops, the teacher's targets and training with ``objective:
distill`` (known answers: a student equal to its teacher has zero loss)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.photo_crops import PhotoCrops
from s2dloc.features.registry import load_baseline, load_extractor, save_checkpoint
from s2dloc.training.config import load_config
from s2dloc.training.distill import Teacher, distillation_loss
from s2dloc.training.trainer import Trainer
from s2dloc.utils.config import ConfigError

SMALL = {"channels": 8, "widths": (8, 8, 16, 16), "groups": (2, 2, 4, 4)}


def _coded_image(h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32 whose pixels encode their own row and column."""
    y, x = np.mgrid[:h, :w].astype(np.float32)
    return np.stack([y / h, x / w, np.full_like(x, 0.5)], -1)


def test_distillation_loss_known_answer():
    g = torch.Generator().manual_seed(0)
    teacher = [torch.randn(2, 3, 8 // s, 8 // s, generator=g) for s in (1, 2, 4, 8)]
    offset = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    student = [t + offset * (k + 1) for k, t in enumerate(teacher)]
    loss, logs = distillation_loss(student, teacher)
    per_level = [5.25 * (k + 1) ** 2 for k in range(4)]  # ||offset||^2 = 1 + 4 + 0.25
    assert logs["distill_l2"] == pytest.approx(per_level[2])
    assert float(loss) == pytest.approx(np.mean(per_level)) and logs["total"] == float(loss)
    with pytest.raises(ValueError, match="level 1"):
        distillation_loss([student[0], student[1][:, :2]], teacher[:2])
    with pytest.raises(ValueError, match="levels"):
        distillation_loss(student[:3], teacher)


def test_photo_crops_are_fixed_aligned_and_resized():
    image = _coded_image(300, 400)
    aug = build_augmentation("strong", 0)
    crops = PhotoCrops([image], 6, size=64, long_sides=(200,), augment=aug, seed=3)
    assert crops.scaled[0].shape == (150, 200, 3)  # long side resized to 200
    again = PhotoCrops([image], 6, size=64, long_sides=(200,), augment=aug, seed=3)
    assert np.array_equal(crops.crops, again.crops)
    k, top, left = crops.crops[0]
    np.testing.assert_array_equal(crops.clean(0), crops.scaled[k][top : top + 64, left : left + 64])
    item = crops[0]
    assert item["clean"].shape == item["image"].shape == (3, 64, 64)
    torch.testing.assert_close(item["clean"], torch.from_numpy(crops.clean(0)).permute(2, 0, 1))
    changed = [not torch.equal(crops[i]["image"], crops[i]["clean"]) for i in range(6)]
    assert sum(changed) >= 4  # 85% under appearance change
    torch.testing.assert_close(crops[2]["image"], again[2]["image"])  # a function of (seed, i)
    crops.set_epoch(1)
    assert any(not torch.equal(crops[i]["image"], again[i]["image"]) for i in range(6))
    clean_only = PhotoCrops([image], 3, size=64, long_sides=(200,), augment=aug, clean_fraction=1)
    assert all(torch.equal(clean_only[i]["image"], clean_only[i]["clean"]) for i in range(3))
    with pytest.raises(ValueError, match="short side"):
        PhotoCrops([image], 3, size=64, long_sides=(80,))
    with pytest.raises(IndexError):
        crops[6]


@pytest.fixture
def tiny_teacher(tmp_path):
    model = load_baseline("gnnet-untrained", seed=1, **SMALL)
    return save_checkpoint(model, tmp_path / "teacher.pt")


def _distill_conf(tmp_path, teacher, *extra: str) -> dict:
    return load_config(
        None,
        [
            "train.objective=distill",
            f"distill.teacher={teacher}",
            "distill.synthetic_views=1",
            "distill.crops=3",
            "distill.val_crops=2",
            "distill.crop_size=32",
            "distill.long_sides=[96]",
            "data.batch_size=2",
            *(f"model.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in SMALL.items()),
            "train.log_every=1",
            "train.val_every=2",
            "train.ckpt_every=2",
            f"out_dir={tmp_path / 'out'}",
            *extra,
        ],
    )


def test_student_equal_to_its_teacher_has_zero_loss(tmp_path, tiny_teacher):
    conf = _distill_conf(
        tmp_path, tiny_teacher, f"model.init={tiny_teacher}", "distill.clean_fraction=1.0"
    )
    trainer = Trainer(conf)
    teacher = load_extractor(tiny_teacher)
    for a, b in zip(trainer.model.state_dict().values(), teacher.state_dict().values()):
        assert torch.equal(a.cpu(), b)  # model.init loaded the checkpoint
    logs = trainer.train_step()
    assert logs["distill"] < 1e-5  # float16 targets only


def test_distillation_trains_the_student_towards_the_teacher(tmp_path, tiny_teacher):
    conf = _distill_conf(tmp_path, tiny_teacher, "train.steps=12", "optim.lr=0.01")
    trainer = Trainer(conf)
    assert len(trainer.teacher.cache) == 0
    first = trainer.train_step()["distill"]
    trainer.run()
    assert trainer.step == 12 and len(trainer.teacher.cache) == 3 + 2  # training + validation
    rows = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert float(rows[-1]["distill"]) < 0.5 * first
    assert float(rows[-1]["val/distill"]) < float(rows[0]["val/distill"])
    student = load_extractor(tmp_path / "out" / "model.pt")
    assert student.name == "gnnet" and student.config.channels == 8


def test_distillation_settings_are_checked(tmp_path, tiny_teacher):
    with pytest.raises(ConfigError, match="distill.teacher"):
        load_config(None, ["train.objective=distill", "distill.synthetic_views=1"])
    with pytest.raises(ConfigError, match="distill.root or distill.synthetic_views"):
        load_config(None, ["train.objective=distill", "distill.teacher=gnnet"])
    with pytest.raises(ConfigError, match="long_sides"):
        _distill_conf(tmp_path, tiny_teacher, "distill.long_sides=[16]")
    with pytest.raises(ConfigError, match="train.objective"):
        load_config(None, ["train.objective=teach"])
    with pytest.raises(ConfigError, match="unknown setting 'distill.teachr'"):
        load_config(None, ["distill.teachr=gnnet"])
    with pytest.raises(ValueError, match="distill.teacher.*no-such.pt"):
        Trainer(_distill_conf(tmp_path, tmp_path / "no-such.pt"))
    with pytest.raises(
        ValueError, match=r"with \(8, 8, 8, 8\) channels, the student .* \(16, 16, 16, 16\)"
    ):
        Trainer(_distill_conf(tmp_path, tiny_teacher, "model.channels=16"))
    with pytest.raises(ValueError, match="model.init .*teacher.pt"):
        Trainer(
            _distill_conf(tmp_path, tiny_teacher, f"model.init={tiny_teacher}", "model.channels=16")
        )


def test_teacher_targets_are_cached_per_crop(tmp_path, tiny_teacher):
    teacher = Teacher(str(tiny_teacher), torch.device("cpu"))
    crops = PhotoCrops([_coded_image(96, 96)], 4, size=32, long_sides=(96,))
    batch = torch.utils.data.default_collate([crops[i] for i in (0, 1)])
    first = teacher.targets(batch)
    assert [tuple(t.shape) for t in first] == [(2, 8, 32 // s, 32 // s) for s in (1, 2, 4, 8)]
    with torch.no_grad():
        direct = teacher.model(batch["clean"])
    for a, b in zip(first, direct):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3)  # float16 storage
    batch["clean"] = torch.zeros_like(batch["clean"])  # cached: the crop is not re-read
    for a, b in zip(teacher.targets(batch), first):
        assert torch.equal(a, b)
    # Validation crops with the same indices are other crops: computed, not read back.
    val = teacher.targets(batch, crops="val")
    assert not torch.equal(val[0], first[0]) and len(teacher.cache) == 4


def test_distillation_resume_is_exact(tmp_path, tiny_teacher):
    def conf(sub):
        return _distill_conf(tmp_path / sub, tiny_teacher, "train.steps=4", "train.val_every=0")

    straight = Trainer(conf("a"))
    straight.run()
    first = Trainer(conf("b"))
    for _ in range(2):  # then the process dies: only the step-2 checkpoint survives
        first.train_step()
    first.save()
    resumed = Trainer(conf("b"))
    assert resumed.step == 2 and len(resumed.teacher.cache) == 0  # targets are recomputed
    resumed.run()
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
