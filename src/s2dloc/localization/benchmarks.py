"""Benchmark runners: localize every slice of a dataset, resumably, and write the submission.

Extended CMU Seasons: each slice is localized against its own sparse model with its own
reference feature cache; per-slice logs make an interrupted run resume where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm import tqdm

from s2dloc.datasets.cmu import load_slice, parse_slices
from s2dloc.evaluation.recall import pose_errors, recall_table
from s2dloc.evaluation.submission import SubmissionReport, write_submission
from s2dloc.localization.io import append_log, read_log, write_results

logger = logging.getLogger(__name__)


def localize_resumable(map_, queries, out: Path, conf: dict, overwrite: bool = False) -> dict:
    """Localize the queries not yet in ``out/log.jsonl``; all records by name."""
    from s2dloc.localization.pipeline import Localizer

    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.jsonl"
    if overwrite and log.exists():
        log.unlink()
    done = read_log(log)
    todo = [q for q in queries if q.name not in done]
    logger.info("%s: %d queries, %d already done", out, len(queries), len(queries) - len(todo))
    if todo:
        loc = Localizer(
            map_, conf, cache=out / f"cache-{conf['extractor']}.h5", overwrite=overwrite
        )
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
        poses = {n: (r["pose"][:4], r["pose"][4:]) if _localized(r) else None
                 for n, r in records.items()}  # fmt: skip
        per_slice.append(poses)
        expected += sl.queries
        if sl.query_poses:
            found = {n: p for n, p in poses.items() if p is not None}
            tables[f"slice{s}"] = recall_table(pose_errors(found, sl.query_poses))["all"]
    path = out / "submission_cmu.txt"
    report = write_submission(path, per_slice, "cmu", queries=expected)
    return path, report, tables


def _localized(record: dict) -> bool:
    """A pose that is not the fallback reference pose and no error."""
    return bool(record.get("pose")) and not record.get("fallback") and not record.get("error")
