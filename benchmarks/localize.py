"""Queries per second of the localization pipeline at 640x480 with top-5 references (cached
map features), the time split by stage, and two baselines measured in the same run on the same
queries: one query at a time (``Localizer.localize``; the main figure overlaps the next queries'
extraction with the current one's other stages, ``Localizer.localize_all``) and the previous
matching code path (one reference at a time, an ``M x HW`` exclusion mask for the second best).

    .venv/bin/python benchmarks/localize.py [--num-db 10] [--num-query 4] [--extractor default]
        [--no-baseline] [--profile] [--rounds 2]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.localization import Localizer, Map
from s2dloc.localization.config import settings
from s2dloc.localization.io import read_queries
from s2dloc.localization.s2d import RefMatches, _parabola, refine_on_level

STAGES = ["extract", "retrieve", "match", "pnp", "fpnp"]


def legacy_coarse_match(desc, dense, radius, chunk=1024):
    """The previous coarse matching: an ``(m, HW)`` 'near' mask and a masked fill per chunk."""
    Dd, H, W = dense.shape
    flat = dense.reshape(Dd, H * W)
    uu, vv = torch.arange(W).repeat(H), torch.arange(H).repeat_interleave(W)
    pos, s1s, s2s = [], [], []
    for i in range(0, len(desc), chunk):
        sim = desc[i : i + chunk] @ flat
        s1, idx = sim.max(-1)
        u1, v1 = idx % W, idx // W
        near = ((uu[None] - u1[:, None]).abs() <= radius) & (
            (vv[None] - v1[:, None]).abs() <= radius
        )
        s2 = sim.masked_fill(near, -2.0).max(-1).values

        def g(du, dv, sim=sim, u1=u1, v1=v1):
            j = (v1 + dv).clamp(0, H - 1) * W + (u1 + du).clamp(0, W - 1)
            return sim.gather(1, j[:, None])[:, 0]

        du = _parabola(g(-1, 0), s1, g(1, 0)) * ((u1 > 0) & (u1 < W - 1))
        dv = _parabola(g(0, -1), s1, g(0, 1)) * ((v1 > 0) & (v1 < H - 1))
        pos.append(torch.stack([u1 + 0.5 + du, v1 + 0.5 + dv], -1))
        s1s.append(s1)
        s2s.append(s2)
    return torch.cat(pos), torch.cat(s1s), torch.cat(s2s)


class LegacyLocalizer(Localizer):
    """Baseline: references matched one after another with :func:`legacy_coarse_match`."""

    def match(self, names, maps, dense, size):
        out, c = {}, self.conf["s2d"]
        for name in names:
            rf = self.refs[name]
            sub = self._subset(len(rf.point3D_ids))
            pos, s1, s2 = legacy_coarse_match(rf.descriptors[sub], dense, int(c["radius"]))
            d1, d2 = (2 - 2 * s1).clamp_min(0).sqrt(), (2 - 2 * s2).clamp_min(0).sqrt()
            ratio = d1 / d2.clamp_min(1e-9)
            idx = torch.nonzero((ratio < c["ratio"]) & (s1 >= c["min_similarity"]))[:, 0]
            Hm, Wm = dense.shape[-2:]
            p = pos[idx].double() * torch.tensor([size[0] / Wm, size[1] / Hm]).double()
            if c["refine"] and len(idx):
                finer = [
                    i
                    for i, m in enumerate(maps)
                    if m.shape[-1] > Wm and m.shape[0] >= c["refine_min_channels"]
                ]
                for li in sorted(finer, key=lambda i: maps[i].shape[-1]):
                    p = refine_on_level(
                        p, rf.features[li][sub][idx], maps[li], size, int(c["refine_radius"])
                    ).double()
            obs = sub[idx.numpy()]
            ids = rf.point3D_ids[obs]
            xyz = self.map.xyz(ids)
            out[name] = RefMatches(p.numpy(), obs, ids, xyz, s1[idx].numpy(), ratio[idx].numpy())
        return out


def run(loc: Localizer, queries, profile: bool = False, overlap: bool = True):
    """Localize every query (after one warm-up), with the next query's extraction overlapping
    the current one's other stages (``Localizer.localize_all``) or one query at a time;
    returns results and the total seconds."""
    loc.localize(queries[0])  # warm-up (numba compilation, allocations)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    results = list(loc.localize_all(queries)) if overlap else [loc.localize(q) for q in queries]
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return results, time.perf_counter() - t


def same_pose(a, b) -> bool:
    """Whether two results of one query hold the same pose (bit for bit) and verdict."""
    if (a.pose is None) != (b.pose is None) or a.success != b.success:
        return False
    return a.pose is None or bool(torch.equal(a.pose.matrix(), b.pose.matrix()))


def report(label: str, results, total: float, threads: int) -> None:
    failed = [r for r in results if r.error]
    if failed:  # a figure of runs that raised would measure nothing
        raise RuntimeError(f"[{label}] {failed[0].name}: {failed[0].error}")
    split = {s: np.mean([r.timings.get(s, 0.0) for r in results]) for s in STAGES}
    print(
        f"[{label}] {len(results)} queries at 640x480, top-5: {len(results) / total:.2f} "
        f"queries/s ({1000 * total / len(results):.0f} ms/query, {threads} threads); "
        "stage ms: " + ", ".join(f"{s} {1000 * v:.0f}" for s, v in split.items())
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-db", type=int, default=10)
    parser.add_argument("--num-query", type=int, default=4)
    parser.add_argument("--extractor", default="default")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip the legacy matching run")
    parser.add_argument("--profile", action="store_true", help="cProfile the optimised run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="alternating runs with and without the overlap"
    )
    parser.add_argument(
        "--conf", nargs="*", default=[], metavar="KEY=VALUE", help="localization settings"
    )
    return parser.parse_args()


def compare_overlap(loc, queries, args) -> tuple[list, float]:
    """Alternating runs with and without the overlapped extraction (the machine's speed
    drifts); prints each and their ratios. Returns the last overlapped results and time."""
    ratios, same = [], True
    for k in range(args.rounds):
        results, total = run(loc, queries, args.profile and k == 0)
        report("optimised", results, total, args.threads)
        one, total_one = run(loc, queries, overlap=False)
        report("one query at a time", one, total_one, args.threads)
        ratios.append(total_one / total)
        same &= all(same_pose(a, b) for a, b in zip(results, one, strict=True))
    print(
        "overlapping extraction: "
        + ", ".join(f"{r:.2f}x" for r in ratios)
        + f" the queries/s of one query at a time (median {statistics.median(ratios):.2f}x); "
        f"same poses and verdicts either way: {same}"
    )
    return results, total


def compare_legacy(results, total, base, total_b) -> None:
    """Print the speed-up over the legacy matching and whether its matches are the same."""
    m_new = np.mean([r.timings["match"] for r in results])
    m_old = np.mean([r.timings["match"] for r in base])
    dpose = [
        float(a.pose.angle_to(b.pose))
        for a, b in zip(results, base)
        if a.pose is not None and b.pose is not None
    ]
    same = all(a.matches == b.matches and a.inliers == b.inliers for a, b in zip(results, base))
    print(
        f"speed-up: end to end x{total_b / total:.2f}, matching x{m_old / m_new:.1f}; "
        f"identical matches/inliers: {same}; max pose difference "
        f"{max(dpose, default=0.0):.2e} deg"
    )


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(
        PRESETS["demo"],
        num_db=args.num_db,
        num_query=args.num_query,
        width=640,
        height=480,
        query_conditions=("reference",),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_world(generate_world(cfg, progress=False), root, progress=False)
        map_ = Map.load(root)
        queries = read_queries(root / "queries_with_intrinsics.txt", root / "images")
        conf = settings([*args.conf, "retrieval.num_refs=5"], args.extractor)
        t = time.perf_counter()
        loc = Localizer(map_, conf, cache=root / "cache.h5", progress=False)
        t_map = time.perf_counter() - t
        print(f"map features ({args.extractor}): {len(map_)} images in {t_map:.2f} s (cached once)")
        results, total = compare_overlap(loc, queries, args)
        if args.no_baseline:
            return
        legacy = LegacyLocalizer(
            map_, conf, extractor=loc.extractor, cache=root / "cache.h5", progress=False
        )
        base, total_b = run(legacy, queries)
        report("legacy matching", base, total_b, args.threads)
    compare_legacy(results, total, base, total_b)


if __name__ == "__main__":
    main()
