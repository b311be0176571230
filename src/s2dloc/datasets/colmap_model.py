"""Reading COLMAP model folders (binary or text) with errors that name the file.

pycolmap reads a model without checking its structure: a truncated ``cameras.bin`` is accepted
silently, a garbage ``points3D.bin`` can keep it busy for minutes, and other damage surfaces as
an ``IndexError`` such as ``unordered_map::at``. :func:`read_model` first walks the binary files
(``cameras.bin``, ``images.bin``, ``points3D.bin``: counts, record sizes, camera models, the
cameras that images refer to) or compares the text files with the counts in their headers, then
reads the model with pycolmap and turns any error into a ``ValueError`` naming the model.

Binary layout (little endian; COLMAP's ``reconstruction_io_binary``)::

    cameras.bin   u64 n, n x (i32 id, i32 model, u64 width, u64 height, f64 params[model])
    images.bin    u64 n, n x (u32 id, f64 qw qx qy qz tx ty tz, u32 camera, name\\0,
                              u64 m, m x (f64 x, f64 y, u64 point3D_id))
    points3D.bin  u64 n, n x (u64 id, f64 xyz[3], u8 rgb[3], f64 error,
                              u64 k, k x (u32 image, u32 point2D_idx))
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import pycolmap

from s2dloc.utils.io import read_text

# COLMAP camera model id -> (name, number of parameters).
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3),
    1: ("PINHOLE", 4),
    2: ("SIMPLE_RADIAL", 4),
    3: ("RADIAL", 5),
    4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8),
    6: ("FULL_OPENCV", 12),
    7: ("FOV", 5),
    8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5),
    10: ("THIN_PRISM_FISHEYE", 12),
    11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
    12: ("SIMPLE_DIVISION", 4),
    13: ("DIVISION", 5),
    14: ("SIMPLE_FISHEYE", 3),
    15: ("FISHEYE", 4),
    16: ("EUCM", 6),
    17: ("EQUIRECTANGULAR", 2),
}
FILES = ("cameras", "images", "points3D")


class _Bytes:
    """A cursor over a binary file whose errors name the file and the byte offset."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, path.read_bytes(), 0

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.path}: {message}")

    def take(self, fmt: str, what: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise self.fail(
                f"truncated: {what} at byte {self.pos} needs {size} bytes, the file "
                f"has {len(self.data)}"
            )
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, size: int, what: str) -> None:
        if self.pos + size > len(self.data):
            raise self.fail(
                f"truncated: {what} at byte {self.pos} needs {size} bytes, the file "
                f"has {len(self.data)}"
            )
        self.pos += size

    def count(self, what: str, min_size: int) -> int:
        (n,) = self.take("<Q", f"the number of {what}")
        left = len(self.data) - self.pos
        if n * min_size > left:
            raise self.fail(
                f"the header says {n} {what} (at least {min_size} bytes each) but "
                f"{left} bytes follow: truncated, or not a COLMAP binary file"
            )
        return n

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(
                f"{len(self.data) - self.pos} unexpected bytes after the last record "
                f"(at byte {self.pos}): not a COLMAP binary file, or a damaged one"
            )


def check_cameras_bin(path: str | Path) -> set[int]:
    """Walk ``cameras.bin``; returns the camera ids (``ValueError`` naming the file if bad)."""
    f, ids = _Bytes(Path(path)), set()
    for k in range(f.count("cameras", 24)):
        cam_id, model, width, height = f.take("<iiQQ", f"camera record {k}")
        if model not in CAMERA_MODELS:
            raise f.fail(
                f"camera {cam_id} (record {k}) has model id {model}, expected a COLMAP "
                f"camera model id 0-{max(CAMERA_MODELS)}"
            )
        if not (0 < width < 10**6 and 0 < height < 10**6):
            raise f.fail(f"camera {cam_id} has size {width}x{height}, expected 1-999999 pixels")
        name, n = CAMERA_MODELS[model]
        params = f.take(f"<{n}d", f"the {n} parameters of {name} camera {cam_id}")
        if not all(math.isfinite(p) for p in params):
            raise f.fail(f"camera {cam_id} has non-finite parameters {params}")
        ids.add(cam_id)
    f.end()
    return ids


