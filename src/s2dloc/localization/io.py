"""Query lists in, results out: hloc query lists / image folders, benchmark pose files, JSON-lines
logs (resumable: queries already logged are skipped)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from s2dloc.datasets.colmap_io import read_poses, read_query_list, write_poses
from s2dloc.geometry import Camera, Pose
from s2dloc.localization.query import Query, QueryResult

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


def parse_camera(text: str) -> Camera:
    """``"MODEL W H p1 p2 ..."`` -> Camera (clear error if malformed)."""
    f = text.split()
    try:
        return Camera.from_colmap(f[0], int(f[1]), int(f[2]), [float(x) for x in f[3:]])
    except (IndexError, ValueError) as err:
        raise ValueError(f"bad camera {text!r} (expected 'MODEL W H params...'): {err}") from None


def read_queries(
    source: str | Path, image_root: str | Path | None = None, camera: str | None = None
) -> list[Query]:
    """Queries from an hloc list file (``name MODEL W H params``, images under ``image_root``)
    or from a folder of images sharing ``camera`` (``"MODEL W H params"``)."""
    source = Path(source)
    if source.is_dir():
        if camera is None:
            raise ValueError(f"{source} is a folder of images: give its camera "
                             "('MODEL W H params...')")  # fmt: skip
        cam = parse_camera(camera)
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"no images in {source}")
        return [Query(str(p.relative_to(source)), cam, path=p) for p in files]
    root = Path(image_root) if image_root is not None else source.parent
    queries = []
    for name, (model, w, h, params) in read_query_list(source).items():
        try:
            cam = Camera.from_colmap(model, w, h, params)
        except ValueError as err:
            raise ValueError(f"{source}: query {name!r}: {err}") from None
        queries.append(Query(name, cam, path=root / name))
    if not queries:
        raise ValueError(f"{source} lists no queries")
    return queries


def attach_priors(queries: list[Query], poses_path: str | Path) -> list[Query]:
    """Set ``prior`` of each query from a pose file; queries without a pose are dropped (logged)."""
    poses = read_poses(poses_path)
    out = []
    for q in queries:
        if q.name not in poses:
            logger.warning("%s has no pose for query %s: skipped", poses_path, q.name)
            continue
        quat, t = poses[q.name]
        q.prior = Pose.from_quat_t(quat, t)
        out.append(q)
    return out


def read_log(path: str | Path) -> dict[str, dict]:
    """Records of a JSON-lines log by query name (a truncated last line is ignored)."""
    path, out = Path(path), {}
    if not path.exists():
        return out
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: unreadable record ignored (interrupted run?)", path, lineno)
            continue
        out[rec["name"]] = rec
    return out


def append_log(path: str | Path, result: QueryResult) -> None:
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
    with open(path, "a") as f:
        f.write(json.dumps(result.to_json()) + "\n")
        f.flush()


def write_results(path: str | Path, records: dict[str, dict], key: str = "pose") -> Path:
    """Poses of the records (``name qw qx qy qz tx ty tz``); queries without a pose are left out."""
    poses = {n: (r[key][:4], r[key][4:]) for n, r in records.items() if r.get(key)}
    return write_poses(path, poses)
