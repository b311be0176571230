"""Training pairs with pixel correspondences from CSCD files, the synthetic world, RGB-D
sequences and COLMAP models.

Every dataset returns :meth:`Pair.to_dict`: ``image_a``, ``image_b`` float32 ``(3, H, W)`` in
[0, 1]; ``points_a``, ``points_b`` float32 ``(K, 2)`` in COLMAP pixel coordinates (top-left pixel
centre at (0.5, 0.5)); ``valid`` bool ``(K,)`` (rows past the real correspondences are zero and
invalid); ``name_a``, ``name_b``, ``condition_b`` strings. K is the dataset's ``max_points``, so
:func:`torch.utils.data.default_collate` batches pairs when the images share a size (pass
``resize=(W, H)``). Resizing an image by ``(sx, sy)`` scales its points by exactly ``(sx, sy)``.
Item ``i`` is deterministic for ``(seed, epoch, i)``; call :meth:`set_epoch` to vary it.
"""

from __future__ import annotations

import dataclasses
import glob as globlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import torch

from .correspondences import read_correspondences
from .image_sets import cover_scale, crop_pair, exclude_names, scale_image
from .synthetic.export import dense_correspondences, nearest_database

logger = logging.getLogger(__name__)

Resize = int | tuple[int, int] | None
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclasses.dataclass
class Pair:
    """One training sample; see the module docstring for shapes and conventions."""

    image_a: torch.Tensor
    image_b: torch.Tensor
    points_a: torch.Tensor
    points_b: torch.Tensor
    valid: torch.Tensor
    name_a: str
    name_b: str
    condition_b: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] (grey images are replicated)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def as_float_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1] from uint8 or float input."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0, 1)


def resize_image(image: np.ndarray, resize: Resize) -> tuple[np.ndarray, np.ndarray]:
    """Resize (H, W, 3) to ``resize`` (longer side if int, (W, H) if a pair); return the image
    and the exact scale (sx, sy) = new size / old size, by which COLMAP pixel coordinates scale."""
    h, w = image.shape[:2]
    if resize is None:
        return image, np.ones(2)
    if isinstance(resize, int):
        s = resize / max(w, h)
        size = (max(1, round(w * s)), max(1, round(h * s)))
    else:
        size = (int(resize[0]), int(resize[1]))
    if size == (w, h):
        return image, np.ones(2)
    interp = cv2.INTER_AREA if size[0] < w else cv2.INTER_LINEAR
    out = cv2.resize(image, size, interpolation=interp)
    return out, np.array([size[0] / w, size[1] / h])


class PairDataset(torch.utils.data.Dataset):
    """Base class: subsamples or pads to ``max_points``, resizes, augments, converts.

    Subclasses implement ``__len__`` and ``load(index) -> (img_a, img_b, pts_a (N, 2),
    pts_b (N, 2), name_a, name_b, condition_b)`` with images (H, W, 3) float32 in [0, 1].
    ``augment`` (e.g. :class:`s2dloc.datasets.augment.Augmentation`) is applied to image b, and
    to image a too if ``augment_both``. With ``crop`` (``resize`` = (W, H)) both images keep
    their aspect ratio: resized to cover (W, H) and cropped, a at random and b around a's
    matches (:func:`s2dloc.datasets.image_sets.crop_pair`), instead of stretched.
    """

    def __init__(
        self,
        resize: Resize = None,
        max_points: int = 1024,
        seed: int = 0,
        augment: Augment | None = None,
        augment_both: bool = False,
        crop: bool = False,
    ):
        if max_points <= 0:
            raise ValueError(f"max_points must be positive, got {max_points}")
        if crop and (not isinstance(resize, tuple | list) or len(resize) != 2):
            raise ValueError(f"crop=True needs resize=(W, H), got {resize!r}")
        self.resize, self.max_points, self.seed = resize, int(max_points), int(seed)
        self.crop = crop
        self.augment, self.augment_both = augment, augment_both
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load(self, index: int, rng: np.random.Generator) -> tuple:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"pair {index} out of range for {len(self)} pairs")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        img_a, img_b, pts_a, pts_b, name_a, name_b, cond = self.load(index, rng)
        if self.crop:
            img_a, img_b, pts_a, pts_b = crop_pair(img_a, img_b, pts_a, pts_b, self.resize, rng)
        n = len(pts_a)
        if n > self.max_points:
            sel = np.sort(rng.choice(n, self.max_points, replace=False))
            pts_a, pts_b, n = pts_a[sel], pts_b[sel], self.max_points
        img_a, s_a = resize_image(img_a, self.resize)
        img_b, s_b = resize_image(img_b, self.resize)
        if self.augment is not None:
            if self.augment_both:
                img_a = self.augment(img_a, rng)
            img_b = self.augment(img_b, rng)
        points = np.zeros((2, self.max_points, 2), np.float32)
        points[0, :n] = pts_a * s_a
        points[1, :n] = pts_b * s_b
        valid = torch.zeros(self.max_points, dtype=torch.bool)
        valid[:n] = True
        t = [
            torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1), np.float32))
            for i in (img_a, img_b)
        ]
        p = torch.from_numpy(points)
        return Pair(t[0], t[1], p[0], p[1], valid, name_a, name_b, cond).to_dict()


