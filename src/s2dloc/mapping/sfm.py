"""Build a map from the user's own images with pycolmap, or import an existing COLMAP model.

Output folder (directly usable as ``s2dloc localize --map OUT``, see :meth:`Map.load`)::

    database.db      COLMAP database: SIFT features, matches (reused on a re-run: resumable)
    sfm/             the largest reconstructed model (COLMAP binary)
    images           link to the image folder (if links are unsupported: pass
                     ``s2dloc localize --images DIR``)
    config.json      the resolved settings (:class:`SfMConfig` but ``num_threads``, and the image
                     folder); a re-run with other settings needs ``overwrite``
    summary.json     registered images, points, mean reprojection error, mean track length

Image names in the model are paths relative to the image folder.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s2dloc.datasets import colmap_model
from s2dloc.geometry import MODELS, Camera
from s2dloc.geometry.camera_checks import camera_problems, check_camera
from s2dloc.mapping.images import list_images
from s2dloc.mapping.intrinsics import parse_camera
from s2dloc.mapping.map_folder import finish_map, prepare_out
from s2dloc.utils.config import (
    Check,
    check_fields,
    from_settings,
    in_range,
    one_of,
    settings_of,
)

logger = logging.getLogger(__name__)

MATCHERS = ("exhaustive", "sequential")


@dataclasses.dataclass
class SfMConfig:
    """Settings of :func:`build_map` (defaults are COLMAP's, except the thread count).

    ``camera`` (``"MODEL W H p1 p2 ..."``) fixes one camera for all images and overrides
    ``camera_model``; without it COLMAP guesses the focal length from EXIF (or 1.2 max(W, H)).
    ``seed`` seeds the incremental mapping (the two-view verification keeps COLMAP's random
    seeds). Settings are checked by type (that of the default) and :data:`CHECKS`; build one from
    overrides with :func:`sfm_config`.
    """

    camera_model: str = "SIMPLE_RADIAL"
    camera: str | None = None
    single_camera: bool = False
    max_size: int = 1024
    max_features: int = 8192
    matcher: str = "exhaustive"
    overlap: int = 10  # sequential matcher: neighbours (in name order) matched to each image
    num_threads: int = -1
    seed: int = 0

    def __post_init__(self):
        check_fields(self, CHECKS)


def _camera_check(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string 'MODEL W H params...' (or null)"
    try:
        camera = parse_camera(value)
    except ValueError as err:
        return f"is not a camera: {err}"
    problems = camera_problems(camera, "the camera")
    return f"is not a plausible camera: {'; '.join(problems)}" if problems else None


# Checks of the SfM settings (see :func:`s2dloc.utils.config.merge`).
CHECKS: dict[str, Check] = {
    "camera_model": one_of(*MODELS),
    "camera": _camera_check,
    "max_size": in_range(1),
    "max_features": in_range(1),
    "matcher": one_of(*MATCHERS),
    "overlap": in_range(1),
    "num_threads": in_range(-1),
    "seed": in_range(-1),
}


def sfm_config(overrides: Mapping[str, Any] | None = None) -> SfMConfig:
    """:class:`SfMConfig` of the defaults updated with ``overrides`` (e.g. ``{"matcher":
    "sequential"}``), checked strictly (:class:`s2dloc.utils.config.ConfigError`)."""
    return from_settings(SfMConfig, overrides, checks=CHECKS)


def _reader_options(conf: SfMConfig):
    import pycolmap

    opts = pycolmap.ImageReaderOptions()
    opts.camera_model = conf.camera_model
    if conf.camera:
        cam = parse_camera(conf.camera)  # validates the model and parameter count
        opts.camera_model = cam.model
        opts.camera_params = ",".join(f"{p:.10g}" for p in cam.params.tolist())
    return opts


def build_map(
    images: str | Path, out: str | Path, conf: SfMConfig | None = None, overwrite: bool = False
) -> dict:
    """SIFT features, matching and incremental mapping of the images under ``images``; writes the
    largest model to ``out/sfm`` and returns the summary (also in ``out/summary.json``).

    An existing ``out/database.db`` of the same settings is reused (only missing features and
    pairs are computed) unless ``overwrite``.
    """
    conf = conf or SfMConfig()
    check_fields(conf, CHECKS)  # also after changes to the fields
    images, out = Path(images), Path(out)
    names = list_images(images)
    settings = {k: v for k, v in settings_of(conf).items() if k != "num_threads"}
    prepare_out(out, {"images": str(images.resolve()), **settings}, overwrite)
    db_path = out / "database.db"
    if db_path.exists():
        logger.info("reusing %s (features and matches already there are kept)", db_path)
    timings = {}
    t = time.perf_counter()
    _extract_features(db_path, images, names, conf)
    timings["extract_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _match_features(db_path, conf)
    timings["match_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rec, num_models = _reconstruct(db_path, images, out, names, conf)
    timings["mapping_s"] = time.perf_counter() - t
    extra = {"input_images": len(names), "models": num_models, **timings}
    return finish_map(rec, images, out, extra)


def _extract_features(db_path: Path, images: Path, names: list[str], conf: SfMConfig) -> None:
    """SIFT features of ``names`` into the database (images already there are skipped)."""
    import pycolmap

    extract = pycolmap.FeatureExtractionOptions()
    extract.max_image_size = conf.max_size
    extract.num_threads = conf.num_threads
    extract.sift.max_num_features = conf.max_features
    single = conf.single_camera or conf.camera is not None
    mode = pycolmap.CameraMode.SINGLE if single else pycolmap.CameraMode.AUTO
    pycolmap.extract_features(
        db_path,
        images,
        image_names=names,
        camera_mode=mode,
        reader_options=_reader_options(conf),
        extraction_options=extract,
        device=pycolmap.Device.auto,
    )


def seeded_verification(seed: int):
    """Two-view verification options (``pycolmap.TwoViewGeometryOptions``) whose RANSAC is
    seeded with ``seed`` (-1: random): with COLMAP's random seeds, two builds of the same map
    differ by tens of points."""
    import pycolmap

    verify = pycolmap.TwoViewGeometryOptions()
    verify.ransac.random_seed = seed
    return verify


def _match_features(db_path: Path, conf: SfMConfig) -> None:
    """Exhaustive or sequential matching (pairs already in the database are skipped)."""
    import pycolmap

    device = pycolmap.Device.auto
    match = pycolmap.FeatureMatchingOptions()
    match.num_threads = conf.num_threads
    if conf.matcher == "sequential":
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = conf.overlap
        pycolmap.match_sequential(
            db_path, matching_options=match, pairing_options=pairing, device=device
        )
    else:
        pycolmap.match_exhaustive(db_path, matching_options=match, device=device)


def _reconstruct(db_path: Path, images: Path, out: Path, names: list[str], conf: SfMConfig):
    """Incremental mapping: ``(the model with the most registered images, number of models)``."""
    import pycolmap

    mapping = pycolmap.IncrementalPipelineOptions()
    mapping.num_threads = conf.num_threads
    mapping.random_seed = conf.seed
    with tempfile.TemporaryDirectory(dir=out, prefix=".models-") as tmp:
        models = pycolmap.incremental_mapping(db_path, images, tmp, mapping)
    if not models:
        raise ValueError(
            f"SfM reconstructed nothing from the {len(names)} images in {images}: "
            "they need more overlap or texture (try --matcher exhaustive)"
        )
    rec = max(models.values(), key=lambda r: r.num_reg_images())
    if rec.num_reg_images() < 2:
        raise ValueError(
            f"SfM registered only {rec.num_reg_images()} of {len(names)} images "
            f"in {images}: a map needs at least 2"
        )
    if rec.num_reg_images() < len(names):
        logger.warning(
            "%d of %d images registered (%d models); the others are not in the map",
            rec.num_reg_images(),
            len(names),
            len(models),
        )
    return rec, len(models)


def read_model(model: str | Path):
    """The ``pycolmap.Reconstruction`` in a COLMAP model folder (text or binary), with clear
    errors for a missing folder, a folder that is not a model, or unreadable files."""
    return colmap_model.read_model(model)


def import_model(
    model: str | Path, images: str | Path, out: str | Path, overwrite: bool = False
) -> dict:
    """Import a COLMAP model (text or binary folder) whose image names are relative to
    ``images``; writes ``out/sfm`` and returns the summary."""
    model, images, out = Path(model), Path(images), Path(out)
    rec = read_model(model)
    if not images.is_dir():
        raise FileNotFoundError(f"image folder {images} does not exist")
    names = [rec.images[i].name for i in rec.reg_image_ids()]
    if len(names) < 2 or rec.num_points3D() == 0:
        raise ValueError(
            f"{model} has {len(names)} registered images and "
            f"{rec.num_points3D()} points: a map needs 2 images and some points"
        )
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} images of {model} are not under {images}: {missing[:3]}")
    first_image: dict[int, str] = {}  # each camera once, named by its first image
    for i in rec.reg_image_ids():
        first_image.setdefault(rec.images[i].camera_id, rec.images[i].name)
    for camera_id, name in first_image.items():
        where = f"{model}: camera {camera_id} of image {name!r}"
        check_camera(Camera.from_colmap(rec.cameras[camera_id]), where)
    prepare_out(out, {"import": str(model.resolve()), "images": str(images.resolve())}, overwrite)
    return finish_map(rec, images, out, {"imported_from": str(model.resolve())})
