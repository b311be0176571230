"""Per-run figures: top-down map with localized queries, recall bars, PCA images of features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from s2dloc.viz.figure import plt, save_figure


def plane_axes(centres: np.ndarray) -> np.ndarray:
    """The two principal directions ``(2, 3)`` of camera centres ``(N, 3)`` (a top-down view)."""
    c = centres - centres.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    return vt[:2]


def plot_top_down(
    map_centres: np.ndarray,
    query_centres: dict[str, np.ndarray],
    errors_m: dict[str, float],
    path: str | Path,
    max_error: float = 1.0,
) -> Path:
    """Map cameras (grey) and localized queries coloured by centre error (capped at
    ``max_error``), projected on the principal plane of the map's camera centres. The view
    spans the map with a margin; queries localized outside it are drawn on its border."""
    axes = plane_axes(map_centres)
    mean = map_centres.mean(0)
    m2 = (map_centres - mean) @ axes.T
    span = np.ptp(m2, 0).max()
    lo, hi = m2.min(0) - 0.15 * span, m2.max(0) + 0.15 * span
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.scatter(m2[:, 0], m2[:, 1], c="0.6", s=12, label="map cameras")
    names = [n for n in query_centres if n in errors_m]
    if names:
        q2 = np.clip((np.stack([query_centres[n] for n in names]) - mean) @ axes.T, lo, hi)
        err = np.minimum([errors_m[n] for n in names], max_error)
        sc = ax.scatter(
            q2[:, 0],
            q2[:, 1],
            c=err,
            cmap="RdYlGn_r",
            vmin=0,
            vmax=max_error,
            s=30,
            edgecolors="k",
            linewidths=0.3,
            label="queries",
        )
        fig.colorbar(sc, ax=ax, label=f"camera centre error (capped at {max_error:g})")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.legend(loc="best", fontsize=8)
    ax.set_title("top-down view (principal plane of the map's camera centres)")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_recall_bars(tables: dict[str, dict], threshold: str, path: str | Path) -> Path:
    """Recall at ``threshold`` (a key of the recall tables) per condition, one bar per run."""
    conds = list(next(iter(tables.values())))
    fig, ax = plt.subplots(figsize=(1.2 * len(conds) + 2, 3.5))
    width = 0.8 / len(tables)
    for k, (label, table) in enumerate(tables.items()):
        x = np.arange(len(conds)) + (k - (len(tables) - 1) / 2) * width
        ax.bar(x, [table[c][threshold] for c in conds], width, label=label)
    ax.set_xticks(np.arange(len(conds)), conds)
    ax.set_ylabel(f"recall at {threshold} [%]")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def pca_rgb(fmap: torch.Tensor) -> np.ndarray:
    """A feature map ``(C, H, W)`` as an RGB image ``(H, W, 3)`` in [0, 1]: its first three
    principal components, each stretched to its 1-99 percentile range."""
    C, H, W = fmap.shape
    x = fmap.reshape(C, -1).T.double()
    x = x - x.mean(0)
    k = min(3, C)
    _, _, v = torch.linalg.svd(x[:: max(1, x.shape[0] // 20000)], full_matrices=False)
    y = (x @ v[:k].T).numpy()
    lo, hi = np.percentile(y, 1, axis=0), np.percentile(y, 99, axis=0)
    y = np.clip((y - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    if k < 3:
        y = np.concatenate([y, np.repeat(y[:, :1], 3 - k, 1)], 1)
    return y.reshape(H, W, 3)


def plot_feature_pca(image: np.ndarray, maps: list[torch.Tensor], path: str | Path) -> Path:
    """The image and a PCA-to-RGB picture of each feature level, side by side."""
    fig, axes = plt.subplots(1, 1 + len(maps), figsize=(3.2 * (1 + len(maps)), 2.8))
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=9)
    for ax, m in zip(axes[1:], maps):
        ax.imshow(pca_rgb(m), interpolation="nearest")
        ax.set_title(f"{m.shape[0]} x {m.shape[1]} x {m.shape[2]}", fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path)
