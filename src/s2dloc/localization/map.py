"""The localization map: posed reference images, their 2D observations of 3D points.

One structure (:class:`Map`) flows through the pipeline. It is built from a COLMAP model
(``Map.from_colmap``; a synthetic world folder is such a model plus its images) or from posed
RGB-D frames (``Map.from_rgbd``). Poses are ``cam_from_world``; pixels follow COLMAP (the centre
of the top-left pixel is at ``(0.5, 0.5)``).

Every reference camera must pass :func:`s2dloc.geometry.camera_checks.check_camera`, and a
reference image whose size differs from its camera's is refused when it is read (never rescaled:
its observations and features would be sampled at the wrong pixels).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from s2dloc.datasets.colmap_model import read_model
from s2dloc.geometry import Camera, Pose
from s2dloc.geometry.camera_checks import check_camera

logger = logging.getLogger(__name__)
_DIGEST_SPAN = 1 << 14  # bytes read at each end of an image file for its digest


@dataclass
class RefImage:
    """One reference image.

    Attributes:
        name: image name (relative to the map's image root), the key of every cache.
        camera: unbatched camera; cam_from_world: unbatched float64 pose.
        point3D_ids: ``(M,)`` int64 ids of the observed 3D points.
        keypoints: ``(M, 2)`` float64 pixel observations of those points.
    """

    name: str
    camera: Camera
    cam_from_world: Pose
    point3D_ids: np.ndarray
    keypoints: np.ndarray


@dataclass
class Map:
    """Reference images and 3D points (``points3D (P, 3)`` float64 with ids ``point_ids (P,)``)."""

    images: list[RefImage]
    point_ids: np.ndarray
    points3D: np.ndarray
    image_root: Path | None = None
    image_data: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.point_ids = np.asarray(self.point_ids, np.int64)
        self.points3D = np.asarray(self.points3D, np.float64).reshape(-1, 3)
        # 3D points found by binary search over the sorted ids (_search)
        self._order = np.argsort(self.point_ids, kind="stable")
        self._sorted_ids = self.point_ids[self._order]
        self._by_name = {im.name: im for im in self.images}
        self._digests: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ access
    @property
    def names(self) -> list[str]:
        return [im.name for im in self.images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, name: str) -> RefImage:
        if name not in self._by_name:
            raise KeyError(f"image {name!r} is not in the map")
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def _search(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of 3D point ids ``(M,)`` among the sorted ids (binary search) and whether
        each id is in the map ``(M,)``."""
        pos = np.searchsorted(self._sorted_ids, ids)
        found = pos < len(self._sorted_ids)
        found[found] = self._sorted_ids[pos[found]] == ids[found]
        return pos, found

    def xyz(self, ids: np.ndarray) -> np.ndarray:
        """World points ``(M, 3)`` of 3D point ids ``(M,)`` (KeyError naming an unknown id)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        pos, found = self._search(ids)
        if not found.all():
            raise KeyError(f"3D point id {int(ids[~found][0])} is not in the map")
        return self.points3D[self._order[pos]].reshape(-1, 3)

    def image_digest(self, name: str) -> np.ndarray:
        """``(16,)`` uint8 digest of the source of image ``name``: its bytes in memory, or its
        file's size, first and last 16 KiB (cheap on large maps), so that a cache entry made
        from another image under the same name is recognised. Computed once per map."""
        if name not in self._digests:
            self._digests[name] = self._digest(name)
        return self._digests[name]

    def _digest(self, name: str) -> np.ndarray:
        h = hashlib.blake2b(digest_size=16)
        if name in self.image_data:
            a = np.ascontiguousarray(self.image_data[name])
            h.update(f"{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        elif self.image_root is not None and (self.image_root / name).is_file():
            path = self.image_root / name
            size = path.stat().st_size
            with open(path, "rb") as f:
                h.update(f"{size}:".encode() + f.read(_DIGEST_SPAN))
                f.seek(max(size - _DIGEST_SPAN, 0))
                h.update(f.read(_DIGEST_SPAN))
        return np.frombuffer(h.digest(), np.uint8).copy()

    def load_image(self, name: str) -> np.ndarray:
        """The ``(H, W, 3)`` uint8 RGB image ``name`` (in memory or under ``image_root``);
        raises ``ValueError`` naming it if its size is not its camera's."""
        if name in self.image_data:
            image, where = self.image_data[name], f"reference image {name!r} (in memory)"
        elif self.image_root is None:
            raise ValueError(f"map has no image root to read {name!r} from")
        else:
            path = self.image_root / name
            image, where = read_rgb(path), f"reference image {path}"
        w, h = (int(round(v)) for v in self[name].camera.size.tolist())
        if image.shape[:2] != (h, w):
            raise ValueError(
                f"{where} is {image.shape[1]}x{image.shape[0]} but its camera is "
                f"{w}x{h}: resize the image or fix the camera in the model"
            )
        return image

    # ------------------------------------------------------------------ checks
    def validate(self, check_images: bool = True) -> Map:
        """Raise ``ValueError`` on an empty map, NaN poses/points, dangling ids, missing images."""
        if not self.images:
            raise ValueError("map has no reference images")
        if len(self.points3D) == 0 or not any(len(im.point3D_ids) for im in self.images):
            raise ValueError("map has no 3D points with observations")
        if not np.isfinite(self.points3D).all():
            raise ValueError(
                f"map has {int((~np.isfinite(self.points3D)).any(1).sum())} non-finite 3D points"
            )
        if len(self._by_name) != len(self.images):
            raise ValueError("map has duplicate image names")
        repeated = self._sorted_ids[1:][self._sorted_ids[1:] == self._sorted_ids[:-1]]
        if len(repeated):
            raise ValueError(f"map has duplicate 3D point ids {np.unique(repeated)[:5].tolist()}")
        for im in self.images:
            T = im.cam_from_world
            if not (torch.isfinite(T.R).all() and torch.isfinite(T.t).all()):
                raise ValueError(f"reference image {im.name!r} has a non-finite pose")
            if len(im.point3D_ids) != len(im.keypoints) or not np.isfinite(im.keypoints).all():
                raise ValueError(f"reference image {im.name!r} has malformed observations")
            ids = np.asarray(im.point3D_ids, np.int64)
            unknown = ids[~self._search(ids)[1]]
            if len(unknown):
                raise ValueError(f"{im.name!r} observes unknown 3D points {unknown[:5].tolist()}")
            check_camera(im.camera, f"camera of reference image {im.name!r}")
        if check_images:
            missing = [
                n
                for n in self.names
                if n not in self.image_data
                and (self.image_root is None or not (self.image_root / n).is_file())
            ]
            if missing:
                raise ValueError(
                    f"{len(missing)} reference images not found under "
                    f"{self.image_root}: {missing[:3]}"
                )
        return self

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_colmap(cls, model, image_root: str | Path | None = None, validate: bool = True) -> Map:
        """From a ``pycolmap.Reconstruction`` or a model folder, images under ``image_root``."""
        import pycolmap

        if not isinstance(model, pycolmap.Reconstruction):
            model = read_model(model)  # checks the files first; errors name the file
        images = []
        for image_id in sorted(model.images):
            image = model.images[image_id]
            if not image.has_pose:
                continue
            obs = [(p.point3D_id, p.xy) for p in image.points2D if p.has_point3D()]
            ids = np.array([o[0] for o in obs], np.int64)
            xy = np.array([o[1] for o in obs], np.float64).reshape(-1, 2)
            camera = Camera.from_colmap(model.cameras[image.camera_id])
            pose = Pose.from_colmap(image.cam_from_world())
            images.append(RefImage(image.name, camera, pose, ids, xy))
        ids = np.array(sorted(model.points3D), np.int64)
        xyz = np.array([model.points3D[i].xyz for i in ids], np.float64).reshape(-1, 3)
        root = None if image_root is None else Path(image_root)
        out = cls(images, ids, xyz, root)
        logger.info(
            "map: %d images, %d points, %d observations",
            len(images),
            len(ids),
            sum(len(im.point3D_ids) for im in images),
        )
        return out.validate(check_images=root is not None) if validate else out

    @classmethod
    def load(cls, path: str | Path, image_root: str | Path | None = None) -> Map:
        """From a folder: ``sfm/`` + ``images/`` (synthetic world, hloc outputs) or a bare model."""
        path = Path(path)
        if (path / "sfm").is_dir():
            return cls.from_colmap(path / "sfm", image_root or path / "images")
        return cls.from_colmap(path, image_root)

    @classmethod
    def from_rgbd(
        cls, frames: Sequence, stride: int = 8, min_depth: float = 1e-3, max_points: int = 2000
    ) -> Map:
        """From posed RGB-D frames (``name, image (H,W,3) uint8, depth (H,W) m, camera,
        cam_from_world`` attributes, e.g. ``FountainFrame``): pixels on a grid with valid depth,
        lifted to world points (one observation each)."""
        images, all_ids, all_xyz, data, next_id = [], [], [], {}, 0
        for frame in frames:
            depth = np.asarray(frame.depth, np.float64)
            h, w = depth.shape
            v, u = np.mgrid[stride // 2 : h : stride, stride // 2 : w : stride]
            u, v = u.ravel(), v.ravel()
            keep = np.isfinite(depth[v, u]) & (depth[v, u] > min_depth)
            u, v = u[keep][:max_points], v[keep][:max_points]
            pix = np.stack([u + 0.5, v + 0.5], -1)
            z = torch.from_numpy(depth[v, u])
            X_cam = frame.camera.double().unproject(torch.from_numpy(pix)[None], z[None])[0]
            xyz = frame.cam_from_world.double().inv().transform(X_cam).numpy()
            ids = np.arange(next_id, next_id + len(pix), dtype=np.int64)
            next_id += len(pix)
            images.append(
                RefImage(frame.name, frame.camera, frame.cam_from_world.double(), ids, pix)
            )
            all_ids.append(ids)
            all_xyz.append(xyz)
            data[frame.name] = np.asarray(frame.image)
        if not images:
            raise ValueError("from_rgbd needs at least one frame")
        return cls(images, np.concatenate(all_ids), np.concatenate(all_xyz), None, data).validate()

    def to_colmap(self):
        """As a ``pycolmap.Reconstruction`` (one camera per image)."""
        import pycolmap

        rec = pycolmap.Reconstruction()
        point_obs: dict[int, list[tuple[int, int]]] = {}
        for k, im in enumerate(self.images, start=1):
            cam = im.camera.to_colmap()
            cam.camera_id = k
            rec.add_camera_with_trivial_rig(cam)
            image = pycolmap.Image(name=im.name, keypoints=im.keypoints, camera_id=k, image_id=k)
            rec.add_image_with_trivial_frame(image, im.cam_from_world.to_colmap())
            for j, pid in enumerate(im.point3D_ids.tolist()):
                point_obs.setdefault(pid, []).append((k, j))
        for pid, xyz in zip(self.point_ids.tolist(), self.points3D):
            track = pycolmap.Track()
            for image_id, j in point_obs.get(pid, []):
                track.add_element(image_id, j)
            rec.add_point3D(xyz, track, np.zeros(3, np.uint8))
        return rec


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB (clear error if unreadable)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])
