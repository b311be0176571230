"""Random garbage fed to every file reader gives a clear ValueError, never another exception."""

from __future__ import annotations

import functools
import json
import logging

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


_NAMES = ("q0.jpg", "night/q1.jpg", "q2.jpg")
_record = st.tuples(st.sampled_from(_NAMES), st.integers(0, 9)).map(
    lambda r: json.dumps({"name": r[0], "k": r[1]})
)
_log_line = st.one_of(
    _record,
    _record.flatmap(lambda r: st.integers(1, len(r) - 1).map(lambda k: r[:k])),  # truncated
    st.sampled_from(['{"name": 3}', "[1]", '{"x": "q0.jpg"}', '"q0.jpg"', "", "NaN"]),
    st.text(st.sampled_from(list('0123456789.-+e nan inf\tabcxyz#:/{}[],"')), max_size=40),
)


def _expected_log(lines: list[str]) -> tuple[dict[str, dict], list[str]]:
    """Records kept (the last per name) and the warning of every other line, by the stdlib."""
    kept, warnings = {}, []
    for lineno, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
        except ValueError:
            warnings.append(f"log.jsonl:{lineno}: unreadable record ignored (interrupted run?)")
            continue
        if isinstance(rec, dict) and isinstance(rec.get("name"), str):
            kept[rec["name"]] = rec
        else:
            warnings.append(f"log.jsonl:{lineno}: not a query record, ignored")
    return kept, warnings


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_log_line, max_size=8), newline=st.booleans())
def test_garbage_log_lines_are_skipped(lines, newline, tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    text = "\n".join(lines) + ("\n" if newline and lines else "")
    path.write_text(text, encoding="utf-8")
    file_lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="s2dloc.localization.io"):
        records = read_log(path)
    kept, warnings = _expected_log([] if text == "" else file_lines)
    assert records == kept
    assert [r.getMessage().replace(f"{tmp_path}/", "") for r in caplog.records] == warnings


def test_log_known_answer(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"name": "a", "k": 1}\n[2]\n{"name": "a", "k": 3}\n{"name": "b", "k"\n')
    with caplog.at_level(logging.WARNING, logger="s2dloc.localization.io"):
        records = read_log(path)
    assert records == {"a": {"name": "a", "k": 3}}
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}:2: not a query record, ignored",
        f"{path}:4: unreadable record ignored (interrupted run?)",
    ]


@pytest.mark.parametrize("data", [b"\xff\xfe{", b'{"name": "a"}\n\x80\n'])
def test_binary_log_names_the_file(data, tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"log\.jsonl: not a UTF-8 text file"):
        read_log(path)
