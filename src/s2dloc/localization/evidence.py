"""What a query's verdict is taken from, as :class:`~s2dloc.localization.query.QueryResult`
keeps it and ``log.jsonl`` stores it: the PnP and F-PnP statistics
(:mod:`s2dloc.localization.verify` computes and judges them), the dense comparison of the two
best PnP poses, and F-PnP's own record. Each converts to JSON (NaN written as ``null``) and
back, so a log can be judged again with other thresholds.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

from s2dloc.utils.io import strict_json


def _from_json(cls, data: dict, what: str):
    """``cls(**data)`` with ``null`` read back as NaN for float fields; unknown or missing
    required keys are refused, naming ``what`` and the valid keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown} (valid: {sorted(known)})")
    required = [
        n for n, f in known.items() if f.default is MISSING and f.default_factory is MISSING
    ]
    missing = [n for n in required if n not in data]
    if missing:
        raise ValueError(f"{what}: missing keys {missing}")
    return cls(**{name: _null_to_nan(v, str(known[name].type)) for name, v in data.items()})


def _null_to_nan(value: Any, typ: str) -> Any:
    """A JSON value of a field of type ``typ`` with ``null`` read back as NaN where a float
    was written (in lists too); None stays None for optional fields."""
    if value is None:
        return math.nan if typ == "float" else None
    if isinstance(value, list) and "float" in typ:
        return [_null_to_nan(v, "list[float]" if isinstance(v, list) else "float") for v in value]
    return value


@dataclass
class PnPStats:
    """Evidence for a PnP pose (``nan`` where not available)."""

    num_matches: int
    num_inliers: int
    inlier_ratio: float
    grid_coverage: float  # fraction of 4 x 4 image cells holding an inlier
    hull_fraction: float  # convex hull area of the inliers / image area
    residual_median: float  # pixels
    max_error: float  # the RANSAC inlier threshold (pixels)
    residual_p90: float
    depth: float  # median inlier depth at the pose (scene units)
    second_support: float = math.nan  # 2nd best reference's inliers / best's
    second_rotation: float = math.nan  # degrees between the two poses
    second_translation: float = math.nan  # centre distance / depth
    second_cross: float = math.nan  # 2nd reference's matches fitting the best pose / its inliers


@dataclass
class FPnPStats:
    """Evidence for an F-PnP update of a PnP pose."""

    solver_success: bool
    solver_message: str
    num_points: int
    num_valid: int
    cost_ratio: float  # final / initial
    rotation_std: float  # degrees
    translation_std: float  # fraction of depth
    rotation_change: float  # degrees
    translation_change: float  # fraction of depth
    move_sigma: float  # Mahalanobis distance of the move under the PnP covariance
    # the solver's median own / other-reference squared residual at the final pose (NaN: unknown)
    match_ratio: float = math.nan


@dataclass
class RerankRecord:
    """The dense comparison of the two best PnP poses (:mod:`s2dloc.localization.rerank`):
    their ``references`` (most inliers first), the median squared residual of the map points'
    features at each pose, the poses' difference (degrees, fraction of the scene depth) and
    whether the second was put first."""

    references: list[str]
    residual_median: list[float]
    rotation: float
    translation: float
    swapped: bool


@dataclass
class Evidence:
    """The statistics a query's verdict is taken from (None where that step did not run):
    ``pnp`` of the best reference's PnP pose, ``fpnp`` of F-PnP's update, ``final`` the best
    reference's matches at F-PnP's pose, ``fpnp_visible`` a refused refinement on every point
    the references see, ``rerank`` the dense comparison of the two best PnP poses."""

    pnp: PnPStats | None = None
    fpnp: FPnPStats | None = None
    final: PnPStats | None = None
    fpnp_visible: FPnPStats | None = None
    rerank: RerankRecord | None = None

    _TYPES: ClassVar[dict[str, type]] = {
        "pnp": PnPStats,
        "fpnp": FPnPStats,
        "final": PnPStats,
        "fpnp_visible": FPnPStats,
        "rerank": RerankRecord,
    }

    def to_json(self) -> dict:
        """The parts that are set, NaN as None."""
        return {
            f.name: strict_json(asdict(getattr(self, f.name)))
            for f in fields(self)
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_json(cls, data: dict | None, what: str = "verify") -> Evidence:
        """The evidence of a log record's ``verify`` object (None or ``{}``: none)."""
        parts = vars(_from_json(cls, data or {}, what))  # still JSON objects
        return cls(
            **{
                k: None if v is None else _from_json(cls._TYPES[k], v, f"{what}.{k}")
                for k, v in parts.items()
            }
        )


@dataclass
class FPnPRecord:
    """What F-PnP did for a query: the points it refined (``num_points``; ``points`` names
    the set, "visible" or "inliers", and ``channels`` the fewest feature channels of its
    levels), LM ``iterations`` per level, the robust cost before and after, the rotation
    change (degrees), the refined ``pose`` ``[qw, qx, qy, qz, tx, ty, tz]``, why it was not
    kept (``message``, "" when kept) and, when recorded, the cost of every LM iteration per
    level (coarse to fine)."""

    num_points: int = 0
    iterations: list[int] = field(default_factory=list)
    cost_init: float = math.nan
    cost_final: float = math.nan
    rotation_change_deg: float = math.nan
    pose: list[float] | None = None
    message: str = ""
    cost_history: list[list[float]] | None = None
    points: str = ""
    channels: int = 0

    def to_json(self) -> dict:
        return strict_json(asdict(self))

    @classmethod
    def from_json(cls, data: dict | None, what: str = "fpnp") -> FPnPRecord | None:
        """The record of a log record's ``fpnp`` object (None or ``{}``: F-PnP did not run)."""
        return _from_json(cls, data, what) if data else None
