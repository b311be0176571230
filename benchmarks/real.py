"""Real-data validation table: strecha_dev under fixed synthetic appearance changes.

strecha_dev (castle-P30, Herz-Jesus-P25; 1536x1024, metric LIDAR-registered poses): every
held-out image (every third, ``s2dloc.evaluation.real.STRECHA_HELD_OUT``, printed) is
localized against a map triangulated with the known poses of the OTHER images
(``s2dloc.mapping.known_poses``, SIFT + exhaustive matching; cached under ``--maps``). All
methods see images with the long side ``--max-side`` (default 768: scale 0.5, intrinsics
scaled alike). Query conditions (``s2dloc.evaluation.conditions``, seeded): none, dark,
very_dark, snow, fog.

Sections:
1. Localization: recall at (2 cm, 0.1 deg), (5 cm, 0.5 deg), (25 cm, 2 deg), (1 m, 5 deg),
   median errors, seconds per query. Rows: s2dloc per extractor (PnP and after F-PnP; top
   ``--num-refs`` by the pipeline's global-descriptor retrieval), SIFT + PnP (references with
   most matches among all), DISK + LightGlue + PnP (top ``--num-refs`` by GeM of DISK).
2. Retrieval recall@k: a retrieved reference is correct when >= 30% of its observed map points
   project into the query image at the true pose.
3. F-PnP basin on strecha pairs (held-out query vs the training image nearest in viewing
   direction among those that see at least half of it, its map points visible in the query,
   at most the localizer's ``fpnp.max_points``; ``real_bench.basin_problems``): start
   rotated by 2/5/10/20/30 deg with a translation of
   ``depth * tan(angle)``; success: < 0.5 deg and < 5 cm. Each extractor with its own levels
   and with ``--coarse-levels`` (its coarsest level average-pooled by 2, 4, 8:
   ``s2dloc.features.coarse``) added, "+ coarse", and with a yaw/pitch start search on the
   coarsest level first (``--start-search``: 10 deg steps, 2 either way;
   ``s2dloc.fpnp.start_search``), "+ coarse + search", refining from the best candidate and,
   per ``--starts`` count K > 1, from the K best, keeping the best refinement ("(K starts)").
   The last column: the refinements the solver flagged successful (all angles), those of them
   that meet the success criterion, and those that end beyond (2 deg, 0.25 m): wrong answers.
4. ``--fountain``: the rows of ``benchmarks/features.py --dataset fountain`` (run as is).

``--conf KEY=VALUE ...`` sets localization settings (``s2dloc localize --conf`` syntax) for
every s2dloc row; its ``fpnp.solver.*`` keys also configure the basin's solver.

    .venv/bin/python benchmarks/real.py --scenes castle-P30 --max-queries 3 \\
        --conditions none dark very_dark
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from s2dloc.evaluation.conditions import CONDITIONS
from s2dloc.evaluation.convergence import SuccessCriterion, convergence_sweep, fpnp_solver
from s2dloc.evaluation.real import STRECHA_HELD_OUT, summarize
from s2dloc.features.coarse import CoarseLevels
from s2dloc.features.registry import load_extractor_or_baseline
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.localization import Localizer
from s2dloc.localization.baseline_lightglue import LightGlueBaseline, disk_features, load_disk
from s2dloc.localization.baseline_sift import SiftBaseline
from s2dloc.localization.config import settings
from s2dloc.localization.real_bench import (
    basin_problems,
    global_describer,
    load_scene,
    run_method,
    synthetic_retrieval,
)
from s2dloc.training.data import synthetic_world
from s2dloc.utils.table import format_table
from s2dloc.viz.verdict import write_run

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "strecha_dev"
BASIN = SuccessCriterion(0.5, 0.05, relative=False)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DATA)
    p.add_argument("--scenes", nargs="*", default=list(STRECHA_HELD_OUT), help="none: skip")
    p.add_argument("--max-queries", type=int, default=0, help="first N held-out images (0: all)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=CONDITIONS)
    p.add_argument(
        "--extractors",
        nargs="+",
        default=["photometric", "gnnet", "disk-trunk", "gnnet-distilled", "default"],
    )
    p.add_argument("--extractor", action="append", default=[], help="extra checkpoint path")
    p.add_argument("--max-side", type=int, default=768)
    p.add_argument("--num-refs", type=int, default=5)
    p.add_argument("--lightglue-features", type=int, default=2048)
    p.add_argument("--no-sift", action="store_true")
    p.add_argument("--no-lightglue", action="store_true")
    _add_basin_args(p)
    p.add_argument("--no-basin", action="store_true")
    p.add_argument("--no-localize", action="store_true", help="only the basin (and --synthetic)")
    p.add_argument("--fountain", action="store_true", help="also run features.py on Fountain")
    p.add_argument("--synthetic", action="store_true", help="retrieval recall on a synthetic world")
    p.add_argument("--maps", type=Path, default=ROOT / "outputs" / "real" / "maps")
    p.add_argument("--out", type=Path, default=ROOT / "outputs" / "real")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--conf",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="localization settings (fpnp.solver.* also for the basin)",
    )
    p.add_argument(
        "--runs",
        type=Path,
        metavar="DIR",
        help="write verdict run folders DIR/<extractor>-<condition>",
    )
    return p.parse_args()


def _add_basin_args(p: argparse.ArgumentParser) -> None:
    """The options of the basin rows (start angles, coarse levels, start search)."""
    p.add_argument("--angles", type=float, nargs="+", default=[2, 5, 10, 20, 30])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument(
        "--coarse-levels",
        type=int,
        nargs="*",
        default=[2, 4, 8],
        help="basin: also rows with the coarsest level pooled by these factors (none: skip)",
    )
    p.add_argument(
        "--start-search",
        type=float,
        nargs="*",
        default=[10, 2],
        help="basin: also rows with coarse levels and a yaw/pitch start search STEP_DEG STEPS",
    )
    p.add_argument(
        "--starts",
        type=int,
        nargs="+",
        default=[1, 3],
        help="basin: a start-search row per count of best candidates refined",
    )


def extractor_names(args) -> list[str]:
    """Requested extractors that can be loaded (``default`` only where it is registered)."""
    names = []
    for name in [*args.extractors, *args.extractor]:
        try:
            load_extractor_or_baseline(name)
        except (FileNotFoundError, ValueError, KeyError) as err:
            print(f"  skipping extractor {name!r}: {err}")
            continue
        names.append(name)
    return names


def localization_conf(args, extractor: str) -> dict:
    """The localization settings of one extractor's rows: ``--conf``, then ``--num-refs``."""
    return settings([*args.conf, f"retrieval.num_refs={args.num_refs}"], extractor)


