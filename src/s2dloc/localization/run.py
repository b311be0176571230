"""The resumable run driver shared by ``s2dloc localize``, ``refine`` and the benchmark runners.

:func:`run_queries` takes a :class:`RunSpec` and, in its output folder ``OUT``:

1. locks ``OUT`` (:class:`~s2dloc.localization.lock.RunLock`): a second run on it is refused;
2. with ``discard_results``, deletes the earlier results (log and result files);
3. guards against stale settings: ``OUT/config.json`` holds the settings of the results in
   ``OUT``; other settings are refused while results exist
   (:func:`s2dloc.utils.config.check_settings`);
4. merges the rank logs of an interrupted distributed run, checks the queries up front (bad ones
   are logged as failed, once) and skips those already logged;
5. localizes (or refines) the others, appending each record to ``OUT/log.jsonl`` as it finishes
   (under ``torchrun`` each rank appends to its own log, merged at the end);
6. writes ``results.txt`` (and ``results_pnp.txt`` when localizing) from the whole log: by
   default only the successful queries, every query with a pose when ``output.write_failed``.

The reference feature cache (default ``OUT/cache-EXTRACTOR.h5``) is built once and reused;
``rebuild_cache`` recomputes it and never touches the results.

Stage files (:mod:`s2dloc.localization.stages`): ``matches`` imports S2D matches;
``export_matches`` receives each query's matches as it finishes (one file per process under
``torchrun``, merged at the end); ``export_pairs`` is written from the whole log at the end.
Queries logged by an earlier run are not localized again, so their matches are exported only if
that run exported them.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from s2dloc.evaluation.submission import record_success
from s2dloc.localization.distributed import Context, merge_rank_logs, rank_log_path, rank_logs
from s2dloc.localization.io import append_log, write_results
from s2dloc.localization.lock import RunLock
from s2dloc.localization.map import Map
from s2dloc.localization.pipeline import Localizer
from s2dloc.localization.query import Query
from s2dloc.localization.stages import export_matches, export_pairs, merge_matches
from s2dloc.localization.validate import pending_queries
from s2dloc.utils.config import check_settings

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
SETTINGS_NAME = "config.json"
# Settings a run may resume with changed: where the extractor runs does not change the results.
FREE_ON_RESUME = frozenset({"conf.device"})
RESULT_FILES: dict[str, dict[str, str]] = {
    "localize": {"results.txt": "pose", "results_pnp.txt": "pnp_pose"},
    "refine": {"results.txt": "pose"},
}


@dataclass
class RunSpec:
    """The inputs of one resumable run.

    ``sources`` names the inputs (map, query list, ...) and is saved with the settings;
    ``skipped`` maps queries that could not be read to the reason (logged as failed);
    ``pairs`` gives the references of some queries (the others use global retrieval);
    ``matches`` an S2D matches file to use instead of matching; ``export_pairs`` /
    ``export_matches`` where to write the pairs and the matches of the run.
    """

    map: Map
    queries: list[Query]
    out: Path
    conf: dict
    mode: str = "localize"
    sources: dict[str, str] = field(default_factory=dict)
    cache: Path | None = None
    pairs: dict[str, list[str]] | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    rebuild_cache: bool = False
    discard_results: bool = False
    progress: bool = True
    overlap: bool = True  # the next queries' extraction during this one's (Localizer.localize_all)
    extractor: Any = None
    matches: Path | None = None
    export_pairs: Path | None = None
    export_matches: Path | None = None

    def __post_init__(self):
        if self.mode not in RESULT_FILES:
            raise ValueError(f"run mode {self.mode!r} must be one of {sorted(RESULT_FILES)}")
        self.out = Path(self.out)

    @property
    def log_path(self) -> Path:
        return self.out / LOG_NAME

    @property
    def cache_path(self) -> Path:
        return Path(self.cache) if self.cache else self.out / f"cache-{self.conf['extractor']}.h5"

    @property
    def settings(self) -> dict:
        return {"mode": self.mode, **self.sources, "conf": self.conf}


@dataclass
class RunSummary:
    """What a run did: ``queries`` checked, ``reused`` from earlier runs, ``computed`` now; the
    counts of the whole log; ``written`` poses in ``results.txt``."""

    out: Path
    queries: int = 0
    reused: int = 0
    computed: int = 0
    successes: int = 0
    pnp_successes: int = 0
    fpnp_successes: int = 0
    errors: int = 0
    written: int = 0
    records: dict[str, dict] = field(default_factory=dict, repr=False)
    main: bool = True  # False on the other ranks of a distributed run (their own count only)

    def line(self) -> str:
        return (
            f"{len(self.records)} queries ({self.computed} new, {self.reused} from earlier runs):"
            f" {self.successes} localized (verified); {self.pnp_successes} with a PnP pose,"
            f" {self.fpnp_successes} refined by F-PnP, {self.errors} errors;"
            f" {self.written} poses in {self.out / 'results.txt'}"
        )


def output_folder(out: str | Path, argument: str = "--out") -> Path:
    """``out`` as a folder (created); an existing file is refused naming ``argument``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{argument} {out} is an existing file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def discard_results(spec: RunSpec) -> None:
    """Delete the log, rank logs and result files of ``spec.out`` (not the cache)."""
    paths = [spec.log_path, *rank_logs(spec.log_path)]
    paths += [spec.out / name for names in RESULT_FILES.values() for name in names]
    for p in paths:
        p.unlink(missing_ok=True)
    logger.info("%s: earlier results discarded", spec.out)


