"""Extended CMU Seasons (Sattler et al., CVPR 2018; release on visuallocalization.net).

Layout as distributed (one folder per slice, slices 2-25)::

    <root>/intrinsics.txt            # c0, c1: ``name OPENCV W H fx fy cx cy k1 k2 p1 p2``
    <root>/slice<N>/database/        # reference images ``img_<idx>_c<k>_<time>us.jpg``
    <root>/slice<N>/query/           # query images (same naming)
    <root>/slice<N>/sparse/          # COLMAP model of the database images (read by pycolmap)
    <root>/slice<N>/ground-truth-database-images-slice<N>.txt   # ``name qw qx qy qz cx cy cz``
    <root>/slice<N>/camera-poses/*.txt                           # query ground truth, same format
    <root>/slice<N>/test-images-slice<N>.txt                     # query names, one a line

Ground-truth lines hold the world-to-camera rotation and the camera CENTRE ``c``; they are
converted to ``t = -R c`` here (:func:`pose_from_centre`) and nowhere else. Poses are returned as
``{name: (q_wxyz (4,), t (3,))}`` like :func:`s2dloc.datasets.colmap_io.read_poses`.
The published intrinsics put ``(0, 0)`` at the top-left image corner, i.e. COLMAP's convention
(top-left pixel centre at (0.5, 0.5)), so they are used unchanged.
The camera of an image is the ``_c0_`` / ``_c1_`` part of its name.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.colmap_io import parse_camera_fields, parse_numbers
from s2dloc.datasets.colmap_model import read_model
from s2dloc.geometry import Camera, quat_to_matrix
from s2dloc.utils.io import read_text

logger = logging.getLogger(__name__)

SCENES = {"urban": range(2, 9), "suburban": range(9, 18), "park": range(18, 26)}
ALL_SLICES = list(range(2, 26))
_CAMERA_RE = re.compile(r"_(c\d+)_")


# ----------------------------------------------------------------------------- line helpers
def numbered_lines(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``("file:line", stripped line)`` for non-empty lines not starting with ``#``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield f"{path}:{lineno}", line


def unit_quaternion(where: str, q: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    norm = float(np.linalg.norm(q))
    if abs(norm - 1) > tol:
        raise ValueError(f"{where}: quaternion norm {norm:.4g} is not 1")
    return q / norm


def pose_from_centre(q_wxyz: np.ndarray, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, t)`` cam_from_world from a world-to-camera rotation and a camera centre.

    ``t = -R c``.
    """
    R = quat_to_matrix(torch.as_tensor(np.asarray(q_wxyz, np.float64))).numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        t = -R @ np.asarray(centre, np.float64)
    return np.asarray(q_wxyz, np.float64), t


def parse_centre_pose(line: str, where: str = "<line>") -> tuple[str, np.ndarray, np.ndarray]:
    """``name qw qx qy qz cx cy cz`` -> ``(name, q_wxyz, t)`` with ``t = -R c``."""
    f = line.split()
    if len(f) != 8:
        raise ValueError(f"{where}: expected 'name qw qx qy qz cx cy cz', got {len(f)} fields")
    v = parse_numbers(where, f[1:], "pose values")
    q, t = pose_from_centre(unit_quaternion(where, v[:4]), v[4:])
    if not np.isfinite(t).all():
        raise ValueError(f"{where}: camera centre out of range, got {f[5:]}")
    return f[0], q, t


def parse_intrinsics_line(line: str, where: str = "<line>") -> tuple[str, Camera]:
    """``name MODEL W H params...`` (COLMAP model names and parameter order)."""
    name, model, w, h, params = parse_camera_fields(line.split(), where)
    try:
        return name, Camera.from_colmap(model, w, h, params)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def camera_of(name: str, cameras: Iterable[str] = ("c0", "c1"), where: str = "<name>") -> str:
    """The camera id (``c0``/``c1``) in an image name.

    For example ``img_00122_c0_1303398475046031us.jpg`` -> ``c0``.
    """
    m = _CAMERA_RE.search(Path(name).name)
    known = sorted(cameras)
    if m is None or m.group(1) not in known:
        found = m.group(1) if m else None
        raise ValueError(
            f"{where}: unknown camera {found!r} in image name {name!r} (known: {known})"
        )
    return m.group(1)


def parse_slices(spec: str | int | Iterable[int]) -> list[int]:
    """Slices from ``6``, ``"2-6"``, ``"2,4,7-9"``, a scene name (``urban``...) or ``all``/``*``."""
    if isinstance(spec, int):
        parts: list[int] = [spec]
    elif isinstance(spec, str):
        parts = []
        for tok in spec.replace(" ", "").split(","):
            if tok.lower() in SCENES:
                parts += list(SCENES[tok.lower()])
            elif tok.lower() in ("all", "*"):
                parts += ALL_SLICES
            elif re.fullmatch(r"\d+", tok):
                parts.append(int(tok))
            elif re.fullmatch(r"\d+-\d+", tok):
                lo, hi = (int(x) for x in tok.split("-"))
                if not (ALL_SLICES[0] <= lo <= hi <= ALL_SLICES[-1]):
                    raise ValueError(f"slice range {tok!r} is empty or outside 2-25")
                parts += list(range(lo, hi + 1))
            else:
                raise ValueError(f"cannot parse slices {spec!r} (e.g. '2-6', '2,4', 'urban')")
    else:
        parts = [int(s) for s in spec]
    bad = [s for s in parts if s not in ALL_SLICES]
    if bad or not parts:
        raise ValueError(f"slices must be in 2-25, got {spec!r}")
    return sorted(set(parts))


