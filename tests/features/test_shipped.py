"""The shipped checkpoints: each loads as a complete 4-level model, was trained with the
settings of the config its documented command names, and together they stay under 30 MB."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from s2dloc.features import load_extractor, registry
from s2dloc.training.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _differences(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """Keys whose values differ between a checkpoint's training settings and a config's
    (keys one of them lacks are skipped: settings added or renamed since)."""
    out = []
    for key, value in stored.items():
        if key not in current or key == "out_dir":
            continue
        if isinstance(value, dict) and isinstance(current[key], dict):
            out += _differences(value, current[key], f"{prefix}{key}.")
        elif (list(value) if isinstance(value, tuple) else value) != current[key]:
            out.append(f"{prefix}{key}: {value!r} vs {current[key]!r}")
    return out


@pytest.mark.parametrize("name", sorted(registry.SHIPPED))
def test_shipped_checkpoint_matches_its_documented_recipe(name):
    path, command = registry.SHIPPED[name]
    model = load_extractor(name)
    assert model.strides == (1, 2, 4, 8) and model.channels == (32,) * 4
    conf_file = re.search(r"--conf (\S+\.yaml)", command).group(1)
    recipe = load_config(ROOT / conf_file)
    ckpt = registry.load_checkpoint(path)
    assert ckpt["model"] == recipe["model"]["name"]
    assert ckpt["step"] == recipe["train"]["steps"]
    assert _differences(ckpt["train_config"], recipe) == []


def test_shipped_weights_stay_small_and_default_is_one_of_them():
    total = sum(path.stat().st_size for path, _ in registry.SHIPPED.values())
    assert total <= 30e6
    assert set(registry.NAMES) == {"default", *registry.SHIPPED, "photometric"}
    default, named = load_extractor("default"), load_extractor(registry.DEFAULT)
    assert registry.DEFAULT in registry.SHIPPED
    for a, b in zip(default.state_dict().values(), named.state_dict().values()):
        assert torch.equal(a, b)
