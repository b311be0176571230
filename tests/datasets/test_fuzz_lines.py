"""Fuzzed lines for the CMU and RobotCar line parsers: each line is either parsed to the values an
independent reference gives, or rejected with a ``ValueError`` that names the line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2dloc.datasets import cmu
from s2dloc.datasets import robotcar as rc
from s2dloc.datasets.colmap_io import MODEL_NUM_PARAMS

WHERE = "list.txt:7"  # the location passed to a parser; its errors must start with it


def floats(fields: list[str]) -> np.ndarray | None:
    """The finite float64 values of ``fields``, or None when one is not a finite number."""
    try:
        v = np.array([float(x) for x in fields], np.float64)
    except ValueError:
        return None
    return v if np.isfinite(v).all() else None


def t_from_centre(q_wxyz: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``t = -R c`` with ``R`` from pycolmap (which takes ``xyzw``)."""
    q = np.asarray(q_wxyz, np.float64) / np.linalg.norm(q_wxyz)
    R = pycolmap.Rotation3d(np.array([q[1], q[2], q[3], q[0]])).matrix()
    return -R @ np.asarray(centre, np.float64)


def assert_names_the_line(err: ValueError, where: str = WHERE) -> None:
    assert str(err).startswith(f"{where}: "), str(err)


_coord = st.floats(-100.0, 100.0, allow_nan=False)
GARBAGE_TOKEN = st.sampled_from(["x", "nan", "inf", "-inf", "1e400", "1,5", "--1", "0x1", "#"])


@st.composite
def unit_quaternions(draw) -> list[float]:
    """A unit quaternion (w, x, y, z) as floats whose norm is 1 to rounding."""
    q = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4)))
    if np.linalg.norm(q) < 0.1:
        q = np.array([1.0, 0.0, 0.0, 0.0])
    return (q / np.linalg.norm(q)).tolist()


def centres():
    return st.lists(_coord, min_size=3, max_size=3)


@st.composite
def mutated(draw, fields: list[str]) -> str:
    """``fields`` joined by blanks with one field replaced by garbage, dropped or doubled."""
    i = draw(st.integers(0, len(fields) - 1))
    how = draw(st.sampled_from(["replace", "drop", "double"]))
    if how == "replace":
        fields = [*fields[:i], draw(GARBAGE_TOKEN), *fields[i + 1 :]]
    elif how == "drop":
        fields = fields[:i] + fields[i + 1 :]
    else:
        fields = [*fields[: i + 1], fields[i], *fields[i + 1 :]]
    return " ".join(fields)


_cmu_chars = st.text(st.sampled_from(list("0123456789.-+e _cjpgimnaNIf\t#x")), max_size=80)
_rc_chars = st.text(st.sampled_from(list("0123456789.-+e :fxycNaIn/_\tpgj")), max_size=80)
SETTINGS = settings(max_examples=150, deadline=None)


