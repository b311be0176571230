"""World settings outside what the generator supports are refused with the allowed range."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from s2dloc.datasets.synthetic.world import (
    LIMITS,
    PRESETS,
    WorldConfig,
    generate_world,
    world_config,
)
from s2dloc.utils.config import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 100000, "setting 'width' = 100000 must be within 16-4096 pixels"),
        ("height", 15, "setting 'height' = 15 must be within 16-4096 pixels"),
        ("fov_deg", 180.0, "setting 'fov_deg' = 180.0 must be within 10-170 degrees"),
        ("fov_deg", 9.5, "setting 'fov_deg' = 9.5 must be within 10-170 degrees"),
        ("num_db", 0, "setting 'num_db' = 0 must be within 1-10000 images"),
        ("num_query", 2.5, "setting 'num_query' must be of type int"),
        ("width", "640", "setting 'width' must be of type int"),
        ("seed", -1, "setting 'seed' = -1 must be >= 0"),
        ("scene", "moon", "setting 'scene' = 'moon' must be one of ['toy', 'street', 'room']"),
        ("camera_model", "FISHEYE", "setting 'camera_model' = 'FISHEYE' must be one of"),
        ("query_conditions", (), "setting 'query_conditions' = [] holds bad query conditions"),
    ],
)
def test_out_of_range_settings(field, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        dataclasses.replace(PRESETS["tiny"], **{field: value})
    with pytest.raises(ConfigError, match=re.escape(message.split(" = ")[0])):
        world_config("tiny", {field: list(value) if isinstance(value, tuple) else value})


def test_world_config_from_a_preset_and_overrides():
    conf = world_config("small", {"width": 200, "query_conditions": ["night", "snow"]})
    assert conf == dataclasses.replace(
        PRESETS["small"], width=200, query_conditions=("night", "snow")
    )
    assert conf.to_dict()["query_conditions"] == ["night", "snow"]
    assert world_config("small", conf.to_dict()) == conf  # settings round-trip
    with pytest.raises(ConfigError, match=r"unknown setting 'widht'; valid keys: \['camera_model'"):
        world_config("tiny", {"widht": 200})
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        world_config("huge")


def test_limits_themselves_are_accepted():
    for field, (lo, hi, _) in LIMITS.items():
        for value in (lo, hi):
            WorldConfig(**{field: value})  # PINHOLE: any field of view in the range


def test_simple_radial_field_of_view_limit_is_the_renderable_one():
    small = dataclasses.replace(
        PRESETS["tiny"], width=64, height=48, num_db=2, num_query=2, camera_model="SIMPLE_RADIAL"
    )
    too_wide = r"field of view 150 deg is too wide for a SIMPLE_RADIAL"
    with pytest.raises(ValueError, match=too_wide) as err:
        dataclasses.replace(small, fov_deg=150.0)
    widest = int(re.search(r"beyond about (\d+) deg", str(err.value)).group(1))
    assert 90 < widest < 130
    # At the reported limit every pixel of every view (queries are up to 10% wider) has a ray.
    world = generate_world(dataclasses.replace(small, fov_deg=float(widest)), progress=False)
    for view in world.views:
        assert np.isfinite(view.rgb).all(), view.name
    # Just beyond it, rendering would leave pixels without a ray: refused.
    with pytest.raises(ValueError, match="too wide"):
        dataclasses.replace(small, fov_deg=widest + 2.0)
