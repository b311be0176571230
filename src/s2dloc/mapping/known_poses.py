"""Maps from known poses: SIFT features, matching and triangulation with the poses and intrinsics
of a COLMAP model (e.g. from GPS/INS or a LIDAR registration) held fixed.

The output folder has the layout of :func:`s2dloc.mapping.build_map` (``database.db``, ``sfm/``,
``images`` link, ``config.json``, ``summary.json``), plus ``pairs.txt`` with ``matching="poses"``.
``sfm/`` holds the selected images with their given poses and cameras (unchanged, bit for bit)
and the triangulated points; every image gets its own trivial rig and frame. Matches are
verified with essential matrices (the cameras are known); as in COLMAP and hloc, features seen
in only two images are not triangulated.

Input checks: a selected image of the model without an image file, or a camera whose size
differs from its image's, is an error naming the image. Image files without a pose in the model
(e.g. query images in the same folder) are skipped with a warning naming them; naming such an
image in ``image_names`` is an error.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pycolmap

from s2dloc.utils.config import (
    Check,
    check_fields,
    check_settings,
    from_settings,
    in_range,
    settings_of,
)

from .images import check_sizes, list_images
from .map_folder import finish_map, prepare_out
from .pose_pairs import pairs_from_poses, write_pairs
from .sfm import read_model, seeded_verification

logger = logging.getLogger(__name__)

MATCHING = ("exhaustive", "poses")


@dataclasses.dataclass
class KnownPosesConfig:
    """Settings of :func:`triangulate_known_poses` beyond its arguments.

    ``num_neighbors`` and ``max_angle_deg`` select pairs for ``matching="poses"`` (see
    :func:`pairs_from_poses`). ``seed`` seeds the RANSAC of the two-view verification and of
    the triangulation, so that the same inputs give the same map (-1: COLMAP's random seeds).
    """

    max_size: int = 1600
    max_features: int = 8192
    num_neighbors: int = 10
    max_angle_deg: float = 75.0
    num_threads: int = -1
    seed: int = 0

    def __post_init__(self):
        check_fields(self, CHECKS)


# Checks of the settings (see :func:`s2dloc.utils.config.merge`).
CHECKS: dict[str, Check] = {
    "max_size": in_range(1),
    "max_features": in_range(1),
    "num_neighbors": in_range(1),
    "max_angle_deg": in_range(0, 180, lo_open=True),
    "num_threads": in_range(-1),
    "seed": in_range(-1),
}


def known_poses_config(overrides: Mapping[str, Any] | None = None) -> KnownPosesConfig:
    """:class:`KnownPosesConfig` of the defaults updated with ``overrides``, checked strictly
    (:class:`s2dloc.utils.config.ConfigError`)."""
    return from_settings(KnownPosesConfig, overrides, checks=CHECKS)


def select_images(rec, images: Path, image_names: list[str] | None) -> list[str]:
    """Names of the images to map: ``image_names`` or every image file with a pose in ``rec``.

    Raises if a selected name has no pose in the model or no file under ``images``.
    """
    files = set(list_images(images))
    posed = {im.name for im in rec.images.values() if im.has_pose}
    if image_names is not None:
        unposed = [n for n in image_names if n not in posed]
        if unposed:
            raise ValueError(
                f"{len(unposed)} selected images have no pose in the model: {unposed[:3]}"
            )
        names = list(dict.fromkeys(image_names))
    else:
        skipped = sorted(files - posed)
        if skipped:
            logger.warning(
                "%d image files have no pose in the model and are left out: %s",
                len(skipped),
                skipped[:5],
            )
        names = sorted(posed)
    missing = [n for n in names if n not in files]
    if missing:
        raise ValueError(
            f"{len(missing)} images of the model are not under {images}: {missing[:3]}"
        )
    if len(names) < 2:
        raise ValueError(f"a map needs at least 2 posed images, got {len(names)}")
    return names


def subset_model(rec, names: list[str]):
    """A new ``pycolmap.Reconstruction`` with only the images ``names`` (same image and camera
    ids, cameras and poses), each with a trivial rig and frame, and no points. The cameras are
    marked as calibrated (``has_prior_focal_length``)."""
    sub = pycolmap.Reconstruction()
    for name in names:
        image = rec.find_image_with_name(name)
        if not sub.exists_camera(image.camera_id):
            camera = pycolmap.Camera(rec.cameras[image.camera_id].todict())
            camera.has_prior_focal_length = True  # known: verify matches with essential matrices
            sub.add_camera_with_trivial_rig(camera)
        new = pycolmap.Image(name=name, camera_id=image.camera_id, image_id=image.image_id)
        sub.add_image_with_trivial_frame(new, image.cam_from_world())
    return sub


def _init_database(db_path: Path, rec) -> None:
    """Write the model's rigs, cameras, frames and images (same ids) to a new database; check an
    existing one holds the same images."""
    exists = db_path.exists()
    db = pycolmap.Database.open(db_path)
    try:
        if exists:
            have = {im.image_id: im.name for im in db.read_all_images()}
            want = {im.image_id: im.name for im in rec.images.values()}
            if have != want:
                raise ValueError(f"{db_path} holds other images than the model; use overwrite")
            return
        for rig in rec.rigs.values():
            db.write_rig(rig, use_rig_id=True)
        for camera in rec.cameras.values():
            db.write_camera(camera, use_camera_id=True)
        for frame in rec.frames.values():
            db.write_frame(frame, use_frame_id=True)
        for image in rec.images.values():
            db.write_image(image, use_image_id=True)
    finally:
        db.close()


def _pose_pairs(rec, conf: KnownPosesConfig) -> list[tuple[str, str]]:
    images = sorted(rec.images.values(), key=lambda im: im.name)
    bad = [im.name for im in images if any(c.isspace() for c in im.name)]
    if bad:
        raise ValueError(f"image names with spaces cannot be written to a pairs file: {bad[:3]}")
    centers = np.array([im.projection_center() for im in images])
    directions = np.array([im.viewing_direction() for im in images])
    return pairs_from_poses(
        centers, directions, [im.name for im in images], conf.num_neighbors, conf.max_angle_deg
    )


def _match(db_path: Path, rec, matching: str, conf: KnownPosesConfig, out: Path) -> int:
    """Match features; returns the number of pairs tried."""
    options = pycolmap.FeatureMatchingOptions()
    options.num_threads = conf.num_threads
    verify = seeded_verification(conf.seed)
    if matching == "exhaustive":
        pycolmap.match_exhaustive(db_path, matching_options=options, verification_options=verify)
        n = rec.num_images()
        return n * (n - 1) // 2
    pairs = _pose_pairs(rec, conf)
    pairing = pycolmap.ImportedPairingOptions()
    pairing.match_list_path = write_pairs(pairs, out / "pairs.txt")
    pycolmap.match_image_pairs(
        db_path, matching_options=options, pairing_options=pairing, verification_options=verify
    )
    return len(pairs)


def _settings(images: Path, model: Path, names: list[str], matching: str, conf) -> dict:
    digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]
    model_files = sorted(
        p for p in model.iterdir() if p.name.split(".")[0] in ("cameras", "images")
    )
    model_digest = hashlib.sha1(b"".join(p.read_bytes() for p in model_files)).hexdigest()[:16]
    settings = {k: v for k, v in settings_of(conf).items() if k != "num_threads"}
    return {
        "images": str(images.resolve()),
        "known_poses": str(model.resolve()),
        "model_sha1": model_digest,
        "image_names_sha1": digest,
        "num_images": len(names),
        "matching": matching,
        **settings,
    }


def _extract(db_path: Path, images: Path, names: list[str], conf: KnownPosesConfig) -> None:
    extract = pycolmap.FeatureExtractionOptions()
    extract.max_image_size = conf.max_size
    extract.num_threads = conf.num_threads
    extract.sift.max_num_features = conf.max_features
    pycolmap.extract_features(db_path, images, image_names=names, extraction_options=extract)


def check_known_poses_folder(
    images: Path,
    model: Path,
    out: Path,
    *,
    image_names: list[str] | None = None,
    matching: str = "exhaustive",
    conf: KnownPosesConfig | None = None,
) -> None:
    """Refuse (:class:`~s2dloc.utils.config.ConfigError` naming the changed keys) a map in
    ``out`` that :func:`triangulate_known_poses` built with other arguments than these; a
    folder without its ``config.json`` is not checked. Writes nothing."""
    images, model, out = Path(images), Path(model), Path(out)
    if not (out / "config.json").exists():
        return
    names = select_images(read_model(model), images, image_names)
    settings = _settings(images, model, names, matching, conf or KnownPosesConfig())
    hint = f"{out} holds a map built with other settings; delete it or use another folder"
    check_settings(out / "config.json", settings, hint=hint)


def triangulate_known_poses(
    images: Path,
    model: Path,
    out: Path,
    *,
    image_names: list[str] | None = None,
    matching: str = "exhaustive",
    overwrite: bool = False,
    progress: bool = True,
    conf: KnownPosesConfig | None = None,
) -> pycolmap.Reconstruction:
    """Triangulate a map of the images under ``images`` with the poses and intrinsics of the
    COLMAP ``model`` (text or binary) held fixed; writes ``out/sfm`` and ``out/summary.json``.

    Args:
        image_names: map only these images of the model (default: all image files with a pose).
        matching: ``"exhaustive"`` (all pairs) or ``"poses"`` (nearest cameras looking the same
            way, for large sets).
        overwrite: start again; otherwise features and matches in ``out/database.db`` are reused.
        progress: log each stage at INFO (else DEBUG) and let pycolmap log its progress.
    Returns:
        The triangulated ``pycolmap.Reconstruction`` (as written to ``out/sfm``).
    """
    conf = conf or KnownPosesConfig()
    check_fields(conf, CHECKS)  # also after changes to the fields
    if matching not in MATCHING:
        raise ValueError(f"unknown matching {matching!r}; choose from {', '.join(MATCHING)}")
    images, model, out = Path(images), Path(model), Path(out)
    full = read_model(model)
    if not images.is_dir():
        raise FileNotFoundError(f"image folder {images} does not exist")
    names = select_images(full, images, image_names)
    check_sizes(full, images, names)
    rec = subset_model(full, names)
    prepare_out(out, _settings(images, model, names, matching, conf), overwrite)
    level = logging.INFO if progress else logging.DEBUG
    old_level = pycolmap.logging.minloglevel
    if not progress:
        pycolmap.logging.minloglevel = 2  # warnings and errors only
    try:
        return _run(rec, images, out, names, matching, conf, level)
    finally:
        pycolmap.logging.minloglevel = old_level


def _run(rec, images: Path, out: Path, names, matching, conf, level) -> pycolmap.Reconstruction:
    db_path, timings = out / "database.db", {}
    _init_database(db_path, rec)
    t = time.perf_counter()
    logger.log(level, "extracting SIFT features of %d images", len(names))
    _extract(db_path, images, names, conf)
    timings["extract_s"] = time.perf_counter() - t
    t = time.perf_counter()
    logger.log(level, "matching (%s)", matching)
    num_pairs = _match(db_path, rec, matching, conf, out)
    timings["match_s"] = time.perf_counter() - t
    t = time.perf_counter()
    logger.log(level, "triangulating with fixed poses and intrinsics")
    options = pycolmap.IncrementalPipelineOptions()
    options.num_threads = conf.num_threads
    options.random_seed = conf.seed
    given = {i: copy.deepcopy(frame.rig_from_world) for i, frame in rec.frames.items()}
    with tempfile.TemporaryDirectory(dir=out, prefix=".tri-") as tmp:
        tri = pycolmap.triangulate_points(
            rec, db_path, images, tmp, clear_points=True, options=options, refine_intrinsics=False
        )
    timings["triangulate_s"] = time.perf_counter() - t
    for frame_id, frame in tri.frames.items():
        # Bundle adjustment re-normalizes the (constant) quaternions, moving them by ~1e-13:
        # keep the given poses bit for bit.
        frame.rig_from_world = given[frame_id]
    tri.update_point_3d_errors()
    if tri.num_points3D() == 0:
        raise ValueError(
            f"no points triangulated from the {len(names)} images in {images}: "
            "they need overlap and texture, and poses in the model's frame"
        )
    extra = {"input_images": len(names), "matching": matching, "pairs": num_pairs, **timings}
    finish_map(tri, images, out, extra)
    return tri
