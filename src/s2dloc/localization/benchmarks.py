"""Benchmark runners: localize every slice or condition, resumably, and write the submission.

Extended CMU Seasons: each slice is localized against its own sparse model with its own
reference feature cache. RobotCar Seasons: every condition against the NVM reference model
with one shared cache. Per-slice / per-condition logs make an interrupted run resume.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from s2dloc.datasets.cmu import load_slice, parse_slices
from s2dloc.evaluation.recall import pose_errors, recall_table
from s2dloc.evaluation.submission import SubmissionReport, write_submission
from s2dloc.localization.io import append_log, read_log, write_results
from s2dloc.localization.validate import pending_queries

logger = logging.getLogger(__name__)


def localize_resumable(map_, queries, out: Path, conf: dict, overwrite: bool = False,
                       cache: Path | None = None) -> dict:  # fmt: skip
    """Localize the queries not yet in ``out/log.jsonl``; all records by name."""
    from s2dloc.localization.pipeline import Localizer

    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.jsonl"
    if overwrite and log.exists():
        log.unlink()
    queries, todo = pending_queries(queries, conf, log)  # bad images: logged as failed
    logger.info("%s: %d queries, %d already done", out, len(queries), len(queries) - len(todo))
    if todo:
        cache = cache or out / f"cache-{conf['extractor']}.h5"
        loc = Localizer(map_, conf, cache=cache, overwrite=overwrite)
        for q in tqdm(todo, desc=out.name):
            append_log(log, loc.localize(q))
    records = read_log(log)
    write_results(out / "results.txt", records, "pose")
    return records


def run_cmu(root: str | Path, slices: str, out: str | Path, conf: dict,
            overwrite: bool = False) -> tuple[Path, SubmissionReport, dict]:  # fmt: skip
    """Localize the test images of ``slices`` (e.g. ``"2-6"``) of Extended CMU Seasons.

    Returns the submission path, its report and, for slices whose query poses are available
    locally (``camera-poses/``), the recall table per slice.
    """
    out = Path(out)
    per_slice, expected, tables = [], [], {}
    for s in parse_slices(slices):
        sl = load_slice(root, s)
        records = localize_resumable(sl.load_map(), sl.pipeline_queries(), out / f"slice{s}",
                                     conf, overwrite)  # fmt: skip
        poses = _poses(records)
        per_slice.append(poses)
        expected += sl.queries
        if sl.query_poses:
            found = {n: p for n, p in poses.items() if p is not None}
            tables[f"slice{s}"] = recall_table(pose_errors(found, sl.query_poses))["all"]
    path = out / "submission_cmu.txt"
    report = write_submission(path, per_slice, "cmu", queries=expected)
    return path, report, tables


def robotcar_map(dataset):
    """The localization :class:`Map` of the RobotCar Seasons NVM reference model."""
    from s2dloc.datasets.robotcar import NvmModel
    from s2dloc.geometry import Pose
    from s2dloc.localization.map import Map, RefImage

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


def run_robotcar(root: str | Path, conditions: list[str], out: str | Path, conf: dict,
                 query_list: str | Path | None = None,
                 overwrite: bool = False) -> tuple[Path, SubmissionReport]:  # fmt: skip
    """Localize the query images of ``conditions`` (all found on disk, or those of
    ``query_list``) against the reference model; one submission for all conditions."""
    from s2dloc.datasets.robotcar import load_robotcar, parse_image_name

    dataset = load_robotcar(root)
    map_ = robotcar_map(dataset)
    out = Path(out)
    listed = dataset.read_query_list(query_list) if query_list else None
    cache = out / f"cache-{conf['extractor']}.h5"
    per_condition, expected = [], []
    for cond in conditions:
        names = dataset.images(cond) if listed is None else [
            n for n in listed if parse_image_name(n)[0] == cond]  # fmt: skip
        records = localize_resumable(map_, dataset.pipeline_queries(names), out / cond, conf,
                                     overwrite, cache)  # fmt: skip
        per_condition.append(_poses(records))
        expected += names
    path = out / "submission_robotcar.txt"
    return path, write_submission(path, per_condition, "robotcar", queries=expected)


def _poses(records: dict) -> dict:
    """``{name: (q, t)}`` of localized records, None for the others."""
    return {n: (r["pose"][:4], r["pose"][4:]) if _localized(r) else None
            for n, r in records.items()}  # fmt: skip


def _localized(record: dict) -> bool:
    """A pose that is not the fallback reference pose and no error."""
    return bool(record.get("pose")) and not record.get("fallback") and not record.get("error")
