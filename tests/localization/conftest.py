"""A tiny reference-condition synthetic world, generated once per session."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world

torch.set_num_threads(1)

CONF = {"s2d": {"match_stride": 4}}  # 160x120 images: correlate at stride 4


def write_tiny_world(tmp_path_factory, name: str = "world", **overrides):
    """12 database and 5 query views in the reference condition (tiny preset), on disk."""
    cfg = dataclasses.replace(
        PRESETS["tiny"], num_db=12, num_query=5, query_conditions=("reference",), **overrides
    )
    out = tmp_path_factory.mktemp(name)
    write_world(generate_world(cfg, progress=False), out, progress=False)
    return out


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory):
    """The tiny world at 160x120."""
    return write_tiny_world(tmp_path_factory)


@pytest.fixture(scope="session")
def world_map(world_dir):
    from s2dloc.localization import Map

    return Map.load(world_dir)
