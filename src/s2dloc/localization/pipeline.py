"""The localization pipeline: retrieval -> sparse-to-dense matching -> PnP-RANSAC (best of the
top-k references) -> F-PnP refinement with inlier points of the top references.

Example::

    map_ = Map.load("outputs/world")
    results = localize(map_, queries, {"retrieval": {"num_refs": 5}}, cache="cache.h5")

``pairs`` replaces retrieval and ``matches`` (an S2D matches file) replaces retrieval and
matching for the queries they list (see :mod:`s2dloc.localization.stages`).
The PnP and F-PnP steps and their verdicts are in :mod:`s2dloc.localization.pose_stages`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from s2dloc.fpnp import FeatureMetricPnP, FPnPResult
from s2dloc.fpnp.start_search import search_and_refine
from s2dloc.localization import descriptors as D
from s2dloc.localization import stages as S
from s2dloc.localization import verify as V
from s2dloc.localization.cache import (
    DescriptorSpec,
    build_cache,
    compute_all,
    fpnp_levels,
    load_cache,
    resolve_global_levels,
    signature,
)
from s2dloc.localization.config import ConfigError, max_side, resolve
from s2dloc.localization.evidence import FPnPRecord
from s2dloc.localization.map import Map
from s2dloc.localization.pnp import PnPResult
from s2dloc.localization.pose_stages import (
    PnPCheck,
    PoseJudge,
    accept_fpnp,
    fpnp_observations,
    gather_points,
    rank_pnp,
    refine_on_all_references,
)
from s2dloc.localization.query import Query, QueryResult
from s2dloc.localization.rerank import rerank_by_features
from s2dloc.localization.retrieval import Retrieval
from s2dloc.localization.s2d import RefMatches, match_batch
from s2dloc.utils.device import resolve_device

logger = logging.getLogger(__name__)


class Localizer:
    """Holds the map, its cached reference features, the extractor and the resolved config."""

    def __init__(
        self,
        map_: Map,
        conf: dict | None = None,
        extractor=None,
        cache: str | Path | None = None,
        pairs: dict[str, list[str]] | None = None,
        preset: str = "default",
        overwrite: bool = False,
        progress: bool = True,
        build: bool = True,
        matches: str | Path | None = None,
    ):
        self.map = map_
        self.matches_file = None if matches is None else Path(matches)
        conf = resolve(conf, preset)
        check_start_search(conf["fpnp"]["start_search"])
        # An extractor passed in stays where it is; one loaded by name goes to conf["device"].
        if extractor is None:
            extractor = D.load_extractor(conf["extractor"]).to(resolve_device(conf["device"]))
        self.extractor = extractor.eval()
        self.conf = resolve_global_levels(conf, self.extractor, map_)
        if cache is None:
            self.refs = compute_all(map_, self.extractor, self.conf, progress)
        else:  # build=False: only read a cache built by another process (see distributed.py)
            sig = signature(self.conf, self.extractor)  # hashes the weights: once
            if build:
                build_cache(map_, self.extractor, cache, self.conf, overwrite, progress, sig=sig)
            self.refs = load_cache(map_, cache, self.conf, self.extractor, sig)
        names = map_.names
        self.retrieval = Retrieval(names, torch.stack([self.refs[n].global_desc for n in names]))
        self.pairs = pairs or {}
        self.solver = FeatureMetricPnP(**self.conf["fpnp"]["solver"])
        c = self.conf["fpnp"]
        self.thresholds = dataclasses.replace(
            V.VerifyThresholds.from_conf(self.conf.get("verify", {})),
            fpnp_max_rotation_change=c["max_rotation_change"],
            fpnp_max_translation_change=c["max_translation_change"],
        )
        # Record F-PnP's cost per iteration in each result (runs the solver's torch path).
        self.record_history = False

    # ------------------------------------------------------------------ stages
    def features(self, query: Query) -> S.QueryFeatures:
        """Query levels, descriptor spec, dense hypercolumn and global descriptor."""
        image = query.load()
        maps = self.extractor.extract(image, max_side(self.conf))
        spec = DescriptorSpec.from_maps(maps, self.extractor.strides, self.conf)
        dense = D.dense_descriptors(maps, spec.levels, spec.match, spec.context)
        r = self.conf["retrieval"]
        glob = D.global_descriptor(maps, spec.global_levels, r["grid"], r["gem_p"])
        return S.QueryFeatures(maps, spec, dense, glob)

    def retrieve(self, query: Query, glob: torch.Tensor) -> list[tuple[str, float]]:
        k = int(self.conf["retrieval"]["num_refs"])
        if query.name in self.pairs:
            return [(n, float("nan")) for n in self.pairs[query.name][:k]]
        return self.retrieval(glob, k)

    def _subset(self, n: int) -> np.ndarray:
        m = int(self.conf["s2d"]["max_points"])
        return np.arange(n) if n <= m else np.linspace(0, n - 1, m).round().astype(np.int64)

    def match(
        self, names: list[str], maps: list[torch.Tensor], dense: torch.Tensor, size: tuple[int, int]
    ) -> dict[str, RefMatches]:
        """S2D matches of the references ``names`` in the query, all references in one batch."""
        subs = [self._subset(len(self.refs[n].point3D_ids)) for n in names]
        refs = [self.refs[n] for n in names]
        ms = match_batch(
            [r.descriptors[s] for r, s in zip(refs, subs)],
            dense,
            maps,
            [[f[s] for f in r.features] for r, s in zip(refs, subs)],
            size,
            self.conf["s2d"],
        )
        out = {}
        for name, r, sub, m in zip(names, refs, subs, ms):
            obs = sub[m.idx]
            ids = r.point3D_ids[obs]
            out[name] = RefMatches(m.p2d, obs, ids, self.map.xyz(ids), m.similarity, m.ratio)
        return out

    def correspondences(
        self, query: Query, feats: S.QueryFeatures, res: QueryResult
    ) -> dict[str, RefMatches]:
        """Retrieval and S2D matching (sets ``res.refs``), or the query's imported matches."""
        t = time.perf_counter()
        imported = None
        if self.matches_file is not None:
            imported = S.import_matches(self.matches_file, query.name, self.map)
        if imported is not None:
            res.refs = [(n, float("nan")) for n in imported]
            res.timings["match"] = time.perf_counter() - t
            return imported
        res.refs = self.retrieve(query, feats.glob)
        res.timings["retrieve"] = time.perf_counter() - t
        t = time.perf_counter()
        size = (int(query.camera.size[0]), int(query.camera.size[1]))
        out = self.match([n for n, _ in res.refs], feats.maps, feats.dense, size)
        res.timings["match"] = time.perf_counter() - t
        return out

    def pnp(
        self, query: Query, per_ref: dict[str, RefMatches], res: QueryResult
    ) -> list[tuple[str, PnPResult]]:
        """PnP-RANSAC per reference (see :func:`~s2dloc.localization.pose_stages.rank_pnp`)."""
        rival = self.thresholds.agree_min_support if self.thresholds.enabled else 0.0
        return rank_pnp(query, per_ref, res, self.conf["pnp"], rival)

    def _rerank(
        self, query: Query, maps: list, ranked: list[tuple[str, PnPResult]], res: QueryResult
    ) -> list[tuple[str, PnPResult]]:
        """The two best PnP poses in the order of their dense feature fit
        (:func:`~s2dloc.localization.rerank.rerank_by_features`; ``res.verify.rerank``)."""
        c = self.conf["fpnp"]
        levels = fpnp_levels(maps, self.conf)
        ranked, record = rerank_by_features(
            query, levels, ranked, self.refs, self.map, c["num_refs"], c["max_points"]
        )
        res.verify.rerank = record
        return ranked

    # ------------------------------------------------------------------ main entry points
    def localize(self, query: Query, features: Future | None = None) -> QueryResult:
        """Localize one query (errors are caught, logged and recorded in the result).

        ``features``: the query's :meth:`features` already under way, as
        :meth:`localize_all` starts them (a future of ``(features, seconds)``)."""
        res = QueryResult(query.name)
        try:
            self._localize(query, res, features)
        except Exception as err:  # a bad query must never abort the others
            _record_error(res, err)
        return res

    def localize_all(
        self, queries: Iterable[Query], refine: bool = False, overlap: bool = True
    ) -> Iterator[QueryResult]:
        """:meth:`localize` (or with ``refine``, :meth:`refine`) of each query in turn, while
        background threads at the lowest scheduling priority read the next queries' images and
        extract their features (``overlap``; else one query at a time).

        After extraction a query's stages leave cores idle much of the time (PnP's last
        RANSAC run, F-PnP and the verdict run on one thread), and the next extractions fill
        them (the first query's is the caller's, with every thread). On the CPU two
        background extractions run at once with half the threads each
        (:func:`extraction_workers`): an extraction split over every core stalls whenever the
        foreground takes one of them. Results are those of one call per query; each
        ``extract`` time is the extraction's own. On a machine kept busy by other programs the
        background extraction waits for them: ``overlap=False`` (``--one-at-a-time``) avoids
        that."""
        run = self.refine if refine else self.localize
        if not overlap:
            yield from map(run, queries)
            return
        extract = self._extract_maps if refine else self.features
        threads = torch.get_num_threads()
        workers, each = extraction_workers(threads, _device_of(self.extractor))
        init = partial(_background_worker, each)
        try:
            with ThreadPoolExecutor(
                workers, thread_name_prefix="s2dloc-extract", initializer=init
            ) as pool:
                it, pending = iter(queries), deque()

                def fill() -> None:  # keep `workers` extractions under way
                    while len(pending) < workers and (query := next(it, None)) is not None:
                        pending.append((query, pool.submit(_timed, extract, query)))

                first = next(it, None)
                if first is None:
                    return
                fill()
                # The first query is extracted here with every thread: nothing is ahead of it.
                yield run(first, None)
                while pending:
                    current, features = pending.popleft()
                    fill()
                    yield run(current, features)
        finally:
            torch.set_num_threads(threads)  # the workers' setting is also torch's default

    def _localize(self, query: Query, res: QueryResult, features: Future | None) -> None:
        done = features.result() if features else _timed(self.features, query)
        feats, res.timings["extract"] = done
        per_ref = res.ref_matches = self.correspondences(query, feats, res)
        t = time.perf_counter()
        ranked = self.pnp(query, per_ref, res)
        res.timings["pnp"] = time.perf_counter() - t
        if not ranked:
            if not res.refs:
                raise ValueError("no reference retrieved")
            res.best_ref, res.fallback = res.refs[0][0], True
            res.pose = self.map[res.best_ref].cam_from_world
            res.reason = "PnP failed on every reference"
            logger.info(
                "query %s: PnP failed on every reference; fallback to %s", query.name, res.best_ref
            )
            return
        if self.conf["pnp"]["dense_rerank"]:
            t = time.perf_counter()
            ranked = self._rerank(query, feats.maps, ranked, res)
            res.timings["pnp"] += time.perf_counter() - t
        res.best_ref = ranked[0][0]
        res.pnp_success = True
        max_error = self.conf["pnp"]["max_error"]
        res.pose = res.pnp_pose = ranked[0][1].pose
        if self.conf["pnp"]["joint_refine"]:  # the pose F-PnP starts from and falls back to
            t = time.perf_counter()
            joint = refine_on_all_references(query, per_ref, res.pnp_pose, max_error)
            res.pose = res.pnp_pose = joint
            res.timings["pnp"] += time.perf_counter() - t
        judge = PoseJudge(query, per_ref, ranked, max_error, self.thresholds)
        check = judge.judge_pnp(res)
        if self.conf["fpnp"]["enabled"]:
            t = time.perf_counter()
            out = self._refine_pnp_pose(query, feats.maps, per_ref, res, check)
            if out is not None:
                judge.judge_final(res, out.pose)
            res.timings["fpnp"] = time.perf_counter() - t
        res.success = not res.reason

    def _refine_pnp_pose(
        self,
        query: Query,
        maps: list,
        per_ref: dict[str, RefMatches],
        res: QueryResult,
        check: PnPCheck,
    ) -> FPnPResult | None:
        """F-PnP from the PnP pose with the points of ``fpnp.points``; a ``"visible"``
        refinement that is not trusted is redone with the matched inliers alone, whose
        features are distinctive in the query. ``res.fpnp.points`` names the set used."""
        c = self.conf["fpnp"]
        out = None
        for points in dict.fromkeys([c["points"], "inliers"]):
            obs = fpnp_observations(query, per_ref, res, {**c, "points": points}, self.map)
            if out is not None and not obs:  # no inliers to redo it with: keep the refusal
                break
            out = self._run_fpnp(query, maps, obs, res, check.covariance, check.depth)
            if out is None:
                return None
            res.fpnp.points = points
            if res.fpnp_success or points == "inliers":
                break
            res.verify.fpnp_visible = res.verify.fpnp  # the refused attempt
        return out

    def _run_fpnp(
        self,
        query: Query,
        maps: list,
        obs: dict[str, np.ndarray],
        res: QueryResult,
        pnp_cov: torch.Tensor | None = None,
        depth: float | None = None,
    ) -> FPnPResult | None:
        """F-PnP from ``res.pose`` with the points of the reference observations ``obs``
        (``{ref: (N_r,)}``); the update is kept only if :func:`verify.check_fpnp` trusts it.
        Returns the solver's result (None without points)."""
        c = self.conf["fpnp"]
        if not obs:
            res.fpnp = FPnPRecord(message="no points")
            return None
        levels = [m.float() for m in fpnp_levels(maps, self.conf)]
        X, F = gather_points(self.refs, self.map, obs, len(levels), c["max_points"])
        init = res.pose.double()
        search = c["start_search"]
        if search["keep"] > 0:  # far starts: refine from the best of a yaw/pitch grid
            out = search_and_refine(
                self.solver,
                X[None],
                [f[None] for f in F],
                [m[None] for m in levels],
                query.camera.double()[None],
                init[None],
                search["step_deg"],
                search["steps"],
                search["keep"],
            )[0]
        else:
            out = self.solver.refine(
                X, F, levels, query.camera.double(), init, return_history=self.record_history
            )
        if depth is None:
            depth = float(init.transform(X)[:, 2].abs().median())
        accept_fpnp(res, init, out, len(X), depth, self.thresholds, pnp_cov)
        res.fpnp.channels = min(int(m.shape[0]) for m in levels)
        return out

    def _extract_maps(self, query: Query) -> list[torch.Tensor]:
        """The query's feature levels alone (what :meth:`refine` needs)."""
        return self.extractor.extract(query.load(), max_side(self.conf))

    def refine(self, query: Query, maps: Future | None = None) -> QueryResult:
        """Refine ``query.prior`` with F-PnP using the points of the references that see most of
        the map at that pose (no retrieval or matching). ``maps``: the query's levels already
        under way (as :meth:`localize_all` starts them)."""
        res = QueryResult(query.name, pose=query.prior, pnp_pose=query.prior)
        try:
            if query.prior is None:
                raise ValueError("refine needs a prior pose")
            done = maps.result() if maps else _timed(self._extract_maps, query)
            maps, res.timings["extract"] = done
            t = time.perf_counter()
            seen = S.references_seen_at(self.map, query.camera, query.prior)
            chosen = {}
            for name, obs in list(seen.items())[: int(self.conf["fpnp"]["num_refs"])]:
                if len(obs):
                    res.refs.append((name, float(len(obs))))
                    chosen[name] = obs[self._subset(len(obs))]
            self._run_fpnp(query, maps, chosen, res)
            res.timings["fpnp"] = time.perf_counter() - t
            res.success = res.fpnp_success
            res.reason = "" if res.success else (res.fpnp and res.fpnp.message) or "F-PnP failed"
        except Exception as err:
            _record_error(res, err)
        return res


