"""The whole system on the embedded default data (``s2dloc demo``; no download).

Generates the synthetic multi-condition world, loads the shipped GN-Net, builds the map,
localizes every query (PnP, then F-PnP), evaluates per condition, runs the F-PnP toy example,
and writes a report folder with figures and an ``index.html``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.datasets.synthetic.world import generate_world, world_config
from s2dloc.datasets.synthetic.write import holds_world, write_world
from s2dloc.evaluation.recall import condition_of, pose_errors, recall_table
from s2dloc.geometry import Pose
from s2dloc.localization.config import max_side, resolve
from s2dloc.localization.io import read_queries
from s2dloc.localization.map import Map
from s2dloc.localization.pipeline import Localizer
from s2dloc.utils.table import format_table
from s2dloc.viz.figure import plot_cumulative
from s2dloc.viz.fpnp_plots import plot_cost_history
from s2dloc.viz.localization_plots import matches_for_plot, plot_query
from s2dloc.viz.report import table_html, write_report
from s2dloc.viz.run_plots import plot_feature_pca, plot_recall_bars, plot_top_down
from s2dloc.viz.toy import run_toy
from s2dloc.viz.verdict import HEADERS, Outcome, reason_rows, verdict_rows, write_run

TOY_ANGLES = [2.0, 5.0, 10.0, 15.0]


@dataclass(frozen=True)
class DemoRequest:
    """The demo's inputs: output folder, world preset, dense features, per-query figures."""

    out: Path = Path("outputs/demo")
    preset: str = "demo"
    extractor: str = "default"
    figures: int = 3


@dataclass
class DemoSummary:
    """What the demo produced: the report index, the output folder, recall rows, seconds."""

    index: Path
    out: Path
    rows: list[list] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Run:
    """One localization run over the demo world."""

    map_: Map
    queries: list
    gt: dict
    loc: Localizer
    results: list


def run_demo(req: DemoRequest) -> DemoSummary:
    """Run the demo (see the module docstring), print its tables and return a summary."""
    tic = time.perf_counter()
    out, report = req.out, req.out / "report"
    report.mkdir(parents=True, exist_ok=True)
    run = _localize(req)
    results, gt = run.results, run.gt
    final = {r.name: _qt(r.pose) for r in results if r.pose is not None and not r.fallback}
    verdict, reasons = _verdict_tables(results, gt, out / "run", run.loc.conf)
    pnp = {r.name: _qt(r.pnp_pose) for r in results if r.pnp_pose is not None}
    errors = {"PnP": pose_errors(pnp, gt), "PnP + F-PnP": pose_errors(final, gt)}
    tables = {k: recall_table(e) for k, e in errors.items()}
    rows, headers = _recall_rows(tables)
    curves = plot_cumulative(errors, report / "cumulative_errors.png")
    figures = _query_figures(run, report, req.figures)
    figures.append(_cost_figure(results, report))
    run_figures = _run_figures(run, errors, tables, final, report)
    run_toy(report / "toy", TOY_ANGLES, trials=3, points=1024, loss="cauchy", seed=0)
    print(
        f"\nLocalization of {len(run.queries)} synthetic queries ({req.extractor} features), "
        "recall [%] at (0.25 m, 2 deg) / (0.5 m, 5 deg) / (5 m, 10 deg):"
    )
    print(format_table(rows, headers))
    _print_verdict(results, verdict, reasons)
    sections = [
        ("Recall per condition", [table_html(rows, headers)]),
        (
            "Verdict: accepted queries, precision and recall",
            [table_html(*verdict), table_html(*reasons)],
        ),
        ("Cumulative errors before and after F-PnP", [curves.relative_to(report)]),
        ("Map, localized queries, recall per condition, features", run_figures),
        ("Queries: retrieved references, S2D matches, reprojections", figures),
        ("F-PnP on the toy scene", [Path("toy/toy_convergence.png")]),
    ]
    index = write_report(report, "s2dloc demo", sections)
    seconds = time.perf_counter() - tic
    print(f"\nreport: {index} ({seconds:.0f} s)")
    return DemoSummary(index, out, rows, headers, seconds)