def resolve_image(image_root: Path, path: str, mat: Path | str = "") -> Path:
    """Find ``path`` (as stored in a CSCD file) under ``image_root``: as given, then with
    leading folders stripped one by one (absolute paths from another machine, ``slice*/...``)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    parts = [p for p in parts if p not in ("/", "")]
    candidates = [Path(path)] if Path(path).is_absolute() else []
    candidates += [image_root.joinpath(*parts[k:]) for k in range(len(parts))]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{mat}: image {path!r} not found under {image_root} (tried {[str(c) for c in candidates]})"
    )


class CSCDPairs(PairDataset):
    """Cross-Season Correspondence Dataset files: ``files`` is a glob relative to ``root``
    (default ``**/*.mat``) or a list of paths; image paths resolve under ``image_root``
    (default ``root``). Image a is ``im_i_path``; ``condition`` is image b's condition, or a
    mapping from ``im_j_path`` to condition."""

    def __init__(
        self,
        root: str | Path,
        files: str | Sequence[str | Path] = "**/*.mat",
        image_root: str | Path | None = None,
        condition: str | Mapping[str, str] = "",
        **kw,
    ):
        super().__init__(**kw)
        self.root = Path(root)
        self.image_root = Path(image_root) if image_root is not None else self.root
        if isinstance(files, str):
            self.files = sorted(
                Path(p) for p in globlib.glob(str(self.root / files), recursive=True)
            )
        else:
            self.files = [self.root / f for f in files]
        if not self.files:
            raise FileNotFoundError(f"no correspondence files {files!r} under {self.root}")
        self.condition = condition
        logger.info("CSCD pairs: %d files under %s", len(self.files), self.root)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index, rng):
        mat = self.files[index]
        c = read_correspondences(mat)
        img_a = load_image(resolve_image(self.image_root, c.im_i_path, mat))
        img_b = load_image(resolve_image(self.image_root, c.im_j_path, mat))
        cond = self.condition
        cond = cond if isinstance(cond, str) else cond.get(c.im_j_path, "")
        return img_a, img_b, c.pt_i, c.pt_j, c.im_i_path, c.im_j_path, cond


