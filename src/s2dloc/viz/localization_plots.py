"""Visual check of one localized query: retrieved references, sparse-to-dense matches (inliers
vs outliers) and the reprojection of the matched map points at the PnP pose and after F-PnP.

The matches come as :class:`PlotMatches`; :func:`matches_for_plot` takes those of the best
reference from the ones the ``QueryResult`` kept (nothing is recomputed). Example::

    res = loc.localize(query)
    plot_query("query.png", query.load(), query.camera, res,
               {n: loc.map.load_image(n) for n, _ in res.refs}, matches_for_plot(res, loc.map))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from s2dloc.geometry import Camera, Pose
from s2dloc.localization.map import Map
from s2dloc.localization.query import QueryResult
from s2dloc.viz.figure import plt, save_figure

logger = logging.getLogger(__name__)

INLIER, OUTLIER = "#00e000", "#ff3030"


@dataclass
class PlotMatches:
    """2D-3D matches of the query with one reference: query pixels ``p2d (K, 2)``, the
    reference observations ``ref_p2d (K, 2)`` they came from, world points ``p3d (K, 3)`` and the
    PnP ``inliers (K,)`` bool mask."""

    ref_name: str
    p2d: np.ndarray
    ref_p2d: np.ndarray
    p3d: np.ndarray
    inliers: np.ndarray

    def __post_init__(self):
        self.p2d = np.asarray(self.p2d, np.float64).reshape(-1, 2)
        self.ref_p2d = np.asarray(self.ref_p2d, np.float64).reshape(-1, 2)
        self.p3d = np.asarray(self.p3d, np.float64).reshape(-1, 3)
        self.inliers = np.asarray(self.inliers, bool).reshape(-1)
        n = {len(self.p2d), len(self.ref_p2d), len(self.p3d), len(self.inliers)}
        if len(n) != 1:
            raise ValueError(f"PlotMatches arrays have different lengths {sorted(n)}")


def project(points: np.ndarray, camera: Camera, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Pixels ``(K, 2)`` and validity ``(K,)`` of world points at ``pose`` (cam_from_world)."""
    X = pose.double().transform(torch.from_numpy(np.asarray(points, np.float64)))
    p, valid = camera.double().project(X)
    return p.numpy(), valid.numpy().astype(bool)


