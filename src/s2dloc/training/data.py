"""Training data from the configuration: pair datasets and deterministic per-step batches."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch.utils.data import default_collate

from s2dloc.datasets.augment import build_augmentation
from s2dloc.datasets.pairs import ColmapPairs, CSCDPairs, PairDataset, RGBDPairs, SyntheticPairs

logger = logging.getLogger(__name__)

# Synthetic training worlds: scenes and seeds different from the evaluation world (seed 0).
TRAIN_WORLDS = (("street", 1), ("street", 2), ("room", 1))


def synthetic_world(scene: str, seed: int, conditions: tuple[str, ...], size, num: int = 40):
    """A synthetic world whose queries are under ``conditions`` (cached per process)."""
    from s2dloc.datasets.synthetic.world import WorldConfig, generate_world

    conf = WorldConfig(scene=scene, seed=seed, num_db=num, num_query=num, width=size[0],
                       height=size[1], query_conditions=tuple(conditions))  # fmt: skip
    return generate_world(conf)


def build_dataset(data_conf: dict, seed: int = 0) -> PairDataset:
    """The training pairs named by ``data.source`` (see ``training/config.py``)."""
    source = data_conf["source"]
    size = tuple(data_conf["image_size"])
    aug = build_augmentation("conditions" if data_conf.get("augment") else None, seed)
    kw = {"resize": size, "max_points": data_conf["max_points"], "seed": seed, "augment": aug}
    if source == "synthetic":
        held_out = set(data_conf.get("val_conditions", ()))
        conds = tuple(c for c in ("dusk", "night", "snow", "fog", "foliage") if c not in held_out)
        views = data_conf.get("world_views", 40)
        specs = data_conf.get("worlds") or TRAIN_WORLDS
        worlds = [synthetic_world(s, int(sd), conds, size, views) for s, sd in specs]
        parts = [SyntheticPairs(w, num_ref=2, **kw) for w in worlds]
        logger.info("synthetic training pairs: %s (conditions %s)", [len(p) for p in parts], conds)
        return ConcatPairs(parts)
    if source == "cscd":
        return CSCDPairs(Path(data_conf["root"]), data_conf.get("files", "**/*.mat"),
                         data_conf.get("image_root"), **kw)  # fmt: skip
    if source == "rgbd":
        from s2dloc.datasets.fountain import FountainDataset

        return RGBDPairs(list(FountainDataset(data_conf["root"])), **kw)
    if source == "colmap":
        return ColmapPairs(data_conf["root"], data_conf["image_root"], **kw)
    raise ValueError(f"data.source must be synthetic, cscd, rgbd or colmap, got {source!r}")


class ConcatPairs(torch.utils.data.ConcatDataset):
    """Concatenated pair datasets that forward ``set_epoch``."""

    def set_epoch(self, epoch: int) -> None:
        for d in self.datasets:
            d.set_epoch(epoch)


def batch_for_step(dataset, step: int, batch_size: int, seed: int, rank: int = 0,
                   world_size: int = 1) -> dict:  # fmt: skip
    """The samples of global step ``step`` for process ``rank``: a pure function of
    ``(seed, step)``, so a resumed or distributed run sees exactly the same data."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    idx = torch.randint(len(dataset), (batch_size * world_size,), generator=g).tolist()
    dataset.set_epoch(step)
    mine = idx[rank * batch_size : (rank + 1) * batch_size]
    return default_collate([dataset[i] for i in mine])
