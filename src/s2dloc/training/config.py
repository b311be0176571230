"""Training configuration: YAML files merged over defaults, plus ``key.sub=value`` overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "out_dir": "outputs/train",
    "device": "auto",  # auto: cuda when available, else cpu
    "model": {"name": "gnnet"},  # other keys go to the model's config
    "data": {
        "source": "synthetic",  # synthetic | cscd | rgbd | colmap
        "preset": "small",  # synthetic world preset
        "image_size": [320, 240],
        "max_points": 256,
        "batch_size": 4,
        "num_workers": 0,
        "augment": True,
        "val_conditions": ["night", "snow"],  # held out from training
        "worlds": None,  # synthetic [scene, seed] pairs; None: street 1, street 2, room 1
        "world_views": 40,  # database and query views per synthetic world
    },
    "loss": {
        "gn_weight": 1.0,
        "e1_weight": 1.0,
        "e2_weight": 1.0,
        "vicinity": [1.0, 2.0, 4.0, 8.0],  # start offset (pixels of each level), finest first
        "both_directions": True,
        "contrastive_weight": 1.0,
        "margin_pos": 0.1,
        "margin_neg": 1.0,
        "mining": "hard",  # hard | random
        "negatives": 16,
        "exclusion_radius": 4.0,  # pixels of each level around the true match
    },
    "optim": {"lr": 1e-3, "weight_decay": 0.0, "scheduler": "cosine", "grad_clip": 10.0},
    "train": {"steps": 2000, "log_every": 10, "val_every": 250, "ckpt_every": 250},
}


def merge(base: dict, update: dict) -> dict:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(conf: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` strings; values are parsed as YAML (numbers, lists, bools)."""
    conf = copy.deepcopy(conf)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        node = conf
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return conf


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults, merged with the YAML file at ``path`` (if any), then the overrides."""
    conf = DEFAULTS
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"config file {path} does not exist")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(loaded)}")
        conf = merge(conf, loaded)
    return apply_overrides(conf, overrides or [])