def _localize(req: DemoRequest) -> _Run:
    """Write the world (once), load the map and localize every query."""
    world_dir = req.out / "world"
    config = world_config(req.preset)
    if not holds_world(world_dir, config):
        # Missing, unfinished or of other settings (a world of an older version): write it
        # anew (cache entries of the old images are then recomputed: their digests differ).
        write_world(generate_world(config), world_dir, overwrite=True)
    map_ = Map.load(world_dir)
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", map_.image_root)
    gt = read_poses(world_dir / "poses_query.txt")
    conf = resolve({"extractor": req.extractor})
    loc = Localizer(map_, conf, cache=req.out / f"cache-{req.extractor}.h5")
    loc.record_history = True  # F-PnP cost per iteration for the report
    results = list(tqdm(loc.localize_all(queries), desc="localize", total=len(queries)))
    return _Run(map_, queries, gt, loc, results)


def _qt(pose) -> tuple:
    return pose.quat().tolist(), pose.t.tolist()


def _recall_rows(tables: dict) -> tuple[list[list], list[str]]:
    first = next(iter(tables.values()))
    keys = [k for k in first["all"] if k.endswith("deg") and "/" in k]
    rows = []
    for cond in first:
        row = [cond, first[cond]["count"]]
        for table in tables.values():
            row.append(" / ".join(f"{table[cond][k]:.0f}" for k in keys))
        rows.append(row)
    return rows, ["condition", "queries", *tables]


def _print_verdict(results, verdict: tuple[list, list], reasons: tuple[list, list]) -> None:
    accepted = sum(r.success for r in results)
    print(
        f"\nVerdict: {accepted}/{len(results)} queries localized (success); per condition, "
        "precision [%] of the accepted at (1 m, 5 deg) and recall at (0.25 m, 2 deg):"
    )
    print(format_table(*verdict))
    if reasons[0]:
        print("why the others failed:")
        print(format_table(*reasons))


def _verdict_tables(
    results, gt: dict, run: Path, conf: dict
) -> tuple[tuple[list, list], tuple[list, list]]:
    """Per condition: queries, accepted, precision and recall of the verdict; failure reasons.
    The records, ground truth and settings ``conf`` go to ``run`` (for
    ``benchmarks/verdict.py``)."""
    outcomes = [Outcome(r.name, r.pose, r.success, r.reason) for r in results]
    poses = {n: Pose.from_quat_t(*qt) for n, qt in gt.items()}
    write_run(run, results, poses, conf=conf)
    rows = verdict_rows(outcomes, poses, condition_of)
    return (rows, ["condition", *HEADERS[1:]]), (reason_rows(outcomes), ["reason", "queries"])


def _run_figures(run: _Run, errors, tables, final, report: Path) -> list[Path]:
    """Top-down view coloured by error, recall bars, PCA images of one query's features."""
    centres = np.stack([im.cam_from_world.center().numpy() for im in run.map_.images])
    q_centres = {n: Pose.from_quat_t(*qt).center().numpy() for n, qt in final.items()}
    e = errors["PnP + F-PnP"]
    err = {n: float(t) for n, t in zip(e.names, e.trans)}
    paths = [
        plot_top_down(centres, q_centres, err, report / "top_down.png"),
        plot_recall_bars(tables, "0.25m/2.0deg", report / "recall_bars.png"),
    ]
    image = run.queries[0].load()
    features = run.loc.extractor.extract(image, max_side(run.loc.conf))
    paths.append(plot_feature_pca(image, features, report / "features_pca.png"))
    return [p.relative_to(report) for p in paths]


def _cost_figure(results, report: Path) -> Path:
    """F-PnP cost per iteration and level for the first query of each condition."""
    costs = {}
    for r in results:
        history = r.fpnp and r.fpnp.cost_history
        if history and condition_of(r.name) not in {condition_of(n) for n in costs}:
            costs[r.name] = history
    return plot_cost_history(costs, report / "fpnp_costs.png").relative_to(report)


def _query_figures(run: _Run, report: Path, count: int) -> list[Path]:
    """Per-query PNGs for the first ``count`` queries of different conditions."""
    loc, gt = run.loc, run.gt
    paths, seen = [], set()
    for q, r in zip(run.queries, run.results):
        cond = condition_of(q.name)
        if len(paths) >= count or cond in seen or r.pose is None:
            continue
        seen.add(cond)
        refs = {n: cv2.imread(str(loc.map.image_root / n))[..., ::-1] for n, _ in r.refs[:3]}
        gt_pose = Pose.from_quat_t(*gt[q.name]) if q.name in gt else None
        path = report / f"query_{cond}.png"
        plot_query(
            path, q.load(), q.camera, r, refs, matches_for_plot(r, loc.map), gt_pose, max_refs=3
        )
        paths.append(path.relative_to(report))
    return paths
