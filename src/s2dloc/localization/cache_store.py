"""Storage of the feature cache: per-entry checksums and atomic commits of the HDF5 file.

Integrity: each entry's ``checksum`` attribute is a BLAKE2b digest of the cache signature (the
extractor and descriptor settings), the entry's name and every dataset (name, dtype, shape,
bytes). An entry without a checksum (interrupted) or whose data no longer matches it (altered or
truncated) is reported by :func:`read_entry` / :func:`scan_cache`.

Crash safety: the cache file is never modified in place. :class:`CacheWriter` adds entries to a
temporary copy (``.NAME.PID.tmp`` beside it) that atomically replaces the file when committed:
every ``commit_seconds`` of work (at least ten times the time a copy takes), at the end and
after an error. A process killed at any moment leaves the previous or the new complete file;
:func:`remove_stale_temporaries` deletes the copies of killed processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from s2dloc.localization.map import Map
from s2dloc.utils.config import changed_keys

logger = logging.getLogger(__name__)


def checksum(sig: str, name: str, arrays: dict[str, np.ndarray]) -> str:
    """Digest of one entry: the signature, the name and every array (name, dtype, shape, bytes)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{sig}\0{name}".encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"\0{key}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def read_entry(f: h5py.File, name: str, sig: str) -> tuple[dict[str, np.ndarray] | None, str]:
    """``(arrays, "")`` of a sound entry, else ``(None, why)`` (``why`` is "" when absent)."""
    if name not in f:
        return None, ""
    try:
        g = f[name]
        stored = g.attrs.get("checksum")
        if stored is None:
            return None, "incomplete (no checksum: interrupted while written)"
        arrays: dict[str, np.ndarray] = {}

        def collect(key: str, item) -> None:
            if isinstance(item, h5py.Dataset):
                arrays[key] = item[()]

        g.visititems(collect)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        return None, f"unreadable ({type(err).__name__}: {err})"
    if checksum(sig, name, arrays) != stored:
        return None, "altered or truncated (checksum mismatch)"
    return arrays, ""


def open_cache(path: Path, mode: str) -> h5py.File:
    try:
        return h5py.File(path, mode)
    except OSError as err:
        raise ValueError(
            f"feature cache {path} is unreadable ({err}); rebuild it (--rebuild-cache) or use "
            "another --cache"
        ) from None


def check_signature(f: h5py.File, path: Path, sig: str) -> None:
    """Refuse a cache whose settings signature (JSON) differs from ``sig``, naming the
    changed settings (:func:`~s2dloc.utils.config.changed_keys`)."""
    old = f.attrs.get("signature")
    if old is not None and old != sig:
        try:
            changed = ", ".join(changed_keys(json.loads(old), json.loads(sig))) or "?"
        except (TypeError, ValueError):
            changed = "unreadable signature"
        raise ValueError(
            f"feature cache {path} was built with other settings (changed: {changed}); rebuild "
            "it (--rebuild-cache) or use another --cache"
        )


def scan_cache(path: Path, map_: Map, sig: str) -> tuple[set[str], dict[str, str]]:
    """Names of the sound entries of ``map_``'s images and ``{name: problem}`` of broken ones."""
    good, bad = set(), {}
    if not path.exists():
        return good, bad
    with open_cache(path, "r") as f:
        check_signature(f, path, sig)
        for name in map_.names:
            arrays, why = read_entry(f, name, sig)
            if arrays is not None and (why := stale_entry(arrays, map_, name)):
                arrays = None
            if arrays is not None:
                good.add(name)
            elif why:
                bad[name] = why
    return good, bad


def stale_entry(arrays: dict[str, np.ndarray], map_: Map, name: str) -> str:
    """Why a sound entry no longer describes reference ``name`` of ``map_`` ("" if it does)."""
    im = map_[name]
    same_points = np.array_equal(arrays["point3D_ids"], im.point3D_ids)
    if not (same_points and np.array_equal(arrays["keypoints"], np.asarray(im.keypoints))):
        return "stale (its observations differ from the map's)"
    if not np.array_equal(arrays.get("image_digest"), map_.image_digest(name)):
        return "stale (its image changed, or was cached without a digest)"
    return ""


class CacheWriter:
    """Appends entries to a temporary copy of the cache and commits it atomically."""

    def __init__(self, path: Path, sig: str, drop: list[str], commit_seconds: float):
        self.path, self.sig, self.commit_seconds = path, sig, commit_seconds
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.copy_time, self.pending, self.file = 0.0, 0, None
        self._start(drop)

    def _start(self, drop: list[str] = ()) -> None:
        t = time.monotonic()
        if self.path.exists():
            shutil.copyfile(self.path, self.tmp)
        self.file = h5py.File(self.tmp, "a")
        for name in drop:
            if name in self.file:
                del self.file[name]
        self.file.attrs["signature"] = self.sig
        self.copy_time = time.monotonic() - t
        self.since = time.monotonic()

    def add(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        if name in self.file:
            del self.file[name]
        g = self.file.create_group(name)
        for key, a in arrays.items():
            g.create_dataset(key, data=a)
        g.attrs["checksum"] = checksum(self.sig, name, arrays)
        self.pending += 1
        if time.monotonic() - self.since >= max(self.commit_seconds, 10 * self.copy_time):
            self.commit()
            self._start()

    def commit(self) -> None:
        self.file.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        self.pending = 0

    def close(self, ok: bool) -> None:
        """Commit what was written (also after an error, if the copy still opens)."""
        try:
            self.file.close()
            if not (ok or self.pending):
                return
            try:
                h5py.File(self.tmp, "r").close()  # never replace the cache with a broken file
            except OSError:
                if ok:
                    raise
                logger.error("feature cache %s: entries of the failed run not kept", self.path)
                return
            self.commit()
        finally:
            self.tmp.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary copies of the cache left by killed processes (dead PIDs)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 : -4]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue
