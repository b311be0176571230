"""HDF5 file helpers shared by the feature and match formats: open for reading with a clear
error, and write a new file atomically or add to an existing one in place (resumable)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py

from s2dloc.utils.io import atomic_path


def write_h5(path: Path, fill: Callable[[h5py.File], None]) -> Path:
    """Run ``fill`` on ``path``: in place if it exists, else on a new file renamed atomically."""
    if path.exists():
        with h5py.File(path, "a") as f:
            fill(f)
    else:
        with atomic_path(path, suffix=".h5") as tmp:
            with h5py.File(tmp, "w") as f:
                fill(f)
    return path


def open_h5(path: str | Path) -> h5py.File:
    """Open ``path`` for reading; FileNotFoundError or ValueError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5 file ({err})") from None
