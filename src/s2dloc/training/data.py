"""Training data from the configuration: pair datasets and deterministic per-step batches."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.colmap_pairs import ColmapPairs
from s2dloc.datasets.cscd_pairs import CSCDPairs
from s2dloc.datasets.fountain import FountainDataset
from s2dloc.datasets.homography_pairs import HomographyConfig, HomographyPairs
from s2dloc.datasets.rgbd_pairs import RGBDPairs
from s2dloc.datasets.synthetic.world import WorldConfig, generate_world
from s2dloc.datasets.synthetic_pairs import SyntheticPairs
from s2dloc.training.config import source_entries

logger = logging.getLogger(__name__)

# Synthetic training worlds: scenes and seeds different from the evaluation world (seed 0),
# with exactly repeating textures (the worlds the shipped weights were trained on).
TRAIN_WORLDS = (("street", 1), ("street", 2), ("room", 1))
TRAIN_TEXTURE_JITTER = 0.0
HOMOGRAPHY_KEYS = tuple(f.name for f in dataclasses.fields(HomographyConfig))


def synthetic_world(scene: str, seed: int, conditions: tuple[str, ...], size, num: int = 40):
    """A synthetic world whose queries are under ``conditions`` (cached per process)."""
    conf = WorldConfig(
        scene=scene,
        seed=seed,
        num_db=num,
        num_query=num,
        width=size[0],
        height=size[1],
        query_conditions=tuple(conditions),
        texture_jitter=TRAIN_TEXTURE_JITTER,
    )
    return generate_world(conf)


def build_dataset(data_conf: dict, seed: int = 0) -> torch.utils.data.Dataset:
    """The training pairs of ``data`` (see ``training/config.py``): one source, or for
    ``source: mix`` the weighted mixture of ``data.sources``."""
    entries = source_entries(data_conf)
    parts = [build_source(e, data_conf, seed + 1009 * k) for k, e in enumerate(entries)]
    if len(parts) == 1:
        return parts[0]
    mix = MixPairs(parts, [e["weight"] for e in entries])
    logger.info(
        "mixed training pairs: %s",
        ", ".join(
            f"{e['type']} {len(p)} pairs (weight {e['weight']:g})" for e, p in zip(entries, parts)
        ),
    )
    return mix


def build_source(entry: dict, data_conf: dict, seed: int) -> torch.utils.data.Dataset:
    """One pair source from its resolved settings ``entry`` (see ``SOURCE_DEFAULTS``)."""
    kind, size = entry["type"], tuple(data_conf["image_size"])
    preset = (entry["appearance"] or data_conf["appearance"]) if data_conf["augment"] else None
    kw = {
        "resize": size,
        "max_points": data_conf["max_points"],
        "seed": seed,
        "augment": build_augmentation(preset, seed),
    }
    crop = {"crop": data_conf["crop"]}
    if kind == "synthetic":
        held_out = set(data_conf["val_conditions"])
        conds = tuple(c for c in ("dusk", "night", "snow", "fog", "foliage") if c not in held_out)
        specs = entry["worlds"] or TRAIN_WORLDS
        worlds = [synthetic_world(s, int(sd), conds, size, entry["world_views"]) for s, sd in specs]
        parts = [SyntheticPairs(w, num_ref=entry["num_ref"], **kw) for w in worlds]
        logger.info("synthetic training pairs: %s (conditions %s)", [len(p) for p in parts], conds)
        return ConcatPairs(parts)
    if kind == "cscd":
        return CSCDPairs(
            Path(entry["root"]), entry["files"], entry["image_root"] or None, **kw, **crop
        )
    if kind == "rgbd":
        frames = list(FountainDataset(entry["root"]))
        return RGBDPairs(frames, max_gap=entry["max_gap"], **kw, **crop)
    if kind == "colmap":
        if not entry["image_root"]:
            raise ValueError("a colmap source needs image_root (the folder of its images)")
        return ColmapPairs(
            entry["root"],
            entry["image_root"],
            entry["min_shared"],
            exclude=entry["exclude"],
            **kw,
            **crop,
        )
    hc = {
        k: tuple(v) if isinstance(v, list) else v for k, v in entry.items() if k in HOMOGRAPHY_KEYS
    }
    return HomographyPairs(
        entry["root"], entry["patterns"], entry["exclude"], HomographyConfig(**hc), **kw
    )


class MixPairs(torch.utils.data.Dataset):
    """Pair sources mixed by weight: of ``size`` indices, source k owns a contiguous share
    proportional to its weight, and index i of that share is its item ``i mod len(source)``.
    Uniform indices (:func:`batch_for_step`) thus draw source k with probability ~weight k."""

    def __init__(self, parts: list, weights: list[float], size: int = 100_000):
        if len(parts) != len(weights) or not parts or min(weights) <= 0:
            raise ValueError(f"need one positive weight per source, got {weights}")
        if any(len(p) == 0 for p in parts):
            raise ValueError(f"empty pair source among {[len(p) for p in parts]}")
        self.parts = parts
        share = np.cumsum(weights) / np.sum(weights)
        self.bounds = np.round(share * size).astype(np.int64)
        self.size = int(self.bounds[-1])

    def __len__(self) -> int:
        return self.size

    def source_of(self, index: int) -> tuple[int, int]:
        """``(source, item)`` of mixture index ``index``."""
        k = int(np.searchsorted(self.bounds, index, side="right"))
        start = int(self.bounds[k - 1]) if k else 0
        return k, (index - start) % len(self.parts[k])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.size:
            raise IndexError(f"pair {index} out of range for {self.size} mixed pairs")
        k, i = self.source_of(index)
        return self.parts[k][i]

    def set_epoch(self, epoch: int) -> None:
        for p in self.parts:
            p.set_epoch(epoch)


class ConcatPairs(torch.utils.data.ConcatDataset):
    """Concatenated pair datasets that forward ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)


def batch_for_step(
    dataset, step: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
) -> dict:
    """The samples of global step ``step`` for process ``rank``: a pure function of
    ``(seed, step)``, so a resumed or distributed run sees exactly the same data."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(len(dataset), (batch_size * world_size,), generator=g).tolist()
    dataset.set_epoch(step)
    mine = idx[rank * batch_size : (rank + 1) * batch_size]
    return default_collate([dataset[i] for i in mine])