def check_start_search(search: dict) -> None:
    """``ConfigError`` unless ``fpnp.start_search`` keeps at most the starts its grid holds."""
    grid = (2 * search["steps"] + 1) ** 2
    if search["keep"] > grid:
        raise ConfigError(
            f"setting 'fpnp.start_search.keep' must be at most {grid}, the size of the search "
            f"grid of 'fpnp.start_search.steps' = {search['steps']}; got {search['keep']}"
        )


def extraction_workers(threads: int, device: torch.device) -> tuple[int, int]:
    """``(workers, threads each)`` of :meth:`Localizer.localize_all`'s background extraction
    given the foreground's ``threads``: on the CPU two workers sharing the threads (one
    single-threaded extraction keeps a core busy without waiting on another, and two of them
    fill both cores of a 2-core machine while the foreground rests); one worker elsewhere."""
    if device.type != "cpu" or threads < 2:
        return 1, max(1, threads)
    return 2, threads // 2


def _device_of(module: torch.nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (CPU without parameters)."""
    return next(module.parameters(), torch.empty(0)).device


def _background_worker(threads: int) -> None:
    """Set up a background extraction thread: ``threads`` threads for its own operations
    (OpenMP keeps this per calling thread; torch's default for new threads follows it, which
    :meth:`Localizer.localize_all` restores) and the lowest scheduling priority."""
    torch.set_num_threads(threads)
    _yield_to_others()


def _yield_to_others() -> None:
    """Lower this thread's scheduling priority (Linux: threads created from it inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not permitted
        pass


def _timed(fn: Callable[[Query], Any], query: Query) -> tuple[Any, float]:
    """``(fn(query), seconds it took)``."""
    t = time.perf_counter()
    return fn(query), time.perf_counter() - t


def _record_error(res: QueryResult, err: Exception) -> None:
    """Log a query's failure and record it in its result."""
    logger.warning("query %s failed: %s", res.name, err)
    res.error = f"{type(err).__name__}: {err}"
    res.success, res.reason = False, f"error: {res.error}"


def localize(
    map_: Map, queries: list[Query], conf: dict | None = None, progress: bool = True, **kwargs
) -> list[QueryResult]:
    """Localize every query against ``map_`` (``kwargs`` go to :class:`Localizer`)."""
    loc = Localizer(map_, conf, progress=progress, **kwargs)
    results = loc.localize_all(queries)
    return list(tqdm(results, desc="localize", total=len(queries), disable=not progress))
