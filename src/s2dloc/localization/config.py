"""Localization settings: defaults, named presets and strict merging.

Settings are nested dicts (JSON-serialisable, saved next to results). They are merged with
:func:`s2dloc.utils.config.merge`: unknown keys, values of the wrong type (``fpnp.enabled=ture``,
``s2d.ratio=abc``) and values out of range (:data:`CHECKS`) raise
:class:`~s2dloc.utils.config.ConfigError` naming the key and the valid keys or values.
``fpnp.solver`` holds every field of :class:`s2dloc.fpnp.FPnPConfig` and is checked like the
rest.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from s2dloc.fpnp import FPnPConfig
from s2dloc.fpnp.config import SOLVER_CHECKS
from s2dloc.localization.verify import THRESHOLD_CHECKS, VerifyThresholds
from s2dloc.utils.config import Check, ConfigError, in_range, merge, one_of, parse_overrides
from s2dloc.utils.device import check_device

__all__ = [
    "CHECKS",
    "DEFAULTS",
    "PRESETS",
    "ConfigError",
    "max_side",
    "parse_overrides",
    "resolve",
    "settings",
]


DEFAULTS: dict[str, Any] = {
    "extractor": "default",
    # Where the extractor runs: auto (CUDA when available; under torchrun the LOCAL_RANK GPU
    # modulo the GPU count), cpu, cuda or cuda:N; matching, PnP and F-PnP run on the CPU
    # (s2dloc.utils.device).
    "device": "auto",
    # Images (map and queries) are resized for feature extraction so that their long side is
    # at most this many pixels (0: full resolution); cameras and poses stay as given.
    "resize_max": 1024,
    "retrieval": {
        "num_refs": 5,  # top-k references per query
        # Levels pooled into the global descriptor (-1: coarsest); null or "auto": the level
        # whose long side is nearest 90 px in the map's images (descriptors.global_level).
        "levels": None,
        "grid": 4,  # GeM over a grid x grid layout
        "gem_p": 3.0,
    },
    "s2d": {
        "match_stride": 8,  # correlate at the level with the closest stride
        "context": None,  # window radius of the hypercolumn (None/"auto": 1 if < 32 channels)
        "ratio": 0.9,  # keep if dist(best) / dist(second best outside radius) < ratio
        "radius": 2,  # matching-level pixels around the best match excluded for the second
        "min_similarity": 0.0,
        "refine": True,  # sub-pixel refinement on finer levels
        "refine_radius": 2,  # window radius at each finer level (its pixels)
        "refine_min_channels": 16,  # skip refinement on levels with too few channels
        "max_points": 3000,  # per reference
    },
    "pnp": {
        "max_error": 6.0,  # RANSAC threshold in query pixels
        "min_inliers": 12,
        "seed": 0,
        "max_trials": 10000,
        # RANSAC trials of a first pass on each reference; see pose_stages.rank_pnp for which
        # references then run up to max_trials (the same poses as max_trials alone gives)
        "first_trials": 2000,
        # re-estimate a top reference's pose at this many times its inliers' noise, at least
        # min_threshold pixels, and keep the tighter fit (s2dloc.localization.pnp.tighten_pose;
        # 0: off)
        "noise_factor": 3.0,
        "min_threshold": 1.0,
        # refine the best reference's pose on every retrieved reference's matches it explains
        # (s2dloc.localization.pose_stages.refine_on_all_references)
        "joint_refine": True,
        # put the second reference's pose first when its map points fit the query's dense
        # features better (s2dloc.localization.rerank)
        "dense_rerank": True,
    },
    "fpnp": {
        "enabled": True,
        "num_refs": 3,  # references (most PnP inliers first) whose points give residuals
        # Which of their points: "inliers" (matches within inlier_threshold px at the PnP pose)
        # or "visible" (every observation whose point projects into the query at that pose;
        # when that refinement is not trusted, it is redone with the inliers).
        "points": "visible",
        "inlier_threshold": 6.0,  # reprojection error (px) at the PnP pose for non-best refs
        "max_points": 4000,
        "max_rotation_change": 5.0,  # degrees: larger updates are rejected (flagged)
        "max_translation_change": 0.25,  # fraction of the mean point depth
        # Far starts (priors of `s2dloc refine` from GPS or odometry): the coarsest feature
        # level also pooled by these factors (s2dloc.features.coarse), and a yaw/pitch search
        # refining from the `keep` best of the grid (s2dloc.fpnp.start_search; 0: off).
        "coarse_levels": [],
        "start_search": {"keep": 0, "step_deg": 10.0, "steps": 2},
        "solver": dataclasses.asdict(FPnPConfig()),  # F-PnP solver keyword arguments
    },
    "output": {
        "write_failed": False,  # results.txt: also queries that failed verification
    },
    # when a pose counts as localized: the thresholds of s2dloc.localization.verify
    "verify": dataclasses.asdict(VerifyThresholds()),
}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {
        "retrieval": {"num_refs": 3},
        "s2d": {"max_points": 1500, "refine": False},
        "fpnp": {"num_refs": 2, "max_points": 2000},
    },
    "accurate": {"retrieval": {"num_refs": 10}, "s2d": {"match_stride": 4, "max_points": 5000}},
    "pnp-only": {"fpnp": {"enabled": False}},
    # `s2dloc refine` from priors up to ~30 deg off: coarse levels, 3 searched starts, and
    # caps on F-PnP's move that allow such a move.
    "far-prior": {
        "fpnp": {
            "coarse_levels": [2, 4, 8],
            "start_search": {"keep": 3},
            "max_rotation_change": 45.0,
            "max_translation_change": 2.0,
        }
    },
}


def _context(value: Any) -> str | None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
    return None if ok else "must be 'auto', null or an integer >= 0"


def _global_levels(value: Any) -> str | None:
    if value is None or value == "auto":
        return None
    ints = isinstance(value, list | tuple) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    )
    return None if ints and value else "must be null, 'auto' or a non-empty list of levels"


def _pooling_factors(value: Any) -> str | None:
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ok = ints and all(v >= 2 for v in value) and list(value) == sorted(set(value))
    return None if ok else "must be a list of increasing integers >= 2 (e.g. [2, 4, 8])"


def _resize_max(value: Any) -> str | None:
    return None if value == 0 or value >= 64 else "must be 0 (full resolution) or >= 64 (pixels)"


POSITIVE = in_range(0, lo_open=True)
CHECKS: dict[str, Check] = {
    "device": check_device,
    "resize_max": _resize_max,
    "retrieval.num_refs": in_range(1),
    "retrieval.levels": _global_levels,
    "retrieval.grid": in_range(1),
    "retrieval.gem_p": POSITIVE,
    "s2d.match_stride": in_range(1),
    "s2d.context": _context,
    "s2d.ratio": in_range(0, 1),
    "s2d.radius": in_range(0),
    "s2d.min_similarity": in_range(-1, 1),
    "s2d.refine_radius": in_range(0),
    "s2d.refine_min_channels": in_range(0),
    "s2d.max_points": in_range(1),
    "pnp.max_error": POSITIVE,
    "pnp.min_inliers": in_range(3),
    "pnp.max_trials": in_range(1),
    "pnp.first_trials": in_range(1),
    "pnp.noise_factor": in_range(0),
    "pnp.min_threshold": POSITIVE,
    "fpnp.num_refs": in_range(1),
    "fpnp.points": one_of("inliers", "visible"),
    "fpnp.inlier_threshold": POSITIVE,
    "fpnp.max_points": in_range(1),
    "fpnp.max_rotation_change": POSITIVE,
    "fpnp.max_translation_change": POSITIVE,
    "fpnp.coarse_levels": _pooling_factors,
    "fpnp.start_search.keep": in_range(0),
    "fpnp.start_search.step_deg": POSITIVE,
    "fpnp.start_search.steps": in_range(0, 5),
    **{f"fpnp.solver.{key}": check for key, check in SOLVER_CHECKS.items()},
    **{f"verify.{key}": check for key, check in THRESHOLD_CHECKS.items()},
}


def max_side(conf: dict) -> int | None:
    """The long side images are extracted at (``resize_max``; None: full resolution)."""
    return conf["resize_max"] or None


def resolve(conf: dict | None = None, preset: str = "default") -> dict:
    """Defaults <- preset <- ``conf``, strictly typed and range-checked (:data:`CHECKS`)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return merge(merge(DEFAULTS, PRESETS[preset]), conf or {}, checks=CHECKS)


def settings(
    overrides: list[str] | None = None, extractor: str | None = None, preset: str = "default"
) -> dict:
    """The resolved settings of a command line: ``--preset``, ``--conf KEY=VAL ...`` overrides
    and ``--extractor`` (which wins over ``extractor=`` in the overrides)."""
    user = parse_overrides(overrides)
    if extractor:
        user["extractor"] = extractor
    return resolve(user, preset)
