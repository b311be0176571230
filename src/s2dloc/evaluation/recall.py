"""Localization recall: pose errors against ground truth, recall at thresholds, per condition.

Rotation error: angle of the relative rotation (degrees); translation error: distance between
camera centres (map units). Missing results count as failures (infinite error) in the recall
over all ground-truth queries; :func:`evaluate` also reports the recall over the submitted ones
and names the ground-truth queries without a result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.geometry import Pose

logger = logging.getLogger(__name__)

THRESHOLDS = ((0.25, 2.0), (0.5, 5.0), (5.0, 10.0))


def condition_of(name: str) -> str:
    """The condition of a query name: its parent folder (``query/<cond>/0000.png`` -> ``cond``)."""
    parts = Path(name).parts
    return parts[-2] if len(parts) >= 2 else "all"


@dataclass
class Errors:
    """Per-query errors ``rot_deg (Q,)``, ``trans (Q,)`` (inf when missing) and names."""

    names: list[str]
    rot_deg: np.ndarray
    trans: np.ndarray

    def subset(self, names: set[str]) -> Errors:
        """The errors of the queries in ``names`` (same order)."""
        keep = np.array([n in names for n in self.names], bool).reshape(-1)
        picked = [n for n, k in zip(self.names, keep) if k]
        return Errors(picked, self.rot_deg[keep], self.trans[keep])


@dataclass
class Evaluation:
    """Recall of one result file: ``table`` over every ground-truth query (a missing result is
    a failure), ``submitted`` over the ground-truth queries that have a result (empty if none),
    the per-query ``errors``, the ground-truth queries without a result (``missing``) and the
    results without ground truth (``extra``, ignored)."""

    table: dict[str, dict]
    submitted: dict[str, dict]
    errors: Errors
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)


def pose_errors(results: dict, gt: dict) -> Errors:
    """Errors of ``{name: (q_wxyz, t)}`` results against ground truth of every GT query."""
    names = sorted(gt)
    rot = np.full(len(names), np.inf)
    trans = np.full(len(names), np.inf)
    for i, n in enumerate(names):
        if n in results:
            T_gt, T = Pose.from_quat_t(*gt[n]), Pose.from_quat_t(*results[n])
            rot[i] = float(T_gt.angle_to(T))
            trans[i] = float(T_gt.center_distance_to(T))
    extra = set(results) - set(gt)
    if extra:
        logger.warning(
            "%d results have no ground truth (ignored), e.g. %s", len(extra), sorted(extra)[:2]
        )
    return Errors(names, rot, trans)


def recall_table(errors: Errors, thresholds=THRESHOLDS) -> dict[str, dict]:
    """Per condition (and ``all``): count, median errors, recall (%) at each threshold."""
    conds = np.array([condition_of(n) for n in errors.names])
    out = {}
    for c in [*sorted(set(conds.tolist())), "all"]:
        sel = np.ones(len(conds), bool) if c == "all" else conds == c
        r, t = errors.rot_deg[sel], errors.trans[sel]
        row = {
            "count": int(sel.sum()),
            "median_trans": float(np.median(t)),
            "median_rot_deg": float(np.median(r)),
        }
        for tt, rt in thresholds:
            row[f"{tt}m/{rt}deg"] = float(100 * np.mean((t <= tt) & (r <= rt)))
        out[c] = row
    return out


def format_table(table: dict[str, dict]) -> str:
    keys = list(next(iter(table.values())))
    lines = ["condition".ljust(12) + "".join(k.rjust(16) for k in keys)]
    for c, row in table.items():
        lines.append(
            c.ljust(12)
            + "".join(
                f"{row[k]:16.3f}" if isinstance(row[k], float) else f"{row[k]:16d}" for k in keys
            )
        )
    return "\n".join(lines)


def evaluate(results_path, gt_path, thresholds=THRESHOLDS) -> Evaluation:
    """Read a results file and a ground-truth file (``name qw qx qy qz tx ty tz``) and compute
    the recall over all ground-truth queries and over the submitted ones."""
    results, gt = read_poses(results_path), read_poses(gt_path)
    errors = pose_errors(results, gt)
    missing = [n for n in errors.names if n not in results]
    if missing:
        logger.warning(
            "%s: %d of %d ground-truth queries have no result, e.g. %s",
            results_path,
            len(missing),
            len(gt),
            ", ".join(missing[:3]),
        )
    found = errors.subset(set(results))
    submitted = recall_table(found, thresholds) if found.names else {}
    return Evaluation(
        recall_table(errors, thresholds), submitted, errors, missing, sorted(set(results) - set(gt))
    )
