"""RobotCar Seasons (Sattler et al., CVPR 2018; release on visuallocalization.net).

Layout as distributed::

    <root>/images/<condition>/{left,rear,right}/<timestamp>.jpg
    <root>/intrinsics/{left,rear,right}_intrinsics.txt  # lines ``fx: v``, ``fy:``, ``cx:``, ``cy:``
    <root>/3D-models/all-merged/all.nvm                 # reference model (NVM_V3)

Image names are relative to ``images/``: ``<condition>/<camera>/<timestamp>.jpg``. Images are
1024x1024 and rectified, so cameras are PINHOLE.

Principal point: the dataset README puts ``(0, 0)`` at the top-left corner of the image, which
is COLMAP's convention (top-left pixel centre at (0.5, 0.5)), so ``fx, fy, cx, cy`` are used
unchanged, as hloc does.

The reference model ``all.nvm`` is read by :func:`s2dloc.datasets.nvm.read_nvm` (camera centres
converted to ``t = -R c``, the measurement convention detected). NVM paths name ``.png`` files
(the model was built on PNGs) while the images ship as ``.jpg``: names are mapped to ``.jpg``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2dloc.datasets.cmu import numbered_lines, parse_numbers, read_image_list
from s2dloc.datasets.nvm import NvmModel, read_nvm
from s2dloc.datasets.nvm import parse_nvm_camera_line as parse_nvm_camera_line  # re-exported
from s2dloc.geometry import Camera

logger = logging.getLogger(__name__)

CAMERAS = ("left", "rear", "right")
QUERY_CONDITIONS = (
    "dawn",
    "dusk",
    "night",
    "night-rain",
    "overcast-summer",
    "overcast-winter",
    "rain",
    "snow",
    "sun",
)
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


def read_intrinsics(path: str | Path) -> Camera:
    """A PINHOLE camera from ``<camera>_intrinsics.txt``, values unchanged (see module doc)."""
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
    params = [values["fx"], values["fy"], values["cx"], values["cy"]]
    return Camera.from_colmap("PINHOLE", *IMAGE_SIZE, params)


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

    def reference_model(self, read_points: bool = True) -> NvmModel:
        """The reference model ``3D-models/all-merged/all.nvm`` (its measurement convention
        detected)."""
        path = self.root / "3D-models" / "all-merged" / "all.nvm"
        return read_nvm(path, read_points, size=IMAGE_SIZE)


def load_robotcar(root: str | Path) -> RobotCarSeasons:
    """Check the layout at ``root`` and read the three cameras' intrinsics."""
    root = Path(root)
    for folder in (root / "images", root / "intrinsics"):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    cams = {c: read_intrinsics(root / "intrinsics" / f"{c}_intrinsics.txt") for c in CAMERAS}
    logger.info(
        "RobotCar Seasons at %s: conditions %s",
        root,
        sorted(p.name for p in (root / "images").iterdir() if p.is_dir()),
    )
    return RobotCarSeasons(root, cams)
