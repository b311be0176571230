"""Loader for the Fountain RGB-D keyframes (Zhou & Koltun 2014, as distributed by Open3D).

Folder layout (see ``../shared/data/fountain_rgbd/README.txt``)::

    image/<frame>-<timestamp>.jpg   colour, 640x480
    depth/<frame>-<timestamp>.png   uint16 depth in millimetres, 0 = invalid, registered to colour
    scene/key.log                   Redwood/Open3D trajectory: "i i i+1" + a 4x4 CAMERA-TO-WORLD

Conventions on output (``../shared/CONVENTIONS.md``): poses are ``cam_from_world``, converted
here from the file's camera-to-world matrices; pixel centres are at ``+0.5`` (COLMAP).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from s2dloc.geometry import Camera, Pose
from s2dloc.utils.io import read_text

logger = logging.getLogger(__name__)

# PrimeSense defaults used by Open3D for this data (pixel centres at integer coordinates).
PRIMESENSE_OPEN3D = {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5}
DEPTH_SCALE = 1000.0  # depth PNG units per metre


@dataclass
class FountainFrame:
    """One RGB-D keyframe.

    Attributes:
        name: image file name (e.g. ``0000010-000001228920.jpg``).
        image: ``(H, W, 3)`` uint8 RGB.
        depth: ``(H, W)`` float32 metres, 0 where invalid.
        camera: unbatched PINHOLE camera (COLMAP pixel convention).
        cam_from_world: unbatched float64 pose.
    """

    name: str
    image: np.ndarray
    depth: np.ndarray
    camera: Camera
    cam_from_world: Pose


def primesense_camera(width: int = 640, height: int = 480) -> Camera:
    """The PrimeSense PINHOLE camera in s2dloc's pixel convention.

    Open3D gives ``cx, cy = 319.5, 239.5`` with pixel centres at integer coordinates; s2dloc
    (like COLMAP) puts the top-left pixel centre at ``(0.5, 0.5)``, so ``cx, cy`` get ``+0.5``:
    ``(320.0, 240.0)`` for 640x480.
    """
    k = PRIMESENSE_OPEN3D
    sx, sy = width / 640.0, height / 480.0
    params = [k["fx"] * sx, k["fy"] * sy, (k["cx"] + 0.5) * sx, (k["cy"] + 0.5) * sy]
    return Camera.from_colmap("PINHOLE", width, height, params)


def read_trajectory_log(path: str | Path) -> list[Pose]:
    """Read a Redwood ``.log`` trajectory (camera-to-world 4x4) as ``cam_from_world`` poses.

    Each entry is a metadata line of three integers followed by four rows of four numbers; CRLF
    and blank lines are tolerated. Raises ``ValueError`` naming the file and line when malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Trajectory file not found: {path}")
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(read_text(path).splitlines())]
    lines = [(i, ln) for i, ln in lines if ln]
    poses = []
    for k in range(0, len(lines), 5):
        block = lines[k : k + 5]
        lineno, meta = block[0]
        if len(meta.split()) != 3 or not all(re.fullmatch(r"-?\d+", x) for x in meta.split()):
            raise ValueError(f"{path}:{lineno}: expected a metadata line 'id id id', got {meta!r}")
        if len(block) < 5:
            raise ValueError(f"{path}:{lineno}: entry truncated, expected 4 matrix rows after it")
        rows = []
        for lineno, text in block[1:]:
            try:
                row = [float(x) for x in text.split()]
            except ValueError:
                row = []
            if len(row) != 4 or not np.isfinite(row).all():
                raise ValueError(f"{path}:{lineno}: expected 4 finite numbers, got {text!r}")
            rows.append(row)
        poses.append(_cam_from_world(np.array(rows), f"{path}:{block[1][0]}"))
    return poses


def _cam_from_world(world_from_cam: np.ndarray, where: str) -> Pose:
    """Invert a camera-to-world 4x4 into a ``cam_from_world`` pose (rotation re-orthonormalized)."""
    if not np.allclose(world_from_cam[3], [0, 0, 0, 1], atol=1e-6):
        raise ValueError(f"{where}: last matrix row must be 0 0 0 1, got {world_from_cam[3]}")
    R = world_from_cam[:3, :3]
    U, _, Vt = np.linalg.svd(R)
    R_ortho = U @ Vt
    if np.linalg.det(R_ortho) < 0 or np.abs(R - R_ortho).max() > 1e-3:
        raise ValueError(f"{where}: the 3x3 block is not a rotation matrix")
    world_from_cam_pose = Pose.from_Rt(R_ortho, world_from_cam[:3, 3])
    return world_from_cam_pose.inv()


def _sorted_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"Missing folder: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in suffixes]

    def key(p: Path):  # numeric frame prefix first, then the full name
        m = re.match(r"\d+", p.name)
        return (int(m.group()) if m else -1, p.name)

    return sorted(files, key=key)


class FountainDataset:
    """The Fountain keyframes: ``len(ds)`` frames, ``ds[i]`` -> :class:`FountainFrame`.

    Colour and depth are paired by sorted file name (frame number); poses come from
    ``scene/key.log`` in file order. Counts must agree, else ``ValueError``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"Missing Fountain RGB-D folder: {self.root}")
        self.images = _sorted_files(self.root / "image", (".jpg", ".jpeg", ".png"))
        self.depths = _sorted_files(self.root / "depth", (".png",))
        self.poses = read_trajectory_log(self.root / "scene" / "key.log")
        counts = (len(self.images), len(self.depths), len(self.poses))
        if len(set(counts)) != 1 or counts[0] == 0:
            raise ValueError(
                f"{self.root}: mismatched counts: {counts[0]} images in image/, {counts[1]} "
                f"depth maps in depth/, {counts[2]} poses in scene/key.log"
            )
        logger.debug("Fountain RGB-D: %d frames in %s", counts[0], self.root)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> FountainFrame:
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range for {len(self)} frames")
        image = cv2.imread(str(self.images[i]), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"Cannot read image {self.images[i]}")
        raw = cv2.imread(str(self.depths[i]), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
            desc = "unreadable" if raw is None else f"{raw.dtype} {raw.shape}"
            raise ValueError(f"{self.depths[i]}: expected a uint16 depth PNG, got {desc}")
        if raw.shape != image.shape[:2]:
            raise ValueError(
                f"{self.depths[i]}: depth size {raw.shape} != image size "
                f"{image.shape[:2]} of {self.images[i].name}"
            )
        height, width = raw.shape
        return FountainFrame(
            name=self.images[i].name,
            image=cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
            depth=raw.astype(np.float32) / DEPTH_SCALE,
            camera=primesense_camera(width, height),
            cam_from_world=self.poses[i],
        )