def check_images_bin(path: str | Path, camera_ids: set[int] | None = None) -> int:
    """Walk ``images.bin`` (cameras must be in ``camera_ids`` if given); returns the count."""
    f = _Bytes(Path(path))
    n = f.count("images", 4 + 56 + 4 + 2 + 8)
    for k in range(n):
        image_id, *pose, cam_id = f.take("<I7dI", f"image record {k}")
        if not all(math.isfinite(v) for v in pose):
            raise f.fail(f"image {image_id} (record {k}) has a non-finite pose {pose}")
        if camera_ids is not None and cam_id not in camera_ids:
            raise f.fail(
                f"image {image_id} (record {k}) uses camera {cam_id}, which is not in "
                f"cameras.bin (cameras {sorted(camera_ids)[:5]}...)"
            )
        end = f.data.find(b"\0", f.pos, f.pos + 4096)
        if end <= f.pos:
            raise f.fail(
                f"image {image_id} (record {k}) at byte {f.pos}: expected a file name "
                "ending in a NUL byte (truncated file?)"
            )
        try:
            f.data[f.pos : end].decode("utf-8")
        except UnicodeDecodeError:
            raise f.fail(f"image {image_id} (record {k}): the file name is not UTF-8") from None
        f.pos = end + 1
        (m,) = f.take("<Q", f"the number of 2D points of image {image_id}")
        f.skip(24 * m, f"the {m} 2D points of image {image_id}")
    f.end()
    return n


def check_points3D_bin(path: str | Path) -> int:
    """Walk ``points3D.bin``; returns the number of points."""
    f = _Bytes(Path(path))
    n = f.count("points", 51)
    for k in range(n):
        point_id, x, y, z, _, _, _, _, length = f.take("<Q3d3BdQ", f"point record {k}")
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            raise f.fail(f"point {point_id} (record {k}) has non-finite coordinates")
        f.skip(8 * length, f"the track of {length} elements of point {point_id}")
    f.end()
    return n


_DECLARED = {"cameras": "cameras", "images": "images", "points3D": "points"}


def check_text_counts(path: str | Path) -> None:
    """Compare a text file's data lines with the ``# Number of ...: N`` count of its header
    (COLMAP writes one; files without it are not checked)."""
    path = Path(path)
    kind = path.stem
    text = read_text(path)
    m = re.search(rf"^# Number of {_DECLARED[kind]}: (\d+)", text, re.MULTILINE)
    if m is None:
        return
    lines = [ln.split() for ln in text.splitlines() if not ln.startswith("#")]
    # images.txt has two lines per image; the pose line has 10 fields, a points line 3 per point.
    found = sum(len(f) == 10 for f in lines) if kind == "images" else sum(bool(f) for f in lines)
    if found != int(m.group(1)):
        raise ValueError(
            f"{path}: the header says {m.group(1)} {_DECLARED[kind]} but the file "
            f"has {found} (truncated or edited file?)"
        )


def check_model(path: str | Path) -> str:
    """Check the files of the COLMAP model folder ``path``; returns ``"bin"`` or ``"txt"``."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"COLMAP model folder {path} does not exist")
    for ext in ("bin", "txt"):
        if all((path / f"{name}.{ext}").is_file() for name in FILES):
            break
    else:
        raise ValueError(
            f"{path} is not a COLMAP model: expected cameras, images and points3D "
            f".bin or .txt files, found {sorted(p.name for p in path.iterdir())}"
        )
    if ext == "bin":
        check_images_bin(path / "images.bin", check_cameras_bin(path / "cameras.bin"))
        check_points3D_bin(path / "points3D.bin")
    else:
        for name in FILES:
            check_text_counts(path / f"{name}.txt")
    return ext


def read_model(path: str | Path) -> pycolmap.Reconstruction:
    """The ``pycolmap.Reconstruction`` in a model folder, checked first (:func:`check_model`).
    ``FileNotFoundError`` for a missing folder, ``ValueError`` naming the file otherwise."""
    check_model(path)
    try:
        return pycolmap.Reconstruction(str(path))
    except Exception as err:  # pycolmap raises IndexError, ValueError or RuntimeError
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"could not read the COLMAP model {path}: {message}") from None