class SyntheticPairs(PairDataset):
    """Database (reference) view vs query view under another condition.

    ``world`` is a :class:`~s2dloc.datasets.synthetic.world.World`: each query is paired with
    its ``num_ref`` nearest database views, correspondences from
    :func:`~s2dloc.datasets.synthetic.export.dense_correspondences` (grid ``stride``). Or the
    folder written by :func:`~s2dloc.datasets.synthetic.write.write_world`: its
    ``correspondences/*.mat`` with images under ``images/`` and conditions from ``world.json``.
    """

    def __init__(self, world: Any, num_ref: int = 1, stride: int = 4, **kw):
        super().__init__(**kw)
        self.stride = stride
        if isinstance(world, str | Path):
            root = Path(world)
            if not (root / "world.json").is_file():
                raise FileNotFoundError(f"{root} has no world.json: not a folder from write_world")
            meta = json.loads((root / "world.json").read_text())
            conds = {v["name"]: v["condition"] for v in meta["images"]}
            self.cscd = CSCDPairs(root, "correspondences/*.mat", root / "images", conds, **kw)
            self.world, self.pairs = None, []
        else:
            self.cscd, self.world = None, world
            self.pairs = [
                (world.database[i], q)
                for q in world.queries
                for i in nearest_database(world, q, num_ref)
            ]

    def __len__(self) -> int:
        return len(self.cscd) if self.cscd is not None else len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.cscd is not None:
            self.cscd.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.cscd is not None:
            return self.cscd[index]
        return super().__getitem__(index)

    def load(self, index, rng):
        ref, q = self.pairs[index]
        seed = int(rng.integers(2**31))
        c = dense_correspondences(ref, q, self.stride, seed, len(self.world.scene.primitives))
        return ref.rgb, q.rgb, c.pt_i, c.pt_j, ref.name, q.name, q.condition


