"""Localization settings: defaults, named presets, merging and ``key=value`` overrides.

Settings are nested dicts (JSON-serialisable, saved next to results). Unknown keys are errors.
"""

from __future__ import annotations

import copy
import json
from typing import Any

DEFAULTS: dict[str, Any] = {
    "extractor": "photometric",
    "retrieval": {
        "num_refs": 5,  # top-k references per query
        "levels": [-1],  # levels pooled into the global descriptor (-1: coarsest)
        "grid": 4,  # GeM over a grid x grid layout
        "gem_p": 3.0,
    },
    "s2d": {
        "match_stride": 8,  # correlate at the level with the closest stride
        "context": "auto",  # window radius of the hypercolumn (auto: 1 if < 32 channels)
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
    },
    "fpnp": {
        "enabled": True,
        "num_refs": 3,  # references whose inlier points give residuals
        "inlier_threshold": 6.0,  # reprojection error (px) at the PnP pose for non-best refs
        "max_points": 4000,
        "max_rotation_change": 5.0,  # degrees: larger updates are rejected (flagged)
        "max_translation_change": 0.25,  # fraction of the mean point depth
        "solver": {"loss": "cauchy", "max_iterations": 50},
    },
}

PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "fast": {
        "retrieval": {"num_refs": 3},
        "s2d": {"max_points": 1500, "refine": False},
        "fpnp": {"num_refs": 2, "max_points": 2000},
    },  # fmt: skip
    "accurate": {"retrieval": {"num_refs": 10}, "s2d": {"match_stride": 4, "max_points": 5000}},
    "pnp-only": {"fpnp": {"enabled": False}},
}


def merge(base: dict, override: dict, path: str = "", strict: bool = True) -> dict:
    """A deep copy of ``base`` updated with ``override`` (unknown keys raise ``ValueError``)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        where = f"{path}{key}"
        if strict and key not in out and not path.startswith("fpnp.solver"):
            raise ValueError(f"unknown setting {where!r}; known: {sorted(out)}")
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, f"{where}.", strict)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: list[str]) -> dict:
    """``["s2d.ratio=0.8", "fpnp.enabled=false"]`` -> nested dict (values parsed as JSON)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"setting {item!r} must be KEY=VALUE (e.g. s2d.ratio=0.8)")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def resolve(conf: dict | None = None, preset: str = "default") -> dict:
    """Defaults <- preset <- ``conf``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return merge(merge(DEFAULTS, PRESETS[preset]), conf or {})