def localize_all(scene, args, names, runs: list | None = None) -> list:
    """Records of every method on one scene; ``runs`` collects ``(extractor, record,
    QueryResult)`` of the s2dloc methods."""
    records, k = [], args.num_refs
    for ext in names:
        conf = localization_conf(args, ext)
        extractor = load_extractor_or_baseline(ext)
        loc = Localizer(scene.map, conf, extractor=extractor, progress=False)
        results = []

        def run(q, loc=loc, results=results):
            r = loc.localize(q)
            results.append(r)
            return r.pnp_pose, r.pose if r.pnp_success else None, [n for n, _ in r.refs]

        recs = run_method(scene, f"s2dloc {ext}", run, args.conditions, args.max_queries, k)
        records += recs
        if runs is not None:
            runs += [(ext, rec, r) for rec, r in zip(recs, results, strict=True)]
        print(f"  {scene.name} s2dloc {ext}: done", flush=True)
    if not args.no_sift:
        sift = SiftBaseline(scene.map, {"max_side": args.max_side})
        records += run_method(
            scene,
            "SIFT + PnP",
            lambda q: (sift.localize(q).pose,) * 2 + ([],),
            args.conditions,
            args.max_queries,
            k,
        )
        print(f"  {scene.name} SIFT: done", flush=True)
    if not args.no_lightglue:
        conf = {"max_side": args.max_side, "num_refs": k, "num_features": args.lightglue_features}
        lg = LightGlueBaseline(scene.map, conf)

        def run_lg(q):
            r = lg.localize(q)
            return r.pose, r.pose, r.refs

        records += run_method(
            scene, "DISK + LightGlue + PnP", run_lg, args.conditions, args.max_queries, k
        )
        print(f"  {scene.name} DISK + LightGlue: done", flush=True)
    return records