def _check_pose(q, t, q_expected, centre):
    q_expected = np.asarray(q_expected) / np.linalg.norm(q_expected)
    np.testing.assert_allclose(q, q_expected, atol=1e-12)
    np.testing.assert_allclose(t, t_from_centre(q_expected, centre), rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- CMU centre poses
@st.composite
def _cmu_pose_lines(draw):
    name = draw(st.sampled_from(["img_00122_c0_1303398475046031us.jpg", "x.jpg"]))
    q, c = draw(unit_quaternions()), draw(centres())
    fields = [name, *map(repr, q), *map(repr, c)]
    if draw(st.booleans()):
        return " ".join(fields), (name, q, c)
    return draw(mutated(fields)), None


@SETTINGS
@given(st.one_of(_cmu_pose_lines(), _cmu_chars.map(lambda s: (s, None))))
def test_fuzz_cmu_centre_pose(case):
    text, expected = case
    try:
        name, q, t = cmu.parse_centre_pose(text, WHERE)
    except ValueError as err:
        assert expected is None, f"valid line rejected: {text!r}: {err}"
        assert_names_the_line(err)
        return
    if expected is not None:
        assert name == expected[0]
        _check_pose(q, t, expected[1], expected[2])
        return
    f = text.split()
    v = floats(f[1:])
    assert len(f) == 8 and v is not None and abs(np.linalg.norm(v[:4]) - 1) <= 1e-3, text
    assert name == f[0]
    _check_pose(q, t, v[:4], v[4:])


# ----------------------------------------------------------------------------- CMU intrinsics
@st.composite
def _cmu_intrinsics_lines(draw):
    model = draw(st.sampled_from(["PINHOLE", "OPENCV", "SIMPLE_RADIAL"]))
    w, h = draw(st.integers(100, 2000)), draw(st.integers(100, 2000))
    f = draw(st.floats(0.5, 2.0)) * w
    params = {"PINHOLE": [f, f, w / 2, h / 2], "SIMPLE_RADIAL": [f, w / 2, h / 2, -0.01]}.get(
        model, [f, f, w / 2, h / 2, -0.01, 0.001, 0.0, 0.0]
    )
    fields = ["c1", model, str(w), str(h), *map(repr, params)]
    if draw(st.booleans()):
        return " ".join(fields), ("c1", model, [w, h], params)
    return draw(mutated(fields)), None


@SETTINGS
@given(st.one_of(_cmu_intrinsics_lines(), _cmu_chars.map(lambda s: (s, None))))
def test_fuzz_cmu_intrinsics(case):
    text, expected = case
    try:
        name, cam = cmu.parse_intrinsics_line(text, WHERE)
    except ValueError as err:
        assert expected is None, f"valid line rejected: {text!r}: {err}"
        assert_names_the_line(err)
        return
    if expected is None:
        f = text.split()
        params = floats(f[4:])
        assert len(f) >= 4 and f[1] in MODEL_NUM_PARAMS and params is not None, text
        expected = (f[0], f[1], [int(f[2]), int(f[3])], params)
    assert (name, cam.model, cam.size.tolist()) == expected[:3]
    np.testing.assert_array_equal(cam.params.numpy(), expected[3])


# ----------------------------------------------------------------------------- CMU slices, names
def _slices_reference(text: str) -> set[int] | None:
    out: set[int] = set()
    for tok in text.replace(" ", "").split(","):
        low, lo_hi = tok.lower(), tok.split("-")
        if low in cmu.SCENES:
            out |= set(cmu.SCENES[low])
        elif low in ("all", "*"):
            out |= set(range(2, 26))
        elif tok.isdecimal():
            out.add(int(tok))
        elif len(lo_hi) == 2 and all(s.isdecimal() for s in lo_hi):
            lo, hi = int(lo_hi[0]), int(lo_hi[1])
            if not 2 <= lo <= hi <= 25:
                return None
            out |= set(range(lo, hi + 1))
        else:
            return None
    return out if out and out <= set(range(2, 26)) else None


_slice_specs = st.lists(
    st.one_of(
        st.integers(0, 30).map(str),
        st.tuples(st.integers(0, 30), st.integers(0, 30)).map(lambda p: f"{p[0]}-{p[1]}"),
        st.sampled_from(["urban", "Park", "all", "*", "x", ""]),
    ),
    min_size=1,
    max_size=4,
).map(lambda toks: ", ".join(toks))


@SETTINGS
@given(st.one_of(_slice_specs, _cmu_chars, st.text(max_size=60)))
def test_fuzz_cmu_slices(text):
    expected = _slices_reference(text)
    try:
        got = cmu.parse_slices(text)
    except ValueError as err:
        assert expected is None, f"valid slices rejected: {text!r}: {err}"
        tokens = text.replace(" ", "").split(",")
        assert any(repr(s) in str(err) for s in (text, *tokens)), str(err)
        return
    assert got == sorted(expected)


_cmu_names = st.tuples(
    st.integers(0, 99999), st.sampled_from(["c0", "c1", "c2", "cx"]), st.integers(0, 10**16)
).map(lambda v: (f"img_{v[0]:05d}_{v[1]}_{v[2]}us.jpg", v[1]))


@SETTINGS
@given(st.one_of(_cmu_names, _cmu_chars.map(lambda s: (s, None)), st.text(max_size=60)))
def test_fuzz_cmu_camera_of(case):
    text, cam = case if isinstance(case, tuple) else (case, None)
    try:
        got = cmu.camera_of(text, where=WHERE)
    except ValueError as err:
        assert cam not in ("c0", "c1"), f"{text!r}: {err}"
        assert_names_the_line(err)
        assert repr(text) in str(err)
        return
    assert got in ("c0", "c1") and f"_{got}_" in Path(text).name
    assert cam in (None, got)


# ----------------------------------------------------------------------------- RobotCar
@SETTINGS
@given(
    st.one_of(
        st.tuples(st.sampled_from(["fx", "fy", "cx", "cy"]), st.floats(-1e4, 1e4)).map(
            lambda kv: (f"{kv[0]}: {kv[1]!r}", kv)
        ),
        _rc_chars.map(lambda s: (s, None)),
        st.text(max_size=60).map(lambda s: (s, None)),
    )
)
def test_fuzz_robotcar_intrinsics(case):
    text, expected = case
    try:
        got = rc.parse_intrinsics_line(text, WHERE)
    except ValueError as err:
        assert expected is None, f"valid line rejected: {text!r}: {err}"
        assert_names_the_line(err)
        return
    if expected is None:
        key, _, value = text.partition(":")
        v = floats(value.split())
        assert key.strip() in ("fx", "fy", "cx", "cy") and v is not None and len(v) == 1, text
        expected = (key.strip(), float(v[0]))
    assert got == expected


@st.composite
def _nvm_camera_lines(draw):
    stem = f"{draw(st.sampled_from(rc.CONDITIONS))}/rear/{draw(st.integers(0, 10**16))}"
    dot, ext = draw(st.sampled_from(["", "./"])), draw(st.sampled_from([".png", ".jpg"]))
    f, r = draw(st.floats(1.0, 2000.0)), draw(st.floats(-1.0, 1.0))
    q, c = draw(unit_quaternions()), draw(centres())
    fields = [dot + stem + ext, repr(f), *map(repr, q), *map(repr, c), repr(r), "0"]
    if draw(st.booleans()):
        return " ".join(fields), (stem + ".jpg", f, q, c, r)
    return draw(mutated(fields)), None


@SETTINGS
@given(st.one_of(_nvm_camera_lines(), _rc_chars.map(lambda s: (s, None))))
def test_fuzz_nvm_camera_line(case):
    text, expected = case
    try:
        name, f, q, t, r = rc.parse_nvm_camera_line(text, WHERE)
    except ValueError as err:
        assert expected is None, f"valid line rejected: {text!r}: {err}"
        assert_names_the_line(err)
        return
    if expected is None:
        fields = text.split()
        v = floats(fields[1:])
        assert len(fields) == 11 and v is not None and v[0] > 0, text
        assert abs(np.linalg.norm(v[1:5]) - 1) <= 1e-3
        stem = fields[0].removeprefix("./")
        stem = re.sub(r"\.png$", ".jpg", stem)
        expected = (stem, v[0], v[1:5], v[5:8], v[8])
    assert (name, f, r) == (expected[0], expected[1], expected[4])
    _check_pose(q, t, expected[2], expected[3])


_rc_names = st.tuples(
    st.sampled_from([*rc.CONDITIONS, "fog"]),
    st.sampled_from([*rc.CAMERAS, "front"]),
    st.integers(0, 10**16),
    st.sampled_from(["jpg", "png", "gif"]),
).map(lambda v: (f"{v[0]}/{v[1]}/{v[2]}.{v[3]}", v))


@SETTINGS
@given(st.one_of(_rc_names, _rc_chars.map(lambda s: (s, None))))
def test_fuzz_robotcar_image_name(case):
    text, parts = case
    valid = parts is not None and parts[0] in rc.CONDITIONS and parts[1] in rc.CAMERAS
    valid = valid and parts[3] != "gif"
    try:
        got = rc.parse_image_name(text, WHERE)
    except ValueError as err:
        assert not valid, f"valid name rejected: {text!r}: {err}"
        assert_names_the_line(err)
        assert repr(text) in str(err)
        return
    assert valid or parts is None, text
    cond, cam, stamp = text.removeprefix("./").split("/")
    assert got == (cond, cam, int(stamp.rsplit(".", 1)[0]))
    assert cond in rc.CONDITIONS and cam in rc.CAMERAS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.sampled_from(list("0123456789 .-e\n")), max_size=30), max_size=6))
def test_fuzz_nvm_file(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("nvm") / "m.nvm"
    path.write_text("NVM_V3\n" + "\n".join(lines))
    try:
        model = rc.read_nvm(path)
    except ValueError as err:
        assert str(err).startswith(f"{path}:"), str(err)
        return
    assert len(model.names) == len(model.poses)  # accepted: an (empty or tiny) valid model


@pytest.mark.parametrize(
    "text, expected",
    [
        ("img_00122_c0_1303398475046031us.jpg 1 0 0 0 1 2 3", [-1.0, -2.0, -3.0]),
        ("a.jpg 0 0 0 1 1 2 3", [1.0, 2.0, -3.0]),  # 180 deg about z
    ],
)
def test_centre_pose_known_answers(text, expected):
    assert cmu.parse_centre_pose(text)[2].tolist() == expected
