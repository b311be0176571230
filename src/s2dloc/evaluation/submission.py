"""Submission files for the visuallocalization.net evaluation server.

One line per query, ``name qw qx qy qz tx ty tz``: cam_from_world (world-to-camera rotation as
a unit quaternion, translation, NOT the camera centre), in the model's NVM coordinate frame.
Names follow each benchmark:

- ``cmu``: the image file name (no slice, no folder), all slices concatenated in one file;
- ``robotcar``: ``<camera>/<timestamp>.jpg`` (e.g. ``rear/1418721355742500.jpg``), all
  conditions concatenated;
- ``None``: names unchanged.

Missing queries: the CMU Seasons README asks for one line "for each query image for which your
method has estimated a pose"; the server counts a query without a line as not localized (the
same as a wrong pose), so leaving it out is allowed. By default failed queries are omitted;
``write_failed=True`` writes the best pose they still have (the pipeline's fallback, i.e. the
retrieved reference's pose) since a rough pose can only score at the coarse thresholds.
Queries with no pose at all are always omitted. Either way they are listed in the returned
:class:`SubmissionReport` and in a logged warning. The file is written atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2dloc.datasets.colmap_io import write_poses
from s2dloc.datasets.robotcar import parse_image_name

logger = logging.getLogger(__name__)


def cmu_name(name: str) -> str:
    """``slice2/query/img_..._c0_...us.jpg`` -> ``img_..._c0_...us.jpg``."""
    return Path(name).name


def robotcar_name(name: str) -> str:
    """``night/rear/1418721355742500.jpg`` (or ``rear/...``) -> ``rear/1418721355742500.jpg``."""
    parts = name.split("/")
    full = "/".join(parts[-3:] if len(parts) >= 3 else ["overcast-reference", *parts])
    _, camera, timestamp = parse_image_name(full, f"query {name!r}")
    return f"{camera}/{timestamp}.jpg"


NAMING: dict[str | None, Callable[[str], str]] = {
    "cmu": cmu_name,
    "robotcar": robotcar_name,
    None: lambda n: n,
}


@dataclass
class SubmissionReport:
    """What was written: ``path``, ``written`` lines, and the queries that were not localized:
    ``failed`` (a result without a successful pose), ``missing`` (expected but no result);
    ``fallback_written`` lists failed queries written with their fallback pose."""

    path: Path
    written: int
    failed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    fallback_written: list[str] = field(default_factory=list)

    @property
    def not_localized(self) -> list[str]:
        return [*self.failed, *self.missing]


def record_success(record: Mapping) -> bool:
    """Whether a log record (``QueryResult.to_json()``) is a pose the pipeline stands behind:
    it has a pose and its ``success`` is true. Records without a ``success`` key (older logs)
    count as successes when they have a pose."""
    return bool(record.get("pose")) and bool(record.get("success", True))


def _pose_of(result) -> tuple[object | None, bool]:
    """``(pose or (q, t) or None, success)`` of a QueryResult, a log record (dict with
    ``pose = [qw, qx, qy, qz, tx, ty, tz]``), a Pose, ``(q, t)`` or None."""
    if result is None:
        return None, False
    if isinstance(result, Mapping):  # a log record
        p = result.get("pose")
        pose, ok = _pose_of((p[:4], p[4:]) if p else None)
        return pose, ok and record_success(result)
    if hasattr(result, "fallback") and hasattr(result, "pose"):  # a QueryResult
        pose, ok = _pose_of(result.pose)
        good = getattr(result, "success", not result.fallback and not result.error)
        return pose, ok and bool(good)
    if hasattr(result, "quat"):  # a Pose
        q, t = result.quat().detach().cpu().numpy(), result.t.detach().cpu().numpy()
    else:
        q, t = (np.asarray(x, np.float64) for x in result)
    q, t = q.astype(np.float64).reshape(-1), t.astype(np.float64).reshape(-1)
    if q.shape != (4,) or t.shape != (3,):
        raise ValueError(f"expected (q_wxyz (4,), t (3,)), got shapes {q.shape}, {t.shape}")
    if not (np.isfinite(q).all() and np.isfinite(t).all() and abs(np.linalg.norm(q) - 1) < 1e-3):
        return None, False
    return (q / np.linalg.norm(q), t), True


def write_submission(
    path: str | Path,
    results: Mapping[str, object] | Iterable[Mapping[str, object]],
    benchmark: str | None = None,
    queries: Iterable[str] | None = None,
    write_failed: bool = False,
) -> SubmissionReport:
    """Write the results of one or several slices/conditions as one submission file.

    Args:
        path: output text file.
        results: ``{query name: result}`` or a list of such mappings (concatenated in order);
            a result is a ``QueryResult``, a log record (see :func:`record_success`), a
            ``Pose``, ``(q_wxyz, t)``, or None for a failure.
        benchmark: ``"cmu"``, ``"robotcar"`` or None; picks the naming (see module doc).
        queries: every expected query name (e.g. the test-image lists); those without a result
            are reported as missing.
        write_failed: also write failed queries that still have a (fallback) pose.
    """
    if benchmark not in NAMING:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {list(NAMING)}")
    rename = NAMING[benchmark]
    chunks = [results] if isinstance(results, Mapping) else list(results)
    lines: dict[str, object] = {}
    source: dict[str, str] = {}
    report = SubmissionReport(Path(path), 0)
    for chunk in chunks:
        for name, result in chunk.items():
            out_name = rename(name)
            if out_name in source:
                raise ValueError(
                    f"queries {source[out_name]!r} and {name!r} both map to "
                    f"{out_name!r} in the {benchmark} submission"
                )
            source[out_name] = name
            pose, ok = _pose_of(result)
            if not ok:
                report.failed.append(name)
                if not (write_failed and pose is not None):
                    continue
                report.fallback_written.append(name)
            lines[out_name] = pose
    if queries is not None:
        seen = set(source.values())
        report.missing = [q for q in queries if q not in seen]
    write_poses(path, lines)
    report.written = len(lines)
    if report.not_localized:
        logger.warning(
            "%s: %d of %d queries not localized (%d failed, %d without a result; %s), e.g. %s",
            path,
            len(report.not_localized),
            len(source) + len(report.missing),
            len(report.failed),
            len(report.missing),
            "fallback poses written" if write_failed else "omitted",
            report.not_localized[:3],
        )
    logger.info("wrote %d poses to %s", report.written, path)
    return report
