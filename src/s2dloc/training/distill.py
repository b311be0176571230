"""Distillation under appearance change: a student learns to give, on a crop under synthesized
night, snow, fog or season change, the features a (slower) teacher gives on the clean crop.

The teacher's targets of each crop are computed once and kept in memory (float16, CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.image_sets import list_images
from s2dloc.datasets.pairs import load_image
from s2dloc.datasets.photo_crops import PhotoCrops
from s2dloc.datasets.synthetic.world import WorldConfig, generate_world
from s2dloc.features.registry import load_extractor
from s2dloc.training.data import TRAIN_TEXTURE_JITTER, TRAIN_WORLDS

logger = logging.getLogger(__name__)


def distillation_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over levels of the per-pixel squared feature distance ``||F_s - F_t||^2``.

    ``student`` and ``teacher``: one ``(B, C, H, W)`` map per level, of equal shapes."""
    if len(student) != len(teacher):
        raise ValueError(f"student has {len(student)} levels, teacher {len(teacher)}")
    per_level = []
    for k, (s, t) in enumerate(zip(student, teacher)):
        if s.shape != t.shape:
            raise ValueError(f"level {k}: student maps {tuple(s.shape)}, teacher {tuple(t.shape)}")
        per_level.append(((s - t) ** 2).sum(1).mean())
    total = torch.stack(per_level).mean()
    logs = {f"distill_l{k}": float(v.detach()) for k, v in enumerate(per_level)}
    logs["total"] = logs["distill"] = float(total.detach())
    return total, logs


def crop_images(dc: dict) -> list[np.ndarray]:
    """The photos of ``distill.root`` (``patterns`` minus ``exclude``) and the database views
    of ``synthetic_views`` views per synthetic training world, as (H, W, 3) float32."""
    images = []
    if dc["root"]:
        names = list_images(dc["root"], dc["patterns"], dc["exclude"])
        images += [load_image(Path(dc["root"]) / n) for n in names]
    for scene, seed in TRAIN_WORLDS if dc["synthetic_views"] else ():
        conf = WorldConfig(
            scene=scene,
            seed=seed,
            num_db=dc["synthetic_views"],
            num_query=1,
            texture_jitter=TRAIN_TEXTURE_JITTER,
        )
        images += [view.rgb for view in generate_world(conf, progress=False).database]
    logger.info("distillation images: %d", len(images))
    return images


def build_crops(dc: dict, seed: int, images: list[np.ndarray] | None = None) -> PhotoCrops:
    """Training crops of ``distill`` settings ``dc`` under its ``appearance`` preset."""
    images = crop_images(dc) if images is None else images
    return PhotoCrops(
        images,
        dc["crops"],
        dc["crop_size"],
        dc["long_sides"],
        build_augmentation(dc["appearance"], seed),
        dc["clean_fraction"],
        seed,
    )


class Teacher:
    """A frozen extractor and its targets per crop (computed once, float16 on CPU), keyed by
    the crop set (``"train"`` or ``"val"``) and the crop's index in it."""

    def __init__(self, name_or_path: str, device: torch.device):
        try:
            self.model = load_extractor(name_or_path).to(device).eval()
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"setting 'distill.teacher': {err}") from None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device, self.name = device, str(name_or_path)
        self.cache: dict[tuple[str, int], list[torch.Tensor]] = {}

    def check_student(self, student: torch.nn.Module) -> None:
        """``ValueError`` unless the student's levels have the teacher's strides and channels."""
        ts, ss = tuple(self.model.strides), tuple(student.strides)
        tc, sc = self.model.channels, student.channels
        if ts != ss or tc != sc:
            raise ValueError(
                f"teacher {self.name} gives strides {ts} with {tc} channels, the student "
                f"strides {ss} with {sc}: they must agree"
            )

    def targets(self, batch: dict, crops: str = "train") -> list[torch.Tensor]:
        """The teacher's maps of ``batch["clean"]`` (crops ``batch["index"]`` of the set
        ``crops``), one ``(B, C, H, W)`` tensor per level."""
        keys = [(crops, int(i)) for i in batch["index"]]
        for j, key in enumerate(keys):
            if key not in self.cache:  # one crop at a time: the same numbers in any batch
                with torch.no_grad():
                    maps = self.model(batch["clean"][j : j + 1].to(self.device))
                self.cache[key] = [m[0].half().cpu() for m in maps]
        levels = zip(*(self.cache[k] for k in keys))
        return [torch.stack(level).float().to(self.device) for level in levels]


class DistillValidator:
    """The distillation loss on fixed crops drawn apart from the training crops."""

    def __init__(self, dc: dict, seed: int, teacher: Teacher, images: list[np.ndarray]):
        conf = {**dc, "crops": dc["val_crops"]}
        self.crops = build_crops(conf, seed + 7_777, images)
        self.teacher = teacher
        self.batches = [
            torch.utils.data.default_collate(
                [self.crops[i] for i in range(k, min(k + 8, len(self.crops)))]
            )
            for k in range(0, len(self.crops), 8)
        ]

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        total = 0.0
        with torch.no_grad():
            for b in self.batches:
                feats = model(b["image"].to(self.teacher.device))
                targets = self.teacher.targets(b, crops="val")
                total += distillation_loss(feats, targets)[1]["distill"] * len(b["index"])
        model.train(was_training)
        return {"distill": total / len(self.crops)}