def _start(spec: RunSpec) -> tuple[list[Query], list[Query]]:
    """Rank 0's setup (under the lock): discard, settings guard, merge, up-front checks."""
    if spec.discard_results:
        discard_results(spec)
    has_results = spec.log_path.exists() or bool(rank_logs(spec.log_path))
    check_settings(
        spec.out / SETTINGS_NAME,
        spec.settings,
        force=not has_results,
        hint="use --discard-results (deletes them) or another --out",
        free=FREE_ON_RESUME,
    )
    merge_rank_logs(spec.log_path, [q.name for q in spec.queries])
    valid, todo = pending_queries(spec.queries, spec.conf, spec.log_path, dict(spec.skipped))
    logger.info("%s: %d queries, %d already done", spec.out, len(valid), len(valid) - len(todo))
    if spec.pairs is not None:
        missing = [q.name for q in valid if q.name not in spec.pairs]
        if missing:
            logger.warning(
                "the pairs file lists no references for %d of %d queries (e.g. %s): "
                "global retrieval for those",
                len(missing),
                len(valid),
                ", ".join(missing[:3]),
            )
    return valid, todo


def _agree(ctx: Context, err: Exception | None, what: str) -> None:
    """Raise on every rank when any rank failed (rank 0's own error on rank 0)."""
    if not ctx.agree(err is None):
        raise err or ValueError(f"another process failed to {what} (see its log)")


def _open_localizer(spec: RunSpec, build: bool) -> Localizer:
    """The run's localizer: ``build`` (main process) builds or updates the cache with progress;
    otherwise the cache built by the main process is only read."""
    return Localizer(
        spec.map,
        spec.conf,
        extractor=spec.extractor,
        cache=spec.cache_path,
        pairs=spec.pairs,
        overwrite=build and spec.rebuild_cache,
        progress=build and spec.progress,
        build=build,
        matches=spec.matches,
    )


def _localizer(spec: RunSpec, ctx: Context, needed: bool) -> Localizer | None:
    """Rank 0 builds the cache while the others wait; then every rank that needs it reads it."""
    loc, err = None, None
    if needed and ctx.is_main:
        try:
            loc = _open_localizer(spec, build=True)
        except (ValueError, FileNotFoundError) as e:
            err = e
    _agree(ctx, err, "build the reference feature cache")
    return loc


def _localize(spec: RunSpec, ctx: Context, todo: list[Query]) -> int:
    """Localize this rank's share of ``todo``, appending each record as it finishes."""
    mine = ctx.shard(todo)
    loc = _localizer(spec, ctx, bool(todo) or spec.rebuild_cache)
    if mine and loc is None:
        loc = _open_localizer(spec, build=False)
    log = rank_log_path(spec.log_path, ctx.rank) if ctx.active else spec.log_path
    out = spec.export_matches
    if out is not None and ctx.active:
        out = rank_log_path(out, ctx.rank)
    desc = f"{spec.mode} [{ctx.rank}/{ctx.world}]" if ctx.active else spec.mode
    refine = spec.mode == "refine"
    results = loc.localize_all(mine, refine, spec.overlap) if mine else []  # no Localizer
    show = spec.progress and ctx.is_main
    for res in tqdm(results, desc=desc, total=len(mine), disable=not show):
        if out is not None:
            export_matches(out, res)
        append_log(log, res)
    return len(mine)


def _finish(spec: RunSpec, valid: int, computed: int) -> RunSummary:
    """Merge the rank logs, write the result files and count the whole log."""
    records = merge_rank_logs(spec.log_path, [q.name for q in spec.queries])
    if spec.export_matches is not None:
        merge_matches(spec.export_matches, rank_logs(spec.export_matches))
    if spec.export_pairs is not None:
        export_pairs(spec.export_pairs, records)
    write_failed = bool(spec.conf["output"]["write_failed"])
    for name, key in RESULT_FILES[spec.mode].items():
        write_results(spec.out / name, records, key, write_failed=write_failed or key != "pose")
    rs = records.values()
    summary = RunSummary(
        spec.out,
        valid,
        valid - computed,
        computed,
        successes=sum(record_success(r) for r in rs),
        pnp_successes=sum(bool(r.get("pnp_success")) for r in rs),
        fpnp_successes=sum(bool(r.get("fpnp_success")) for r in rs),
        errors=sum(bool(r.get("error")) for r in rs),
        written=len((spec.out / "results.txt").read_text().splitlines()),
        records=records,
    )
    logger.info("%s", summary.line())
    return summary


def run_queries(spec: RunSpec, ctx: Context | None = None) -> RunSummary:
    """Run ``spec`` resumably (see the module doc); under ``torchrun`` pass the rank's context.

    Only rank 0 returns the summary of the whole log; other ranks return their own count.
    """
    ctx = ctx or Context()
    output_folder(spec.out)
    lock = RunLock(spec.out)
    err, valid, todo = None, [], []
    with contextlib.ExitStack() as stack:
        if ctx.is_main:
            try:
                stack.enter_context(lock)
                valid, todo = _start(spec)
            except (ValueError, FileNotFoundError) as e:
                err = e
        _agree(ctx, err, "set up the run")
        if not ctx.is_main:
            valid, todo = pending_queries(spec.queries, spec.conf, spec.log_path)
        computed = _localize(spec, ctx, todo)
        ctx.barrier()
        if not ctx.is_main:
            return RunSummary(spec.out, len(valid), computed=computed, main=False)
        return _finish(spec, len(valid), len(todo))
