"""Up-front checks of a run's inputs, before any work is done.

Global problems raise one clear error naming the file (a map with no 3D points, a pose file that
cannot be read). Problems of a single query (an implausible camera, a missing or unreadable
image, an image whose size does not match its camera, an image whose dense features would not
fit the memory budget, a non-finite prior pose) are reported and that query is skipped: the
other queries still run.

``s2dloc localize`` / ``refine`` call :func:`load_map` and :func:`pending_queries`; ``refine``
reads its priors through :func:`read_priors` (via :func:`attach_priors`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from s2dloc.features.base import extraction_size, size_multiple
from s2dloc.geometry import Pose
from s2dloc.geometry.camera_checks import camera_problems
from s2dloc.localization import descriptors as D
from s2dloc.localization.config import max_side, resolve
from s2dloc.localization.io import append_log, read_log
from s2dloc.localization.map import Map
from s2dloc.localization.query import Query, QueryResult
from s2dloc.mapping.intrinsics import ORIENTATION
from s2dloc.utils.io import read_text

logger = logging.getLogger(__name__)

DEFAULT_FEATURE_BUDGET = 4 * 2**30  # bytes of dense query features allowed per query (4 GiB)


# ---------------------------------------------------------------------- map
def check_map(map_: Map, path: str | Path) -> Map:
    """Raise ``ValueError`` naming the model ``path`` if the map has no 3D points."""
    observed = any(len(im.point3D_ids) for im in map_.images)
    if len(map_.points3D) == 0 or not observed:
        raise ValueError(
            f"map {path} has no 3D points with observations "
            f"({len(map_.images)} images, {len(map_.points3D)} points): "
            "expected a COLMAP model with triangulated points"
        )
    return map_


def load_map(path: str | Path, image_root: str | Path | None = None) -> Map:
    """:meth:`Map.load` whose errors name the model path; the map must have 3D points."""
    try:
        map_ = Map.load(path, image_root)
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"map {path}: {err}") from None
    return check_map(map_, path)


# ---------------------------------------------------------------------- queries
def feature_bytes(
    width: int, height: int, channels: Sequence[int], strides: Sequence[float]
) -> int:
    """Estimated bytes of a float32 feature pyramid: sum over levels of
    ``C_l * ceil(H / s_l) * ceil(W / s_l) * 4``."""
    return int(
        sum(
            4 * int(c) * math.ceil(height / s) * math.ceil(width / s)
            for c, s in zip(channels, strides)
        )
    )


def extractor_levels(extractor) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """``(channels, strides)`` per level of a dense extractor (3 channels, stride 1 if unknown)."""
    strides = tuple(getattr(extractor, "strides", (1,)))
    channels = tuple(getattr(extractor, "channels", (3,) * len(strides)))
    if len(channels) == 1 and len(strides) > 1:
        channels = channels * len(strides)
    return channels, strides


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file as decoded (EXIF rotations by 90 degrees swap them),
    from its header (no decoding of the pixels).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing, empty,
    not an image or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"query image {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"query image {path} is empty (expected an image file)")
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size itself is checked against the memory budget
    try:
        with Image.open(path) as im:
            im.verify()  # structure and checksums, without decoding the pixels
        with Image.open(path) as im:  # verify() leaves the image unusable: reopen
            size = im.size
            if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):  # decoded rotated by 90 deg
                size = size[::-1]
    except OSError as err:  # covers PIL.UnidentifiedImageError and truncated files
        raise ValueError(
            f"cannot read query image {path} (expected a readable image file: "
            f"{type(err).__name__}: {err})"
        ) from None
    except Exception as err:  # anything else a broken file triggers in a decoder
        raise ValueError(f"cannot read query image {path} ({type(err).__name__}: {err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return int(size[0]), int(size[1])


def check_query(
    query: Query,
    channels: Sequence[int],
    strides: Sequence[float],
    budget: int = DEFAULT_FEATURE_BUDGET,
    max_side: int | None = None,
    multiple: int = 1,
) -> str | None:
    """Why ``query`` cannot be localized (a message naming its image), or None if it can: an
    implausible camera (:func:`s2dloc.geometry.camera_checks.camera_problems`), a missing or
    unreadable image, a size other than its camera's, or features beyond the memory ``budget``
    at the size it is extracted at (:func:`s2dloc.features.base.extraction_size` with
    ``multiple`` and ``max_side``)."""
    where = query.path if query.image is None else f"query {query.name!r} (in memory)"
    problems = camera_problems(query.camera, f"camera of query {query.name!r}")
    if problems:
        return "; ".join(problems)
    try:
        if query.image is not None:
            h, w = query.image.shape[:2]
        elif query.path is None:
            return f"query {query.name!r} has neither an image nor a path"
        else:
            w, h = image_size(query.path)
    except (FileNotFoundError, ValueError) as err:
        return str(err)
    cw, ch = (int(round(v)) for v in query.camera.size.tolist())
    if (w, h) != (cw, ch):
        return f"query image {where} is {w}x{h} but its camera is {cw}x{ch}"
    ew, eh = extraction_size(w, h, multiple, max_side)
    need = feature_bytes(ew, eh, channels, strides)
    if need > budget:
        return (
            f"query image {where} ({w}x{h}, extracted at {ew}x{eh}) needs about "
            f"{need / 2**30:.2f} GiB of dense features ({len(channels)} levels, "
            f"{max(channels)} channels max, float32), more than the budget of "
            f"{budget / 2**30:.2f} GiB: lower the setting 'resize_max' or raise the budget"
        )
    return None


def check_queries(
    queries: list[Query],
    conf: dict | None = None,
    skipped: dict[str, str] | None = None,
    extractor=None,
    budget: int = DEFAULT_FEATURE_BUDGET,
) -> list[Query]:
    """The queries that pass :func:`check_query`; the others are logged and their reasons added
    to ``skipped`` (``{name: message}``, e.g. to record them as failed in the run's log).

    The feature levels come from ``extractor`` or, if None, from the extractor named in ``conf``
    (default settings when ``conf`` is None). Raises ``ValueError`` if ``budget`` is not positive.
    """
    if not budget > 0:
        raise ValueError(f"feature memory budget must be positive, got {budget}")
    conf = resolve(conf)
    if extractor is None:
        extractor = D.load_extractor(conf["extractor"])
    channels, strides = extractor_levels(extractor)
    multiple = size_multiple(extractor)
    good = []
    for q in queries:
        reason = check_query(q, channels, strides, budget, max_side(conf), multiple)
        if reason is None:
            good.append(q)
            continue
        logger.error("query %s skipped: %s", q.name, reason)
        if skipped is not None:
            skipped[q.name] = reason
    if queries and not good:
        logger.error("none of the %d queries can be localized", len(queries))
    return good


def pending_queries(
    queries: list[Query], conf: dict, log_path: str | Path, skipped: dict[str, str] | None = None
) -> tuple[list[Query], list[Query]]:
    """Check ``queries`` up front and return ``(valid, todo)``: ``todo`` are the valid ones not
    yet in the run's log. Queries that fail a check, and those already in ``skipped`` (e.g.
    unreadable files), are appended to the log as failed, once, and never localized."""
    skipped = {} if skipped is None else skipped
    queries = check_queries(queries, conf, skipped)
    done = read_log(log_path)
    for name, reason in skipped.items():
        if name not in done:
            append_log(log_path, QueryResult(name, error=reason))
            done[name] = {"name": name, "error": reason}
    return queries, [q for q in queries if q.name not in done]


# ---------------------------------------------------------------------- prior poses
def read_priors(path: str | Path) -> tuple[dict[str, Pose], dict[str, str]]:
    """Prior poses ``name qw qx qy qz tx ty tz`` (cam_from_world) and ``{name: reason}`` of the
    lines that give no usable pose (NaN/inf or non-numeric values, a quaternion far from unit
    norm, a wrong number of fields), each reason naming ``file:line``.

    A missing or non-text file, duplicate names, or a file with no usable pose at all raise.
    """
    path = Path(path)
    poses: dict[str, Pose] = {}
    bad: dict[str, str] = {}
    lines = read_text(path).splitlines()  # missing / binary file: raises naming the path
    for lineno, line in enumerate(lines, 1):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        where = f"{path}:{lineno}"
        name = f[0]
        if name in poses or name in bad:
            raise ValueError(f"{where}: duplicate image name {name!r}")
        if len(f) != 8:
            bad[name] = f"{where}: expected 'name qw qx qy qz tx ty tz', got {len(f)} fields"
            continue
        try:
            v = np.array([float(x) for x in f[1:]], np.float64)
        except ValueError:
            bad[name] = f"{where}: pose values must be numbers, got {f[1:]}"
            continue
        if not np.isfinite(v).all():
            bad[name] = f"{where}: pose of {name!r} is not finite (NaN/inf): {f[1:]}"
            continue
        norm = float(np.linalg.norm(v[:4]))
        if abs(norm - 1) > 1e-3:
            bad[name] = f"{where}: quaternion norm {norm:.4f} of {name!r} is not 1"
            continue
        poses[name] = Pose.from_quat_t(v[:4] / norm, v[4:])
    if not poses:
        detail = "; ".join(list(bad.values())[:3]) or "the file has no pose lines"
        raise ValueError(
            f"{path}: no usable pose (expected 'name qw qx qy qz tx ty tz' per line): {detail}"
        )
    return poses, bad


def attach_priors(queries: list[Query], poses_path: str | Path) -> list[Query]:
    """Set ``prior`` of each query from a pose file; queries without a usable pose are dropped
    (logged: a missing pose as a warning, a NaN/inf or malformed pose as an error naming
    ``file:line``). An unreadable pose file, or one with no usable pose, raises."""
    poses, bad = read_priors(poses_path)
    out = []
    for q in queries:
        if q.name in bad:
            logger.error("query %s skipped: %s", q.name, bad[q.name])
            continue
        if q.name not in poses:
            logger.warning("%s has no pose for query %s: skipped", poses_path, q.name)
            continue
        q.prior = poses[q.name]
        out.append(q)
    return out
