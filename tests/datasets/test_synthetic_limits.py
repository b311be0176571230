"""World settings outside what the generator supports are refused with the allowed range."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from s2dloc.datasets.synthetic.world import LIMITS, PRESETS, WorldConfig, generate_world


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("width", 100000, "WorldConfig.width must be within 16-4096 pixels, got 100000"),
        ("height", 15, "WorldConfig.height must be within 16-4096 pixels, got 15"),
        ("fov_deg", 180.0, "WorldConfig.fov_deg must be within 10-170 degrees, got 180"),
        ("fov_deg", 9.5, "WorldConfig.fov_deg must be within 10-170 degrees, got 9.5"),
        ("num_db", 0, "WorldConfig.num_db must be within 1-10000 images, got 0"),
        ("num_query", 2.5, "WorldConfig.num_query must be an integer within 1-10000 images"),
    ],
)
def test_out_of_range_settings(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(PRESETS["tiny"], **{field: value})


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