def localization_rows(records) -> tuple[list, list]:
    """Recall rows per (method [PnP / +F-PnP], condition) and retrieval rows."""
    rows, retrieval = [], []
    methods = list(dict.fromkeys(r.method for r in records))  # in the order they ran
    keys = sorted(
        {(r.method, r.condition) for r in records},
        key=lambda mc: (methods.index(mc[0]), CONDITIONS.index(mc[1])),
    )
    for method, cond in keys:
        sel = [r for r in records if r.method == method and r.condition == cond]
        variants = [("", "rot", "trans")]
        if method.startswith("s2dloc"):
            variants = [(" PnP", "rot_pnp", "trans_pnp"), (" +F-PnP", "rot", "trans")]
        for suffix, rk, tk in variants:
            s = summarize(
                [getattr(r, rk) for r in sel],
                [getattr(r, tk) for r in sel],
                [r.seconds for r in sel],
            )
            rows.append(
                [
                    method + suffix,
                    cond,
                    s.count,
                    *[f"{v:.0f}" for v in s.recall.values()],
                    f"{s.median_rot_deg:.3f}",
                    f"{s.median_trans:.3f}",
                    f"{s.seconds_per_query:.1f}",
                ]
            )
        hits = [r.retrieval_hit for r in sel if r.retrieval_hit is not None]
        if hits:
            retrieval.append([method, cond, len(hits), f"{100 * np.mean(hits):.0f}"])
    return rows, retrieval


def write_runs(folder: Path, runs: list, scenes, args) -> None:
    """One verdict run folder per (extractor, condition) under ``folder``; queries named
    ``<scene>/<image>``, metric ground truth, the extractor's settings."""
    poses = {sc.name: sc.poses for sc in scenes}
    for ext, cond in dict.fromkeys((e, rec.condition) for e, rec, _ in runs):
        sel = [(rec, r) for e, rec, r in runs if (e, rec.condition) == (ext, cond)]
        results = [dataclasses.replace(r, name=f"{rec.scene}/{r.name}") for rec, r in sel]
        gt = {f"{rec.scene}/{rec.query}": poses[rec.scene][rec.query] for rec, _ in sel}
        conf = localization_conf(args, ext)
        run_dir = write_run(folder / f"{ext}-{cond}", results, gt, conf=conf)
        print(f"  verdict run: {run_dir}", flush=True)


def basin_rows(scenes, args, names) -> list:
    """Basin rows per extractor, variant and condition; the problems of each level set are
    extracted once and shared by the solvers that use them."""
    fpnp_conf = localization_conf(args, names[0])["fpnp"]
    solver = FeatureMetricPnP(**fpnp_conf["solver"])
    plain = fpnp_solver(solver)  # --conf fpnp.solver.* settings
    factors = tuple(args.coarse_levels)
    level_sets = [((), [("", plain)])]
    if factors:
        solvers = [(" + coarse", plain)]
        if args.start_search:
            step, steps = args.start_search[0], int(args.start_search[1])
            for keep in args.starts:
                search = fpnp_solver(solver, start_search=(step, steps), keep=keep)
                label = " + coarse + search" + (f" ({keep} starts)" if keep > 1 else "")
                solvers.append((label, search))
        level_sets.append((factors, solvers))
    rows = []
    for ext in names:
        base = load_extractor_or_baseline(ext)
        for factors, solvers in level_sets:
            extractor = CoarseLevels(base, factors) if factors else base
            by_variant: dict[str, list] = {suffix: [] for suffix, _ in solvers}
            for cond in args.conditions:
                problems = [
                    p
                    for sc in scenes
                    for p in basin_problems(
                        sc, extractor.extract, [cond], args.max_queries, fpnp_conf["max_points"]
                    )
                ]
                for suffix, solve in solvers:
                    sweep = convergence_sweep(
                        problems,
                        solve,
                        args.angles,
                        trials=args.trials,
                        criterion=BASIN,
                        progress=False,
                    )
                    rate = [f"{100 * r.success_rate:.0f}%" for r in sweep]
                    accepted = sum(r.accepted for r in sweep)
                    right = sum(r.accepted_right for r in sweep)
                    wrong = sum(r.accepted_beyond(2.0, 0.25) for r in sweep)
                    flags = f"{accepted} / {right} / {wrong}"
                    by_variant[suffix].append([ext + suffix, cond, len(problems), *rate, flags])
            rows += [row for variant in by_variant.values() for row in variant]
        print(f"  basin {ext}: done", flush=True)
    return rows