def _show(ax, image: np.ndarray, title: str) -> None:
    # COLMAP pixels: the top-left pixel spans [0, 1]; extent makes plotted coordinates agree.
    h, w = image.shape[:2]
    ax.imshow(image, extent=(0, w, h, 0), interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")


def _reprojection_panel(ax, image, camera, matches, pose, label, gt_pose) -> None:
    m = matches.inliers
    p, valid = project(matches.p3d[m], camera, pose)
    err = np.linalg.norm(p - matches.p2d[m], axis=1)[valid]
    med = float(np.median(err)) if len(err) else float("nan")
    title = f"{label}: median reprojection {med:.2f} px over {int(valid.sum())} inliers"
    if gt_pose is not None:
        title += (
            f"\nvs GT: {float(gt_pose.angle_to(pose)):.3f} deg, "
            f"{float(gt_pose.center_distance_to(pose)):.4f} units"
        )
    _show(ax, image, title)
    q, pr = matches.p2d[m][valid], p[valid]
    ax.scatter(q[:, 0], q[:, 1], s=6, c=INLIER, label="matched pixel")
    ax.scatter(pr[:, 0], pr[:, 1], s=6, marker="x", c="#ffd000", label=f"projected at {label}")
    for a, b in zip(q, pr):
        ax.plot([a[0], b[0]], [a[1], b[1]], c="#ffd000", lw=0.6)
    if gt_pose is not None:
        g, gv = project(matches.p3d[m], camera, gt_pose)
        ax.scatter(g[gv, 0], g[gv, 1], s=5, marker="+", c="#00c0ff", label="projected at GT")
    ax.legend(loc="lower right", fontsize=6, framealpha=0.6)


def _matches_panel(
    ax, query_image: np.ndarray, ref_images: dict, matches: PlotMatches | None, max_lines: int
) -> None:
    """Query and best reference side by side, inliers green and outliers red; at most
    ``max_lines`` matches (a seeded random subset) joined by lines."""
    if matches is None or matches.ref_name not in ref_images or len(matches.p2d) == 0:
        ax.text(0.5, 0.5, "no matches", ha="center", va="center")
        ax.axis("off")
        return
    ref = ref_images[matches.ref_name]
    h = max(query_image.shape[0], ref.shape[0])
    pad = np.zeros((h, query_image.shape[1] + ref.shape[1], 3), np.uint8)
    pad[: query_image.shape[0], : query_image.shape[1]] = query_image
    pad[: ref.shape[0], query_image.shape[1] :] = ref
    n_in = int(matches.inliers.sum())
    _show(
        ax,
        pad,
        f"S2D matches query | {matches.ref_name}: {n_in} inliers (green), "
        f"{len(matches.inliers) - n_in} outliers (red)",
    )
    off = np.array([query_image.shape[1], 0.0])
    lines = np.zeros(len(matches.p2d), bool)
    lines[np.random.default_rng(0).permutation(len(lines))[:max_lines]] = True
    for flag, color, lw in ((False, OUTLIER, 0.4), (True, INLIER, 0.6)):
        sel = matches.inliers == flag
        a, b = matches.p2d[sel], matches.ref_p2d[sel] + off
        for pa, pb in zip(a[lines[sel]], b[lines[sel]]):
            ax.plot([pa[0], pb[0]], [pa[1], pb[1]], c=color, lw=lw, alpha=0.7)
        ax.scatter(a[:, 0], a[:, 1], s=4, c=color)
        ax.scatter(b[:, 0], b[:, 1], s=4, c=color)


def plot_query(
    path: str | Path,
    query_image: np.ndarray,
    camera: Camera,
    result,
    ref_images: dict[str, np.ndarray],
    matches: PlotMatches | None = None,
    gt_pose: Pose | None = None,
    max_refs: int = 5,
    max_lines: int = 150,
    dpi: int = 90,
) -> Path:
    """Write a PNG for one query (``result`` is a :class:`~s2dloc.localization.QueryResult`).

    Row 1: the query and up to ``max_refs`` retrieved references (score, matches, inliers).
    Row 2: matches with the best reference (inliers green, outliers red) side by side; every
    match is a dot, at most ``max_lines`` (a seeded random subset) are joined by lines.
    Row 3: reprojection of the inlier map points at the PnP pose and at the final (F-PnP) pose,
    with lines to the matched pixels (and, if given, the ground-truth projections).
    """
    refs = [(n, s) for n, s in result.refs if n in ref_images][:max_refs]
    ncol = max(2, 1 + len(refs))
    fig = plt.figure(figsize=(3.2 * ncol, 9.5))
    grid = fig.add_gridspec(3, ncol)
    verdict = "localized" if result.success else f"NOT localized: {result.reason}"[:60]
    _show(fig.add_subplot(grid[0, 0]), query_image, f"query {result.name}\n{verdict}")
    for k, (name, score) in enumerate(refs):
        title = (
            f"#{k + 1} {name}\nscore {score:.3f}  matches {result.matches.get(name, 0)}"
            f"  inliers {result.inliers.get(name, 0)}"
        )
        if name == result.best_ref:
            title += "  (best)"
        _show(fig.add_subplot(grid[0, 1 + k]), ref_images[name], title)

    half = ncol // 2
    _matches_panel(fig.add_subplot(grid[1, :]), query_image, ref_images, matches, max_lines)

    stages = [
        (result.pnp_pose, "PnP"),
        (result.pose, "F-PnP" if result.fpnp_success else "final (F-PnP rejected)"),
    ]
    for k, (pose, label) in enumerate(stages):
        cols = slice(0, half) if k == 0 else slice(half, ncol)
        ax = fig.add_subplot(grid[2, cols])
        if pose is None or matches is None or not matches.inliers.any():
            _show(ax, query_image, f"{label}: no pose / no inliers")
            continue
        _reprojection_panel(ax, query_image, camera, matches, pose, label, gt_pose)
    fig.tight_layout()
    path = save_figure(fig, path, dpi)
    logger.info("wrote %s", path)
    return path


def matches_for_plot(result: QueryResult, map_: Map) -> PlotMatches | None:
    """The matches of ``result.best_ref`` kept in ``result.ref_matches``, with the reference
    observations they came from (None if there are none)."""
    name = result.best_ref
    m = result.ref_matches.get(name) if name is not None else None
    if m is None or name not in map_:
        return None
    return PlotMatches(name, m.p2d, map_[name].keypoints[m.obs], m.points3d, m.inliers)
