"""The settings guard of a synthetic world folder: checked and written before anything else, so
that a resumed run of other settings is refused and one of the same settings keeps its files."""

from __future__ import annotations

import dataclasses
import json

import pytest

from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import prepare_world_folder, write_world
from s2dloc.utils.config import ConfigError

CFG = dataclasses.replace(PRESETS["tiny"], num_db=3, num_query=2, width=48, height=36)
OTHER = dataclasses.replace(CFG, seed=7, num_query=3)


@pytest.fixture(scope="module")
def worlds():
    return generate_world(CFG, progress=False), generate_world(OTHER, progress=False)


def _files(root) -> dict[str, tuple[int, bytes]]:
    """Every file under ``root``: (inode, bytes) by relative path."""
    return {
        str(p.relative_to(root)): (p.stat().st_ino, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_marker_is_written_first_and_guards_the_folder(tmp_path):
    prepare_world_folder(tmp_path, CFG)
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved == {"config": CFG.to_dict()} and saved["config"]["num_query"] == 2
    prepare_world_folder(tmp_path, CFG)  # same settings: accepted
    with pytest.raises(ConfigError, match=r"settings.json was written with other settings "):
        prepare_world_folder(tmp_path, OTHER)
    with pytest.raises(ConfigError, match=r"\(changed: config.num_query, config.seed\)"):
        prepare_world_folder(tmp_path, OTHER)
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # nothing else written


def test_interrupted_world_refuses_other_settings_and_resumes_same(
    tmp_path, worlds, monkeypatch, interrupt_after
):
    world, other = worlds
    with monkeypatch.context() as m:
        interrupt_after(m, 2)
        with pytest.raises(KeyboardInterrupt):
            write_world(world, tmp_path / "w", progress=False)
    partial = _files(tmp_path / "w")
    assert sorted(partial) == ["images/db/0000.png", "images/db/0001.png", "settings.json"]
    with pytest.raises(ValueError, match=r"other settings \(changed: config.num_query, config.s"):
        write_world(other, tmp_path / "w", progress=False)
    assert _files(tmp_path / "w") == partial  # refused before writing anything
    write_world(world, tmp_path / "w", progress=False)  # same settings: resumes
    resumed = _files(tmp_path / "w")
    for name in ("images/db/0000.png", "images/db/0001.png", "settings.json"):
        assert resumed[name] == partial[name]  # kept, not rewritten (same inode)
    write_world(world, tmp_path / "fresh", progress=False)
    fresh = _files(tmp_path / "fresh")
    assert len(fresh) > 15 and fresh.keys() == resumed.keys()
    assert all(fresh[k][1] == resumed[k][1] for k in fresh)  # as if never interrupted


def test_overwrite_replaces_the_old_world(tmp_path, worlds):
    world, other = worlds
    write_world(other, tmp_path, progress=False)
    assert (tmp_path / "images/query/snow/0002.png").exists()
    (tmp_path / "notes.txt").write_text("mine")
    write_world(world, tmp_path, overwrite=True, progress=False)
    queries = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "images/query").rglob("*.*"))
    assert queries == ["images/query/dusk/0000.png", "images/query/night/0001.png"]
    assert json.loads((tmp_path / "world.json").read_text())["config"]["seed"] == 0
    assert json.loads((tmp_path / "settings.json").read_text())["config"]["seed"] == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the world's outputs go


def test_folder_without_marker(tmp_path, worlds):
    world, _ = worlds
    write_world(world, tmp_path / "old", progress=False)
    (tmp_path / "old" / "settings.json").unlink()  # a complete world of an earlier version
    with pytest.raises(ConfigError, match=r"changed: config.num_query, config.seed"):
        prepare_world_folder(tmp_path / "old", OTHER)
    prepare_world_folder(tmp_path / "old", CFG)  # its world.json gives the settings
    (tmp_path / "part" / "images" / "db").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"part holds outputs of a world of unknown settings"):
        prepare_world_folder(tmp_path / "part", CFG)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "world.json").write_text("[1]")
    with pytest.raises(ConfigError, match=r"bad/world.json: not a world.json with a 'config'"):
        prepare_world_folder(tmp_path / "bad", CFG)
