"""Benchmark runners: localize every slice or condition, resumably, and write the submission.

Extended CMU Seasons: each slice is localized against its own sparse model with its own
reference feature cache. RobotCar Seasons: every condition against the NVM reference model
with one shared cache. Each slice / condition is one run of the run driver
(:func:`s2dloc.localization.run.run_queries`) in its own folder: locked, guarded against stale
settings, resumable. The submission holds the successful queries, or every query with a pose
when ``output.write_failed`` (a best guess for every query).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from s2dloc.datasets.cmu import CMUSlice, load_slice, parse_slices
from s2dloc.datasets.robotcar import (
    QUERY_CONDITIONS,
    NvmModel,
    RobotCarSeasons,
    load_robotcar,
    parse_image_name,
)
from s2dloc.evaluation.recall import pose_errors, recall_table
from s2dloc.evaluation.submission import SubmissionReport, record_success, write_submission
from s2dloc.geometry import Pose
from s2dloc.localization.config import settings
from s2dloc.localization.lock import RunLock
from s2dloc.localization.map import Map, RefImage
from s2dloc.localization.query import Query
from s2dloc.localization.run import RunSpec, output_folder, run_queries

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    """How each slice / condition runs: settings, cache and results policy."""

    conf: dict
    rebuild_cache: bool = False
    discard_results: bool = False
    progress: bool = True


@dataclass
class BenchmarkRequest:
    """Inputs of ``s2dloc benchmark`` (see its ``--help``)."""

    dataset: str
    root: Path
    out: Path
    slices: str = "2-25"
    conditions: list[str] | None = None
    query_list: str | None = None
    extractor: str | None = "gnnet"
    preset: str = "default"
    conf: list[str] = field(default_factory=list)
    rebuild_cache: bool = False
    discard_results: bool = False

    @classmethod
    def from_args(cls, args) -> BenchmarkRequest:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(args).items() if k in names})


@dataclass
class BenchmarkResult:
    """The submission ``path``, its report and recall tables of slices with local poses."""

    path: Path
    report: SubmissionReport
    tables: dict[str, dict] = field(default_factory=dict)


def benchmark_command(req: BenchmarkRequest) -> BenchmarkResult:
    """Run the requested benchmark (``cmu`` or ``robotcar``) with the request's settings."""
    opts = RunOptions(
        settings(req.conf, req.extractor, req.preset), req.rebuild_cache, req.discard_results
    )
    if req.dataset == "robotcar":
        conditions = req.conditions or list(QUERY_CONDITIONS)
        return run_robotcar(req.root, conditions, req.out, opts, req.query_list)
    if req.dataset == "cmu":
        return run_cmu(req.root, req.slices, req.out, opts)
    raise ValueError(f"unknown benchmark {req.dataset!r}; expected 'cmu' or 'robotcar'")


def localize_resumable(
    map_: Map,
    queries: list,
    out: Path,
    opts: RunOptions,
    sources: dict[str, str],
    cache: Path | None = None,
) -> dict[str, dict]:
    """One resumable run of the run driver in ``out``; all records of its log by name."""
    spec = RunSpec(
        map_,
        queries,
        out,
        opts.conf,
        sources=sources,
        cache=cache,
        rebuild_cache=opts.rebuild_cache,
        discard_results=opts.discard_results,
        progress=opts.progress,
    )
    return run_queries(spec).records


def cmu_map(slice_: CMUSlice, validate: bool = True) -> Map:
    """The :class:`Map` of a CMU slice's sparse model, reference images under ``database/``."""
    return Map.from_colmap(slice_.reconstruction(), slice_.database_dir, validate=validate)


def cmu_queries(slice_: CMUSlice) -> list[Query]:
    """The slice's test images as :class:`Query` objects reading from ``query/``."""
    return [Query(n, slice_.camera(n), path=slice_.query_dir / n) for n in slice_.queries]


