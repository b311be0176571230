"""What ``s2dloc localize`` and ``s2dloc refine`` do, as library calls on a plain request.

:class:`RunRequest` holds the command-line inputs (paths and strings); :func:`localize_command`
resolves the settings, loads the map and the queries, and hands one :class:`RunSpec` to the run
driver :func:`s2dloc.localization.run.run_queries` (sharded over processes under ``torchrun``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s2dloc.datasets.h5_files import open_h5
from s2dloc.localization import distributed
from s2dloc.localization.config import settings
from s2dloc.localization.io import read_queries
from s2dloc.localization.retrieval import pairs_from_file
from s2dloc.localization.run import RunSpec, RunSummary, output_folder, run_queries
from s2dloc.localization.validate import attach_priors, load_map
from s2dloc.mapping.intrinsics import DEFAULT_FOCAL_FACTOR
from s2dloc.utils.config import from_namespace


@dataclass
class RunRequest:
    """Inputs of ``s2dloc localize`` / ``refine`` (see their ``--help``)."""

    map: str
    queries: str
    out: str
    images: str | None = None
    query_images: str | None = None
    camera: str | None = None
    default_focal_factor: float = DEFAULT_FOCAL_FACTOR
    extractor: str | None = None
    preset: str = "default"
    conf: list[str] = field(default_factory=list)
    cache: str | None = None
    pairs: str | None = None
    matches: str | None = None
    export_pairs: str | None = None
    export_matches: str | None = None
    poses: str | None = None
    num_queries: int | None = None
    rebuild_cache: bool = False
    discard_results: bool = False
    one_at_a_time: bool = False

    @classmethod
    def from_args(cls, args) -> RunRequest:
        """From an ``argparse.Namespace`` (attributes of the same names; others ignored)."""
        return from_namespace(cls, args)


def build_spec(req: RunRequest, mode: str = "localize") -> RunSpec:
    """Settings, map, queries (and priors / pairs) of a request, checked, as a :class:`RunSpec`."""
    conf = settings(req.conf, req.extractor, req.preset)
    out = output_folder(req.out)
    map_ = load_map(req.map, req.images)
    skipped: dict[str, str] = {}
    queries = read_queries(
        req.queries,
        req.query_images or map_.image_root,
        req.camera,
        model=map_,
        skipped=skipped,
        default_focal_factor=req.default_focal_factor,
    )
    if req.num_queries is not None:
        queries = queries[: req.num_queries]
    sources = {"map": str(req.map), "queries": str(req.queries)}
    if mode == "refine":
        if not req.poses:
            raise ValueError("refine needs --poses (initial poses, name qw qx qy qz tx ty tz)")
        queries = attach_priors(queries, req.poses)
        sources["poses"] = str(req.poses)
    pairs = pairs_from_file(req.pairs, set(map_.names)) if req.pairs else None
    if req.matches:
        try:  # opened before any query runs (and would be logged as failed)
            open_h5(req.matches).close()
        except FileNotFoundError as err:
            raise FileNotFoundError(f"--matches {err}") from None
        except ValueError as err:
            raise ValueError(f"--matches {err}; expected s2dloc's 2D-3D match file") from None
        sources["matches"] = str(req.matches)
    return RunSpec(
        map_,
        queries,
        out,
        conf,
        mode,
        sources=sources,
        cache=Path(req.cache) if req.cache else None,
        pairs=pairs,
        skipped=skipped,
        rebuild_cache=req.rebuild_cache,
        discard_results=req.discard_results,
        overlap=not req.one_at_a_time,
        matches=Path(req.matches) if req.matches else None,
        export_pairs=Path(req.export_pairs) if req.export_pairs else None,
        export_matches=Path(req.export_matches) if req.export_matches else None,
    )


def localize_command(req: RunRequest, mode: str = "localize") -> RunSummary:
    """Localize (or, with ``mode="refine"``, refine) the request's queries resumably; under
    ``torchrun`` every process takes a shard (see :mod:`s2dloc.localization.distributed`)."""
    ctx = distributed.init()
    try:
        return run_queries(build_spec(req, mode), ctx)
    finally:
        distributed.shutdown()
