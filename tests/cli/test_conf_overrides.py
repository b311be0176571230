"""``s2dloc synth`` and ``s2dloc map`` take ``--conf key=value`` settings (over the preset and
the dedicated options), refuse bad ones with one line and exit code 2, and save what they used."""

from __future__ import annotations

import json

import pytest

from s2dloc.cli import main

from ._cli import fails

SYNTH = ["synth", "--preset", "tiny", "--num-db", "3", "--num-query", "1", "--width", "64"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 3 + 1 image world written by ``s2dloc synth`` with ``--conf`` overrides."""
    out = tmp_path_factory.mktemp("conf") / "world"
    argv = [*SYNTH, "--out", str(out), "--conf", "width=80", "height=60", "seed=3"]
    assert main([*argv, "query_conditions=[night]"]) == 0
    return out


def test_synth_conf_overrides_preset_and_options_and_is_saved(world, caplog):
    config = json.loads((world / "world.json").read_text())["config"]
    assert config["width"] == 80  # --conf wins over --width 64
    assert (config["height"], config["num_db"], config["seed"]) == (60, 3, 3)
    assert config["query_conditions"] == ["night"] and config["camera_model"] == "PINHOLE"
    assert sorted(p.name for p in (world / "images" / "query").iterdir()) == ["night"]
    # The same folder with other settings is refused, naming the changed setting.
    argv = [*SYNTH, "--out", str(world), "--conf", "width=80", "height=60", "seed=4"]
    message = fails([*argv, "query_conditions=[night]"], caplog)
    assert "settings.json" in message and "config.seed" in message


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ("width=abc", "setting 'width' must be of type int (like its default 160), got 'abc'"),
        ("widht=90", "unknown setting 'widht'; valid keys: ['camera_model', 'fov_deg'"),
        ("fov_deg=175", "setting 'fov_deg' = 175.0 must be within 10-170 degrees"),
        ("query_conditions=[rain]", "holds bad query conditions ['rain']"),
        ("camera_model=FISHEYE", "setting 'camera_model' = 'FISHEYE' must be one of"),
    ],
)
def test_synth_bad_conf(tmp_path, caplog, conf, expected):
    message = fails([*SYNTH, "--out", str(tmp_path / "w"), "--conf", conf], caplog)
    assert expected in message
    assert not (tmp_path / "w").exists()


def test_map_conf_is_saved_and_guards_the_folder(world, tmp_path, caplog):
    out = tmp_path / "map"
    argv = ["map", "--images", str(world / "images" / "db"), "--out", str(out), "--threads", "1"]
    # Three 80x60 images: SfM fails, after the settings were saved (before any work).
    assert main([*argv, "--max-features", "900", "--conf", "max_features=500", "overlap=3"]) == 2
    saved = json.loads((out / "config.json").read_text())
    assert (saved["max_features"], saved["overlap"], saved["matcher"]) == (500, 3, "exhaustive")
    assert saved["images"] == str((world / "images" / "db").resolve())
    assert "num_threads" not in saved  # does not change the map
    message = fails([*argv, "--conf", "max_features=600", "overlap=3"], caplog)
    assert "config.json was written with other settings (changed: max_features)" in message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--conf", "matcher=foo"], "setting 'matcher' = 'foo' must be one of ['exhaustive'"),
        (["--conf", "max_size=0"], "setting 'max_size' = 0 must be >= 1"),
        (["--conf", "single_camera=yes please"], "setting 'single_camera' must be of type bool"),
        (["--conf", "camera=PINHOLE 640"], "setting 'camera' = 'PINHOLE 640' is not a camera"),
        (["--conf", "maxsize=9"], "unknown setting 'maxsize'; valid keys: ['camera', "),
        (["--known-poses", "M", "--conf", "num_neighbors=0"], "'num_neighbors' = 0 must be >= 1"),
        (["--known-poses", "M", "--conf", "matcher=poses"], "unknown setting 'matcher'"),
        (["--import-model", "M", "--conf", "seed=1"], "--conf has no settings to change"),
    ],
)
def test_map_bad_conf(tmp_path, caplog, extra, expected):
    argv = ["map", "--images", str(tmp_path), "--out", str(tmp_path / "map"), *extra]
    assert expected in fails(argv, caplog)
    assert not (tmp_path / "map").exists()
