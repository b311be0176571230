"""The on-disk cache of compiled kernels is dropped when any kernel source changes."""

from __future__ import annotations

import shutil

from s2dloc.fpnp import compiled_cache
from s2dloc.fpnp.compiled_cache import KERNEL_SOURCES, STAMP, drop_stale_kernels


def _package(tmp_path):
    pkg = tmp_path / "fpnp"
    (pkg / "__pycache__").mkdir(parents=True)
    for name in KERNEL_SOURCES:
        shutil.copy(compiled_cache.PACKAGE / name, pkg / name)
    return pkg


def _cached(pkg, *names):
    for name in names:
        (pkg / "__pycache__" / name).write_bytes(b"compiled")


def test_an_edit_of_one_kernel_file_drops_the_cached_callers_in_the_others(tmp_path):
    pkg = _package(tmp_path)
    cached = ["lm_kernels.solve_level-127.py311.nbi", "lm_kernels.solve_level-127.py311.1.nbc"]
    other = ["solver.cpython-311.pyc", "other.fn-1.py311.nbi"]
    _cached(pkg, *cached, *other)
    assert drop_stale_kernels(pkg)  # first run: nothing stamped yet
    assert (pkg / "__pycache__" / STAMP).exists()
    names = {f.name for f in (pkg / "__pycache__").iterdir()}
    assert names == {STAMP, *other}
    _cached(pkg, *cached)
    assert not drop_stale_kernels(pkg)  # unchanged sources: the cache stays
    assert all((pkg / "__pycache__" / n).exists() for n in cached)
    with open(pkg / "kernels.py", "a") as f:
        f.write("\n# an edit\n")
    assert drop_stale_kernels(pkg)
    assert not any((pkg / "__pycache__" / n).exists() for n in cached)


def test_a_read_only_package_is_left_alone(tmp_path):
    pkg = _package(tmp_path)
    (pkg / "__pycache__").rmdir()
    (pkg / "__pycache__").write_text("not a directory")  # nothing can be written there
    assert not drop_stale_kernels(pkg)
