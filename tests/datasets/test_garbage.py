"""Random garbage fed to every file reader gives a clear ValueError, never another exception."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2dloc.datasets import (
    cmu,
    colmap_io,
    colmap_model,
    correspondences,
    fountain,
    hloc_io,
    robotcar,
)
from s2dloc.localization.io import read_log

READERS = {
    "query list": colmap_io.read_query_list,
    "poses": colmap_io.read_poses,
    "pairs": colmap_io.read_pairs,
    "cmu intrinsics": cmu.read_intrinsics,
    "cmu centre poses": functools.partial(cmu.read_centre_poses, cameras={"c0": None}),
    "robotcar intrinsics": robotcar.read_intrinsics,
    "nvm": robotcar.read_nvm,
    "trajectory log": fountain.read_trajectory_log,
    "correspondences (.mat)": correspondences.read_correspondences,
    "hloc features": functools.partial(hloc_io.read_features, name="a.jpg"),
    "cameras.bin": colmap_model.check_cameras_bin,
    "images.bin": colmap_model.check_images_bin,
    "points3D.bin": colmap_model.check_points3D_bin,
}
# Content that some readers accept as valid (e.g. an empty pairs file is an empty list).
MAY_PARSE = {"pairs", "poses", "query list"}

garbage = st.one_of(
    st.binary(max_size=300),
    st.text(st.sampled_from(list("0123456789.-+e nan inf\tabcxyz#:/\\\n\r")), max_size=300).map(
        str.encode
    ),
)


@pytest.mark.parametrize("reader", sorted(READERS))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=garbage)
def test_garbage_gives_a_value_error_naming_the_file(reader, data, tmp_path):
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    try:
        result = READERS[reader](path)
    except ValueError as err:
        assert "input.bin" in str(err)
    except (FileNotFoundError, KeyError) as err:  # e.g. a missing HDF5 key names the file too
        assert "input.bin" in str(err)
    else:  # accepted: only an empty result, or content some readers may legitimately parse
        assert reader in MAY_PARSE or not result, f"{reader} accepted garbage {data[:40]!r}"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=garbage)
def test_garbage_log_lines_are_skipped(data, tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    try:
        records = read_log(path)
    except ValueError as err:  # undecodable bytes
        assert "log.jsonl" in str(err)
    else:
        assert isinstance(records, dict)