def rgbd_correspondences(
    frame_a: Any, frame_b: Any, pixels: np.ndarray, rel_tol: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Lift pixel indices (N, 2) (u, v) of ``frame_a`` with its depth to 3D, project into
    ``frame_b`` and keep those inside the image whose z agrees with ``frame_b``'s depth at the
    pixel they fall in (relative ``rel_tol``; occlusion check). Frames have ``depth`` (H, W)
    metres (0 = none), ``camera`` and ``cam_from_world``. Returns points_a, points_b (M, 2)."""
    pixels = np.asarray(pixels, np.int64).reshape(-1, 2)
    z_a = np.asarray(frame_a.depth, np.float64)[pixels[:, 1], pixels[:, 0]]
    pixels = pixels[z_a > 0]
    p_a = torch.from_numpy(pixels + 0.5)
    X_a = frame_a.camera.double().unproject(p_a, torch.from_numpy(z_a[z_a > 0]))
    T_b_from_a = frame_b.cam_from_world.double() @ frame_a.cam_from_world.double().inv()
    X_b = T_b_from_a.transform(X_a)
    p_b, valid = frame_b.camera.double().project(X_b)
    depth_b = np.asarray(frame_b.depth, np.float64)
    h, w = depth_b.shape
    p_b, valid, z_b = p_b.numpy(), valid.numpy(), X_b[:, 2].numpy()
    u = np.clip(np.floor(np.nan_to_num(p_b[:, 0])).astype(np.int64), 0, w - 1)
    v = np.clip(np.floor(np.nan_to_num(p_b[:, 1])).astype(np.int64), 0, h - 1)
    d = depth_b[v, u]
    valid &= (d > 0) & (np.abs(d - z_b) <= rel_tol * z_b)
    return p_a.numpy()[valid], p_b[valid]


class RGBDPairs(PairDataset):
    """Pairs of RGB-D frames with poses (e.g. ``FountainDataset`` or synthetic ``View`` s).

    Frames have ``image`` (uint8 or float) or ``rgb``, ``depth``, ``camera``, ``cam_from_world``
    and ``name``. ``pairs`` lists (i, j); default: every i with i + 1 .. i + ``max_gap``.
    ``num_samples`` pixels of a with valid depth are drawn per item (default 4 * max_points).
    """

    def __init__(
        self,
        frames: Sequence[Any],
        pairs: Sequence[tuple[int, int]] | None = None,
        max_gap: int = 1,
        rel_tol: float = 0.03,
        num_samples: int | None = None,
        condition: str = "",
        **kw,
    ):
        super().__init__(**kw)
        self.frames, self.rel_tol, self.condition = frames, rel_tol, condition
        n = len(frames)
        if pairs is None:
            pairs = [(i, j) for i in range(n) for j in range(i + 1, min(n, i + max_gap + 1))]
        self.pairs = [(int(i), int(j)) for i, j in pairs]
        if any(not (0 <= i < n and 0 <= j < n) for i, j in self.pairs):
            raise ValueError(f"pair indices out of range for {n} frames")
        self.num_samples = num_samples or 4 * self.max_points

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index, rng):
        i, j = self.pairs[index]
        fa, fb = self.frames[i], self.frames[j]
        v, u = np.nonzero(np.asarray(fa.depth) > 0)
        sel = rng.choice(len(u), min(len(u), self.num_samples), replace=False)
        pts_a, pts_b = rgbd_correspondences(fa, fb, np.stack([u[sel], v[sel]], 1), self.rel_tol)
        img = [as_float_rgb(f.image if hasattr(f, "image") else f.rgb) for f in (fa, fb)]
        return img[0], img[1], pts_a, pts_b, fa.name, fb.name, self.condition


class ColmapPairs(PairDataset):
    """Pairs of images of a COLMAP model that share at least ``min_shared`` 3D points; the
    correspondences are the two observations of each shared point (first one per image).

    ``model`` is a ``pycolmap.Reconstruction`` or a model folder; images under ``image_root``.
    Images whose names match an ``exclude`` pattern (``fnmatch``; held-out images) are left out
    of every pair.
    """

    def __init__(
        self,
        model: Any,
        image_root: str | Path,
        min_shared: int = 20,
        condition: str = "",
        exclude: Sequence[str] = (),
        **kw,
    ):
        super().__init__(**kw)
        import pycolmap

        if isinstance(model, str | Path):
            if not Path(model).is_dir():
                raise FileNotFoundError(f"COLMAP model folder {model} does not exist")
            model = pycolmap.Reconstruction(str(model))
        self.image_root, self.condition = Path(image_root), condition
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.obs: dict[int, tuple[str, np.ndarray, np.ndarray]] = {}
        names = sorted(image.name for image in model.images.values())
        kept = set(exclude_names(names, exclude, f"COLMAP model of {image_root}"))
        for image_id, image in model.images.items():
            if image.name not in kept:
                continue
            ids, xy, seen = [], [], set()
            for p in image.points2D:
                if p.has_point3D() and p.point3D_id not in seen:
                    seen.add(p.point3D_id)
                    ids.append(p.point3D_id)
                    xy.append(np.asarray(p.xy, np.float64))
            order = np.argsort(ids, kind="stable")
            self.obs[image_id] = (
                image.name,
                np.asarray(ids, np.int64)[order],
                np.asarray(xy, np.float64).reshape(-1, 2)[order],
            )
        keys = sorted(self.obs)
        self.pairs = []
        for k, a in enumerate(keys):
            for b in keys[k + 1 :]:
                shared = len(np.intersect1d(self.obs[a][1], self.obs[b][1], assume_unique=True))
                if shared >= min_shared:
                    self.pairs.append((a, b))
        logger.info(
            "COLMAP pairs: %d of %d images, >= %d shared points",
            len(self.pairs),
            len(keys),
            min_shared,
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index, rng):
        (name_a, ids_a, xy_a), (name_b, ids_b, xy_b) = (self.obs[i] for i in self.pairs[index])
        _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
        (img_a, s_a), (img_b, s_b) = self._image(name_a), self._image(name_b)
        return img_a, img_b, xy_a[ia] * s_a, xy_b[ib] * s_b, name_a, name_b, self.condition

    def _image(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The image and the scale (sx, sy) of its points; with ``crop``, resized once to cover
        the crop size and kept in memory (decoding full-size photos dominates otherwise)."""
        if name in self._cache:
            return self._cache[name]
        path = self.image_root / name
        if not path.is_file():
            raise FileNotFoundError(f"COLMAP image {name!r} not found under {self.image_root}")
        out = load_image(path), np.ones(2)
        if self.crop:
            out = scale_image(out[0], cover_scale(out[0].shape, self.resize))
            self._cache[name] = out
        return out
