"""Atomic writes: all or nothing, with ordinary permissions."""

from __future__ import annotations

import os

import pytest

from s2dloc.utils.io import atomic_path, write_text_atomic


def test_write_replaces_and_uses_umask_permissions(tmp_path):
    path = write_text_atomic(tmp_path / "sub" / "a.txt", "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]  # no temporary left


def test_failure_leaves_the_old_file_untouched(tmp_path):
    path = write_text_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and len(list(tmp_path.iterdir())) == 1