def synthetic_rows(args, names) -> list:
    """Retrieval recall@k on the evaluation street world (seed 0, night and snow queries)."""
    world = synthetic_world("street", 0, ("night", "snow"), (320, 240), num=24)
    rows = []
    for ext in names:
        conf = localization_conf(args, ext)
        describe = global_describer(load_extractor_or_baseline(ext), conf)
        recall = synthetic_retrieval(world, describe, args.num_refs)
        rows.append([f"s2dloc {ext}", f"{recall:.0f}"])
    if not args.no_lightglue:
        disk = load_disk()
        recall = synthetic_retrieval(
            world, lambda im: disk_features(disk, im, 320, 512).glob, args.num_refs
        )
        rows.append(["DISK + LightGlue + PnP", f"{recall:.0f}"])
    return rows


def localize_scenes(args, names) -> tuple[list, list, list]:
    """Load each scene's held-out map and localize its queries: scenes, records, runs."""
    scenes, records, runs = [], [], []
    for scene_name in args.scenes:
        sc = load_scene(args.root, scene_name, args.maps, args.max_side)
        scenes.append(sc)
        q = list(sc.queries[: args.max_queries or None])
        print(
            f"{scene_name}: map of {len(sc.map)} training images, {len(sc.map.point_ids)} "
            f"points, scale {sc.s:g}; held out {list(sc.queries)}; queried {q}",
            flush=True,
        )
        if not args.no_localize:
            records += localize_all(sc, args, names, runs)
    return scenes, records, runs


def table_sections(args, names, scenes, records) -> dict[str, str]:
    """The printed tables by title: localization and retrieval, then the optional ones."""
    sections = {}
    loc_rows, ret_rows = localization_rows(records)
    heads = ["method", "condition", "n", *summarize([0], [0]).recall, "med deg", "med m", "s/query"]
    if records:
        sections["localization (recall %)"] = format_table(loc_rows, heads)
        sections[f"retrieval recall@{args.num_refs} (%)"] = format_table(
            ret_rows, ["method", "condition", "n", f"recall@{args.num_refs}"]
        )
    if scenes and not args.no_basin:
        heads = ["extractor", "condition", "problems", *[f"{a:g} deg" for a in args.angles]]
        heads.append("flagged: all / right / beyond (2 deg, 0.25 m)")
        title = f"F-PnP basin, success {BASIN.describe()} m, {args.trials} starts"
        sections[title] = format_table(basin_rows(scenes, args, names), heads)
    if args.synthetic:
        sections[f"synthetic street world (night, snow): retrieval recall@{args.num_refs} (%)"] = (
            format_table(synthetic_rows(args, names), ["method", f"recall@{args.num_refs}"])
        )
    if args.fountain:
        script = str(ROOT / "benchmarks" / "features.py")
        cmd = [sys.executable, script, "--dataset", "fountain", "--extractors", *names]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        sections["Fountain (benchmarks/features.py --dataset fountain)"] = out.stdout.strip()
    return sections


def write_outputs(args, command: str, sections: dict[str, str], records) -> None:
    """``OUT/real.md`` (the tables) and ``OUT/real.json`` (also every record; NaN as null)."""
    args.out.mkdir(parents=True, exist_ok=True)
    md = "".join(f"## {k}\n\n```\n{v}\n```\n\n" for k, v in sections.items())
    (args.out / "real.md").write_text(f"{md}Command: `{command}`\n")
    recs = [
        {
            k: None if isinstance(v, float) and not np.isfinite(v) else v
            for k, v in dataclasses.asdict(r).items()
        }
        for r in records
    ]
    summary = {
        "command": command,
        "args": {k: str(v) for k, v in vars(args).items()},
        "records": recs,
        "sections": sections,
    }
    (args.out / "real.json").write_text(json.dumps(summary, indent=1))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    command = ".venv/bin/python " + shlex.join(["benchmarks/real.py", *sys.argv[1:]])
    names = extractor_names(args)
    scenes, records, runs = localize_scenes(args, names)
    if args.runs:
        write_runs(args.runs, runs, scenes, args)
    sections = table_sections(args, names, scenes, records)
    text = "\n\n".join(f"## {k}\n{v}" for k, v in sections.items())
    text += f"\n\ntotal {time.perf_counter() - t0:.0f} s\ncommand: {command}"
    print("\n" + text)
    write_outputs(args, command, sections, records)


if __name__ == "__main__":
    main()