def scene_of(slice_: int) -> str:
    """``urban`` (2-8), ``suburban`` (9-17) or ``park`` (18-25)."""
    for scene, slices in SCENES.items():
        if slice_ in slices:
            return scene
    raise ValueError(f"slice {slice_} is not in 2-25")


# ----------------------------------------------------------------------------- file readers
def read_intrinsics(path: str | Path) -> dict[str, Camera]:
    """``{camera id: Camera}`` from ``intrinsics.txt``."""
    out: dict[str, Camera] = {}
    for where, line in numbered_lines(path):
        name, cam = parse_intrinsics_line(line, where)
        if name in out:
            raise ValueError(f"{where}: duplicate camera {name!r}")
        out[name] = cam
    if not out:
        raise ValueError(f"{path}: no cameras")
    return out


def _check_image(where: str, name: str, cameras, image_dir: Path | None):
    camera_of(name, cameras, where)
    if image_dir is not None and not (image_dir / name).is_file():
        raise FileNotFoundError(f"{where}: image {name!r} listed but absent from {image_dir}")


def read_centre_poses(
    path: str | Path, cameras: Iterable[str] | None = None, image_dir: Path | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (q, t)}`` from ``name qw qx qy qz cx cy cz`` lines (centre -> ``t = -R c``).

    With ``cameras``, every name must carry a known camera; with ``image_dir``, every image
    must exist there.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for where, line in numbered_lines(path):
        name, q, t = parse_centre_pose(line, where)
        if name in out:
            raise ValueError(f"{where}: duplicate image name {name!r}")
        if cameras is not None:
            _check_image(where, name, cameras, image_dir)
        out[name] = (q, t)
    return out


def read_image_list(
    path: str | Path, cameras: Iterable[str] | None = None, image_dir: Path | None = None
) -> list[str]:
    """Image names, one a line (``test-images-slice<N>.txt``).

    Checked like :func:`read_centre_poses`.
    """
    out, seen = [], set()
    for where, line in numbered_lines(path):
        f = line.split()
        if len(f) != 1:
            raise ValueError(f"{where}: expected one image name, got {len(f)} fields")
        if f[0] in seen:
            raise ValueError(f"{where}: duplicate image name {f[0]!r}")
        if cameras is not None:
            _check_image(where, f[0], cameras, image_dir)
        seen.add(f[0])
        out.append(f[0])
    return out


# ----------------------------------------------------------------------------- slices
@dataclass
class CMUSlice:
    """One slice: database images with poses, query names (and their poses where released)."""

    index: int
    path: Path
    cameras: dict[str, Camera]
    db_poses: dict[str, tuple[np.ndarray, np.ndarray]]
    queries: list[str]
    query_poses: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def scene(self) -> str:
        return scene_of(self.index)

    @property
    def database_dir(self) -> Path:
        return self.path / "database"

    @property
    def query_dir(self) -> Path:
        return self.path / "query"

    @property
    def sparse_dir(self) -> Path:
        return self.path / "sparse"

    def camera(self, name: str) -> Camera:
        return self.cameras[camera_of(name, self.cameras)]

    def query_list(self) -> dict[str, tuple[str, int, int, np.ndarray]]:
        """Queries with intrinsics, for :func:`s2dloc.datasets.colmap_io.write_query_list`."""
        out = {}
        for name in self.queries:
            cam = self.camera(name)
            w, h = (int(v) for v in cam.size.tolist())
            out[name] = (cam.model, w, h, cam.params.numpy())
        return out

    def reconstruction(self):
        """The slice's sparse COLMAP model (``pycolmap.Reconstruction``)."""
        if not self.sparse_dir.is_dir():
            raise FileNotFoundError(f"{self.sparse_dir}: sparse model folder not found")
        return read_model(self.sparse_dir)


def load_slice(root: str | Path, slice_: int, check_images: bool = True) -> CMUSlice:
    """Read slice ``slice_`` of the dataset at ``root`` (checks listed images exist if asked)."""
    root = Path(root)
    path = root / f"slice{slice_}"
    for folder in (path, path / "database", path / "query"):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found")
    cameras = read_intrinsics(root / "intrinsics.txt")
    db = read_centre_poses(
        path / f"ground-truth-database-images-slice{slice_}.txt",
        cameras,
        path / "database" if check_images else None,
    )
    queries = read_image_list(
        path / f"test-images-slice{slice_}.txt", cameras, path / "query" if check_images else None
    )
    query_poses: dict = {}
    for gt in sorted((path / "camera-poses").glob("*.txt")):
        for name, pose in read_centre_poses(gt, cameras).items():
            if name in query_poses:
                raise ValueError(f"{gt}: image {name!r} already has a pose in another file")
            query_poses[name] = pose
    logger.info(
        "CMU slice %d (%s): %d database, %d queries, %d query poses",
        slice_,
        scene_of(slice_),
        len(db),
        len(queries),
        len(query_poses),
    )
    return CMUSlice(slice_, path, cameras, db, queries, query_poses)
