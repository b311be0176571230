"""Query lists in, results out: hloc query lists / image folders, benchmark pose files, JSON-lines
logs (resumable: queries already logged are skipped).

Logs are strict JSON, one record per line: non-finite numbers (e.g. the scores of references
taken from a pairs file) are written as ``null``. Result files hold, by default, only the
queries whose record says ``success`` (the poses the pipeline stands behind; records without a
``success`` key, from older logs, count as successes when they have a pose); with
``write_failed`` every query that has any pose."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from s2dloc.datasets.colmap_io import read_query_list, write_poses
from s2dloc.evaluation.submission import record_success
from s2dloc.geometry import Camera
from s2dloc.localization.query import Query, QueryResult
from s2dloc.mapping.intrinsics import DEFAULT_FOCAL_FACTOR, query_camera
from s2dloc.mapping.intrinsics import logger as intrinsics_logger
from s2dloc.mapping.intrinsics import parse_camera as parse_camera  # re-exported
from s2dloc.utils.io import read_text, strict_json

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


def read_queries(
    source: str | Path,
    image_root: str | Path | None = None,
    camera: str | None = None,
    model=None,
    default_focal_factor: float = DEFAULT_FOCAL_FACTOR,
    skipped: dict[str, str] | None = None,
) -> list[Query]:
    """Queries from an hloc list file (``name MODEL W H params``, images under ``image_root``)
    or from a folder of images.

    A folder's images share ``camera`` (``"MODEL W H params"``) when given; otherwise each
    image's intrinsics come from :func:`s2dloc.mapping.query_camera` (the map ``model``, the EXIF
    focal length, or ``default_focal_factor * max(W, H)``), with one warning per source. Folder
    images that cannot be read are logged and left out; their names and reasons are added to
    ``skipped`` when given.
    """
    source = Path(source)
    if source.is_dir():
        if camera is not None:
            cam = parse_camera(camera)
            return [Query(n, cam, path=p) for n, p in _folder_images(source)]
        queries, bad = read_query_folder(source, model, default_focal_factor)
        if skipped is not None:
            skipped.update(bad)
        return queries
    root = Path(image_root) if image_root is not None else source.parent
    queries = []
    for name, (model_name, w, h, params) in read_query_list(source).items():
        try:
            cam = Camera.from_colmap(model_name, w, h, params)
        except ValueError as err:
            raise ValueError(f"{source}: query {name!r}: {err}") from None
        queries.append(Query(name, cam, path=root / name))
    if not queries:
        raise ValueError(f"{source} lists no queries")
    return queries


def _folder_images(folder: Path) -> list[tuple[str, Path]]:
    """``(name relative to folder, path)`` of the images under ``folder``, sorted."""
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(
            f"no query images in {folder} (expected files ending in {', '.join(IMAGE_SUFFIXES)})"
        )
    return [(p.relative_to(folder).as_posix(), p) for p in files]


_SOURCE_TEXT = {
    "model": "the map's COLMAP model (same image, or the map's only camera of that size)",
    "query_list": "the query list",
    "exif": "the EXIF focal length (SIMPLE_RADIAL, principal point at the centre, k=0)",
    "default": "no model, query list or EXIF focal: a default focal of {f:.3g} * max(W, H) "
    "(SIMPLE_RADIAL, principal point at the centre, k=0)",
}


def read_query_folder(
    folder: str | Path, model=None, default_focal_factor: float = DEFAULT_FOCAL_FACTOR
) -> tuple[list[Query], dict[str, str]]:
    """The readable images of ``folder`` as queries with intrinsics from
    :func:`s2dloc.mapping.query_camera`, and ``{name: reason}`` of the unreadable ones.

    One warning per intrinsics source (with the number of images and an example), not one per
    image. Raises ``ValueError`` naming the files if no image is readable.
    """
    folder = Path(folder)
    queries: list[Query] = []
    skipped: dict[str, str] = {}
    by_source: dict[str, list[Query]] = {}
    level = intrinsics_logger.level
    intrinsics_logger.setLevel(logging.ERROR)  # per-image messages: summarized below instead
    try:
        for name, path in _folder_images(folder):
            try:
                cam, src = query_camera(path, model, default_focal_factor, name=name)
            except Exception as err:  # any unreadable image: report, skip, go on
                skipped[name] = f"cannot read query image {path}: {type(err).__name__}: {err}"
                logger.error("%s: skipped", skipped[name])
                continue
            q = Query(name, cam, path=path)
            queries.append(q)
            by_source.setdefault(src, []).append(q)
    finally:
        intrinsics_logger.setLevel(level)
    if not queries:
        raise ValueError(f"no readable query image in {folder}: " + "; ".join(skipped.values()))
    for src, qs in by_source.items():
        text = _SOURCE_TEXT.get(src, src).format(f=default_focal_factor)
        logger.warning(
            "intrinsics of %d of %d query images from %s; e.g. %s: %r",
            len(qs),
            len(queries),
            text,
            qs[0].name,
            qs[0].camera,
        )
    return queries, skipped


def read_log(path: str | Path) -> dict[str, dict]:
    """Records of a JSON-lines log by query name (a truncated last line is ignored)."""
    path, out = Path(path), {}
    if not path.exists():
        return out
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: unreadable record ignored (interrupted run?)", path, lineno)
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str):
            logger.warning("%s:%d: not a query record, ignored", path, lineno)
            continue
        out[rec["name"]] = rec
    return out


def record_line(record: dict) -> str:
    """One strict-JSON log line (no NaN / Infinity tokens) with its newline."""
    return json.dumps(strict_json(record), allow_nan=False) + "\n"


def append_log(path: str | Path, result: QueryResult | dict) -> None:
    """Append one record and flush (so an interrupted run can resume).

    A partial last line left by a killed run is cut off first, so the new record starts on a
    line of its own.
    """
    path = Path(path)
    if path.exists() and path.stat().st_size:
        with open(path, "rb+") as f:
            f.seek(-1, 2)
            if f.read(1) != b"\n":
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
    record = result if isinstance(result, dict) else result.to_json()
    with open(path, "a") as f:
        f.write(record_line(record))
        f.flush()


def write_results(
    path: str | Path, records: dict[str, dict], key: str = "pose", write_failed: bool = True
) -> Path:
    """Poses ``records[name][key]`` as ``name qw qx qy qz tx ty tz``. Records without that pose
    are left out, and so are those that are not a success (:func:`record_success`) unless
    ``write_failed``."""
    poses = {
        n: (r[key][:4], r[key][4:])
        for n, r in records.items()
        if r.get(key) and (write_failed or record_success(r))
    }
    return write_poses(path, poses)
