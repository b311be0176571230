"""RobotCar Seasons (Sattler et al., CVPR 2018; release on visuallocalization.net).

Layout as distributed::

    <root>/images/<condition>/{left,rear,right}/<timestamp>.jpg
    <root>/intrinsics/{left,rear,right}_intrinsics.txt     # lines ``fx: v``, ``fy:``, ``cx:``, ``cy:``
    <root>/3D-models/all-merged/all.nvm                    # reference model (NVM_V3)

Image names are relative to ``images/``: ``<condition>/<camera>/<timestamp>.jpg``. Images are
1024x1024 and rectified, so cameras are PINHOLE.

Principal point: the published ``cx, cy`` come from the Oxford RobotCar SDK camera models, which
project to 0-based pixel coordinates with pixel centres at integers (their projections are
rounded to index pixels). s2dloc uses COLMAP's convention (top-left pixel centre at
(0.5, 0.5)), so the reader adds ``pixel_offset=0.5`` to ``cx, cy``; pass ``pixel_offset=0`` to
use the values verbatim (as hloc does). The effect is half a pixel.

NVM camera lines are ``<path> f qw qx qy qz cx cy cz r 0``: the world-to-camera rotation and
the camera CENTRE, converted here to ``t = -R c``. NVM paths name ``.png`` files (the model was
built on PNGs) while the images ship as ``.jpg``: names are mapped to ``.jpg``. NVM point
measurements are stored relative to the image centre; :attr:`NvmModel.observations` keeps them
so and :meth:`NvmModel.pixels` converts them to COLMAP pixels.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2dloc.datasets.cmu import (
    numbered_lines,
    parse_numbers,
    pose_from_centre,
    read_image_list,
    unit_quaternion,
)
from s2dloc.geometry import Camera

logger = logging.getLogger(__name__)

CAMERAS = ("left", "rear", "right")
QUERY_CONDITIONS = ("dawn", "dusk", "night", "night-rain", "overcast-summer", "overcast-winter",
                    "rain", "snow", "sun")  # fmt: skip
REFERENCE_CONDITION = "overcast-reference"
CONDITIONS = (*QUERY_CONDITIONS, REFERENCE_CONDITION)
IMAGE_SIZE = (1024, 1024)
_NAME_RE = re.compile(
    r"(?:\./)?(?P<condition>[^/]+)/(?P<camera>[^/]+)/(?P<timestamp>\d+)\.(?:jpg|png)"
)


def parse_image_name(name: str, where: str = "<name>") -> tuple[str, str, int]:
    """``(condition, camera, timestamp)`` of ``<condition>/<camera>/<timestamp>.jpg``."""
    m = _NAME_RE.fullmatch(name)
    if m is None:
        raise ValueError(f"{where}: expected '<condition>/<camera>/<timestamp>.jpg', got {name!r}")
    cond, cam = m.group("condition"), m.group("camera")
    if cond not in CONDITIONS:
        raise ValueError(f"{where}: unknown condition {cond!r} in {name!r} (known: {CONDITIONS})")
    if cam not in CAMERAS:
        raise ValueError(f"{where}: unknown camera {cam!r} in {name!r} (known: {CAMERAS})")
    return cond, cam, int(m.group("timestamp"))


def parse_intrinsics_line(line: str, where: str = "<line>") -> tuple[str, float]:
    """``fx: 400.0`` -> ``("fx", 400.0)``; keys are fx, fy, cx, cy."""
    key, sep, value = line.partition(":")
    key = key.strip()
    if not sep or key not in ("fx", "fy", "cx", "cy") or len(value.split()) != 1:
        raise ValueError(f"{where}: expected 'fx|fy|cx|cy: value', got {line.strip()[:60]!r}")
    return key, float(parse_numbers(where, value.split(), key)[0])


def read_intrinsics(path: str | Path, pixel_offset: float = 0.5) -> Camera:
    """A PINHOLE camera from ``<camera>_intrinsics.txt`` (``cx, cy`` shifted by ``pixel_offset``)."""
    values: dict[str, float] = {}
    for where, line in numbered_lines(path):
        key, value = parse_intrinsics_line(line, where)
        if key in values:
            raise ValueError(f"{where}: duplicate key {key!r}")
        values[key] = value
    missing = [k for k in ("fx", "fy", "cx", "cy") if k not in values]
    if missing:
        raise ValueError(f"{path}: missing {missing} (truncated file?)")
    if values["fx"] <= 0 or values["fy"] <= 0:
        raise ValueError(f"{path}: focal lengths must be positive, got {values}")
    params = [values["fx"], values["fy"], values["cx"] + pixel_offset, values["cy"] + pixel_offset]
    return Camera.from_colmap("PINHOLE", *IMAGE_SIZE, params)


def parse_nvm_camera_line(line: str, where: str = "<line>", ext: str = ".jpg"):
    """``<path> f qw qx qy qz cx cy cz r 0`` -> ``(name, f, q, t, r)`` with ``t = -R c``."""
    f = line.split()
    if len(f) != 11:
        raise ValueError(
            f"{where}: expected '<path> f qw qx qy qz cx cy cz r 0', got {len(f)} fields"
        )
    v = parse_numbers(where, f[1:], "camera values")
    if v[0] <= 0:
        raise ValueError(f"{where}: focal length must be positive, got {f[1]}")
    q, t = pose_from_centre(unit_quaternion(where, v[1:5]), v[5:8])
    if not np.isfinite(t).all():
        raise ValueError(f"{where}: camera centre out of range, got {f[6:9]}")
    name = f[0][2:] if f[0].startswith("./") else f[0]
    if name.endswith(".png"):
        name = name[: -len(".png")] + ext
    return name, float(v[0]), q, t, float(v[8])


@dataclass
class NvmModel:
    """Cameras and points of an NVM_V3 model.

    ``poses``: ``{name: (q, t)}`` cam_from_world; ``focal`` / ``radial``: ``{name: value}``;
    ``points3D (P, 3)``, ``colors (P, 3)`` uint8; ``observations``: per point, rows
    ``(image index, feature index, mx, my)`` with ``(mx, my)`` relative to the image centre.
    """

    names: list[str]
    poses: dict[str, tuple[np.ndarray, np.ndarray]]
    focal: dict[str, float]
    radial: dict[str, float]
    points3D: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    observations: list[np.ndarray] = field(default_factory=list)

    @staticmethod
    def pixels(measurements: np.ndarray, size=IMAGE_SIZE) -> np.ndarray:
        """COLMAP pixel coordinates of NVM measurements (offsets from the image centre)."""
        return np.asarray(measurements, np.float64) + np.asarray(size, np.float64) / 2


def _parse_point(where: str, line: str, num_images: int):
    f = line.split()
    if len(f) < 7 or not f[6].isdecimal() or len(f) != 7 + 4 * int(f[6]):
        raise ValueError(
            f"{where}: expected 'x y z r g b n (img feat mx my)*n', got {len(f)} fields"
        )
    v = parse_numbers(where, f[:6], "point values")
    obs = parse_numbers(where, f[7:], "observations").reshape(-1, 4)
    if (v[3:] < 0).any() or (v[3:] > 255).any():
        raise ValueError(f"{where}: colours must be in 0-255, got {f[3:6]}")
    if ((obs[:, 0] < 0) | (obs[:, 0] >= num_images) | (obs[:, 0] % 1 != 0)).any():
        raise ValueError(f"{where}: observation image index out of range 0-{num_images - 1}")
    return v[:3], v[3:], obs


def read_nvm(path: str | Path, read_points: bool = True, ext: str = ".jpg") -> NvmModel:
    """Read the first model of an NVM_V3 file (e.g. ``3D-models/all-merged/all.nvm``)."""
    lines = numbered_lines(path)
    where, line = next(lines, (f"{path}:1", ""))
    if not line.startswith("NVM_V3"):
        raise ValueError(f"{where}: not an NVM_V3 file (header {line[:20]!r})")

    def count(what: str) -> int:
        where, line = next(lines, (f"{path}:end", ""))
        if not line.isdecimal():
            raise ValueError(f"{where}: expected the number of {what}, got {line[:30]!r}")
        return int(line)

    model = NvmModel([], {}, {}, {})
    for _ in range(count("cameras")):
        where, line = next(lines, (f"{path}:end", ""))
        name, f, q, t, r = parse_nvm_camera_line(line, where, ext)
        if name in model.poses:
            raise ValueError(f"{where}: duplicate image {name!r}")
        model.names.append(name)
        model.poses[name], model.focal[name], model.radial[name] = (q, t), f, r
    if not read_points:
        return model
    where, line = next(lines, (f"{path}:end", "0"))
    if not line.isdecimal():
        raise ValueError(f"{where}: expected the number of points, got {line[:30]!r}")
    xyz, rgb = [], []
    for _ in range(int(line)):
        where, line = next(lines, (f"{path}:end", ""))
        p, c, obs = _parse_point(where, line, len(model.names))
        xyz.append(p)
        rgb.append(c)
        model.observations.append(obs)
    model.points3D = np.array(xyz, np.float64).reshape(-1, 3)
    model.colors = np.array(rgb, np.uint8).reshape(-1, 3)
    return model


@dataclass
class RobotCarSeasons:
    """The dataset at ``root`` with its three cameras."""

    root: Path
    cameras: dict[str, Camera]

    @property
    def image_dir(self) -> Path:
        return self.root / "images"

    def camera(self, name: str) -> Camera:
        return self.cameras[parse_image_name(name)[1]]

    def images(self, condition: str, cameras=CAMERAS) -> list[str]:
        """Sorted image names ``<condition>/<camera>/<timestamp>.jpg`` found on disk."""
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition {condition!r} (known: {CONDITIONS})")
        names = []
        for cam in cameras:
            folder = self.image_dir / condition / cam
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: folder not found")
            for p in sorted(folder.iterdir()):
                name = f"{condition}/{cam}/{p.name}"
                parse_image_name(name, str(p))
                names.append(name)
        return names

    def read_query_list(self, path: str | Path) -> list[str]:
        """Query names from a list file; each must parse and exist under ``images/``."""
        names = read_image_list(path)
        for where, line in numbered_lines(path):
            parse_image_name(line, where)
            if not (self.image_dir / line).is_file():
                raise FileNotFoundError(
                    f"{where}: image {line!r} listed but absent from {self.image_dir}"
                )
        return names

    def query_list(self, names: list[str]) -> dict[str, tuple[str, int, int, np.ndarray]]:
        """Queries with intrinsics, for :func:`s2dloc.datasets.colmap_io.write_query_list`."""
        out = {}
        for n in names:
            cam = self.camera(n)
            out[n] = (cam.model, *IMAGE_SIZE, cam.params.numpy())
        return out

    def pipeline_queries(self, names: list[str]) -> list:
        """:class:`s2dloc.localization.query.Query` objects reading from ``images/``."""
        from s2dloc.localization.query import Query

        return [Query(n, self.camera(n), path=self.image_dir / n) for n in names]

    def reference_model(self, read_points: bool = True) -> NvmModel:
        return read_nvm(self.root / "3D-models" / "all-merged" / "all.nvm", read_points)


def load_robotcar(root: str | Path, pixel_offset: float = 0.5) -> RobotCarSeasons:
    """Check the layout at ``root`` and read the three cameras' intrinsics."""
    root = Path(root)
    for folder in (root / "images", root / "intrinsics"):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    cams = {c: read_intrinsics(root / "intrinsics" / f"{c}_intrinsics.txt", pixel_offset)
            for c in CAMERAS}  # fmt: skip
    logger.info("RobotCar Seasons at %s: conditions %s", root,
                sorted(p.name for p in (root / "images").iterdir() if p.is_dir()))  # fmt: skip
    return RobotCarSeasons(root, cams)
