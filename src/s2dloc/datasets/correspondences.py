"""Cross-Season Correspondence Dataset files (Larsson et al., CVPR 2019): one image pair per
MATLAB v7.3 ``.mat`` file (HDF5 with a 512-byte MATLAB header) holding

- ``im_i_path``, ``im_j_path``: image paths, MATLAB char (uint16 codes);
- ``pt_i``, ``pt_j``: MATLAB 2xN double, pixel coordinates (x, y) with pixel centres at integers
  (0-based) as used by the dataset's loader, which rounds ``pt + 0.5`` to index pixels;
- ``dist_from_center``: MATLAB Nx1 double (one row per point), a per-point distance turned into
  a weight ``exp(-dist)`` by that loader (ours: metres between the two depth back-projections).

MATLAB stores arrays column-major, so h5py reads a MATLAB 2xN array as (N, 2) and an Nx1 array
as (1, N). The dataset's loader swaps the two axes of all three arrays and then indexes points
along the first axis of the weights: ``pt_i`` becomes (2, N) and ``dist_from_center`` (N, 1).
The writer stores exactly that layout; the reader also accepts ``dist_from_center`` stored the
other way round ((N, 1) in HDF5, as earlier versions of this writer did) and ``pt_*`` written
row-major. The API here uses COLMAP pixel coordinates (centre of the top-left pixel at
(0.5, 0.5)): files hold ``pt - 0.5``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import h5py
import numpy as np

from s2dloc.utils.io import atomic_path

_HEADER = "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {date} HDF5 schema 1.00 ."
_FIELDS = ("im_i_path", "im_j_path", "pt_i", "pt_j", "dist_from_center")


@dataclasses.dataclass
class CorrespondencePair:
    """pt_i, pt_j (N, 2) float64 in COLMAP pixel coordinates; dist_from_center (N,) float64."""

    im_i_path: str
    im_j_path: str
    pt_i: np.ndarray
    pt_j: np.ndarray
    dist_from_center: np.ndarray

    def __post_init__(self):
        self.pt_i = np.asarray(self.pt_i, np.float64).reshape(-1, 2)
        self.pt_j = np.asarray(self.pt_j, np.float64).reshape(-1, 2)
        self.dist_from_center = np.asarray(self.dist_from_center, np.float64).reshape(-1)
        n = {len(self.pt_i), len(self.pt_j), len(self.dist_from_center)}
        if len(n) != 1:
            raise ValueError(f"pt_i, pt_j and dist_from_center lengths differ: {sorted(n)}")


def _matlab_header(date: str | None) -> bytes:
    date = date or time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(0))
    text = _HEADER.format(date=date).encode("ascii").ljust(116, b" ")
    return text + b"\x00" * 8 + b"\x00\x02" + b"IM"  # subsystem offset, version 0x0200, endian


def _set_class(ds, cls: str, **extra):
    ds.attrs.create("MATLAB_class", np.bytes_(cls))
    for k, v in extra.items():
        ds.attrs.create(k, np.int32(v))


def write_correspondences(path: str | Path, pair: CorrespondencePair, date: str | None = None):
    """Write one pair as a MATLAB v7.3 file (atomically). ``date`` goes into the header text;
    the default is fixed so that equal inputs give identical bytes."""
    path = Path(path)
    with atomic_path(path, suffix=".mat") as tmp:
        with h5py.File(tmp, "w", userblock_size=512, libver="earliest", track_order=False) as f:
            for key, text in (("im_i_path", pair.im_i_path), ("im_j_path", pair.im_j_path)):
                codes = np.array([ord(c) for c in text], np.uint16).reshape(-1, 1)
                ds = f.create_dataset(key, data=codes, track_times=False)
                _set_class(ds, "char", MATLAB_int_decode=2)
            arrays = {
                "pt_i": pair.pt_i - 0.5,
                "pt_j": pair.pt_j - 0.5,
                "dist_from_center": pair.dist_from_center.reshape(1, -1),  # MATLAB Nx1
            }
            for key, arr in arrays.items():
                ds = f.create_dataset(key, data=np.ascontiguousarray(arr), track_times=False)
                _set_class(ds, "double")
        with open(tmp, "r+b") as fh:
            fh.write(_matlab_header(date).ljust(512, b"\x00"))
    return path


def _read_array(f: h5py.File, path: Path, key: str, cols: int) -> np.ndarray:
    if key not in f:
        raise ValueError(f"{path}: missing field {key!r} (has {sorted(f.keys())})")
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise ValueError(f"{path}: field {key!r} is not an array")
    if int(np.asarray(ds.attrs.get("MATLAB_empty", 0)).reshape(-1)[0]):
        return np.zeros((0, cols))
    arr = np.asarray(ds[()], np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{path}: field {key!r} must be 2-D, got shape {arr.shape}")
    if arr.shape[1] != cols and arr.shape[0] == cols:
        arr = arr.T  # written row-major by a non-MATLAB tool
    if arr.shape[1] != cols:
        raise ValueError(f"{path}: field {key!r} must be MATLAB {cols}xN, got HDF5 {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{path}: field {key!r} has non-finite values")
    return arr


def _read_string(f: h5py.File, path: Path, key: str) -> str:
    if key not in f:
        raise ValueError(f"{path}: missing field {key!r} (has {sorted(f.keys())})")
    data = np.asarray(f[key][()])
    if data.dtype.kind not in "ui":
        raise ValueError(f"{path}: field {key!r} must be a MATLAB char array, got {data.dtype}")
    return "".join(chr(int(c)) for c in data.T.reshape(-1))


def read_correspondences(path: str | Path) -> CorrespondencePair:
    """Read a pair written by :func:`write_correspondences` or by MATLAB (``save -v7.3``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a MATLAB v7.3 / HDF5 file ({err})") from None
    with f:
        pt_i = _read_array(f, path, "pt_i", 2) + 0.5
        pt_j = _read_array(f, path, "pt_j", 2) + 0.5
        dist = _read_array(f, path, "dist_from_center", 1)[:, 0]
        if not len(pt_i) == len(pt_j) == len(dist):
            raise ValueError(
                f"{path}: field lengths differ: pt_i {len(pt_i)}, pt_j {len(pt_j)}, "
                f"dist_from_center {len(dist)}"
            )
        return CorrespondencePair(
            _read_string(f, path, "im_i_path"), _read_string(f, path, "im_j_path"), pt_i, pt_j, dist
        )