def run_cmu(root: str | Path, slices: str, out: str | Path, opts: RunOptions) -> BenchmarkResult:
    """Localize the test images of ``slices`` (e.g. ``"2-6"``) of Extended CMU Seasons.

    Returns the submission path, its report and, for slices whose query poses are available
    locally (``camera-poses/``), the recall table per slice (over the successful queries).
    """
    out = output_folder(out)
    per_slice, expected, tables = [], [], {}
    with RunLock(out):
        for s in parse_slices(slices):
            sl = load_slice(root, s)
            sources = {"benchmark": "cmu", "root": str(root), "slice": str(s)}
            records = localize_resumable(
                cmu_map(sl), cmu_queries(sl), out / f"slice{s}", opts, sources
            )
            per_slice.append(records)
            expected += sl.queries
            if sl.query_poses:
                found = {
                    n: (r["pose"][:4], r["pose"][4:])
                    for n, r in records.items()
                    if record_success(r)
                }
                tables[f"slice{s}"] = recall_table(pose_errors(found, sl.query_poses))["all"]
        path = out / "submission_cmu.txt"
        report = write_submission(
            path,
            per_slice,
            "cmu",
            queries=expected,
            write_failed=opts.conf["output"]["write_failed"],
        )
    return BenchmarkResult(path, report, tables)


def robotcar_map(dataset: RobotCarSeasons) -> Map:
    """The localization :class:`Map` of the RobotCar Seasons NVM reference model."""
    nvm = dataset.reference_model()
    ids: list[list[int]] = [[] for _ in nvm.names]
    kps: list[list] = [[] for _ in nvm.names]
    for pid, obs in enumerate(nvm.observations):
        for img, _, mx, my in obs:
            ids[int(img)].append(pid)
            kps[int(img)].append((mx, my))
    images = []
    for name, i, k in zip(nvm.names, ids, kps):
        cam = dataset.camera(name)
        pixels = NvmModel.pixels(np.asarray(k).reshape(-1, 2), cam.size.tolist())
        pose = Pose.from_quat_t(*nvm.poses[name])
        images.append(RefImage(name, cam, pose, np.asarray(i, np.int64), pixels))
    map_ = Map(images, np.arange(len(nvm.points3D)), nvm.points3D, dataset.image_dir)
    map_.validate()
    return map_


def robotcar_queries(dataset: RobotCarSeasons, names: list[str]) -> list[Query]:
    """:class:`Query` objects of ``names`` (``<condition>/<camera>/<timestamp>.jpg``) reading
    from ``images/``."""
    return [Query(n, dataset.camera(n), path=dataset.image_dir / n) for n in names]


def run_robotcar(
    root: str | Path,
    conditions: list[str],
    out: str | Path,
    opts: RunOptions,
    query_list: str | Path | None = None,
) -> BenchmarkResult:
    """Localize the query images of ``conditions`` (all found on disk, or those of
    ``query_list``) against the reference model; one submission for all conditions."""
    dataset = load_robotcar(root)
    map_ = robotcar_map(dataset)
    out = output_folder(out)
    listed = dataset.read_query_list(query_list) if query_list else None
    cache = out / f"cache-{opts.conf['extractor']}.h5"
    per_condition, expected = [], []
    with RunLock(out):
        for cond in conditions:
            names = (
                dataset.images(cond)
                if listed is None
                else [n for n in listed if parse_image_name(n)[0] == cond]
            )
            sources = {
                "benchmark": "robotcar",
                "root": str(root),
                "condition": cond,
                "query_list": str(query_list or ""),
            }
            per_condition.append(
                localize_resumable(
                    map_, robotcar_queries(dataset, names), out / cond, opts, sources, cache
                )
            )
            expected += names
        path = out / "submission_robotcar.txt"
        report = write_submission(
            path,
            per_condition,
            "robotcar",
            queries=expected,
            write_failed=opts.conf["output"]["write_failed"],
        )
    return BenchmarkResult(path, report)
