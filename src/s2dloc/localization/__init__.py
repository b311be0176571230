"""Sparse-to-dense localization: map, cached reference features, retrieval, S2D matching,
PnP-RANSAC and F-PnP refinement."""

from s2dloc.localization.cache import build_cache, load_cache
from s2dloc.localization.config import DEFAULTS, PRESETS, resolve
from s2dloc.localization.map import Map, RefImage
from s2dloc.localization.pipeline import Localizer, localize
from s2dloc.localization.query import Query, QueryResult

__all__ = [
    "DEFAULTS",
    "PRESETS",
    "Localizer",
    "Map",
    "Query",
    "QueryResult",
    "RefImage",
    "build_cache",
    "load_cache",
    "localize",
    "resolve",
]
