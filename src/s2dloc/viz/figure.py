"""Writing matplotlib figures: headless backend, atomic PNG writes; cumulative error curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from s2dloc.evaluation.recall import Errors  # noqa: E402
from s2dloc.utils.io import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temp file + rename) and close it."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def plot_cumulative(curves: dict[str, Errors], path: str | Path, max_trans: float = 5.0) -> Path:
    """Cumulative translation / rotation error curves (one line per entry of ``curves``)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, e in curves.items():
        for ax, v, hi in ((axes[0], e.trans, max_trans), (axes[1], e.rot_deg, 10.0)):
            x = np.sort(v)
            y = 100 * np.arange(1, len(x) + 1) / max(len(x), 1)
            ax.step(np.clip(x, 0, hi), y, where="post", label=label)
    axes[0].set(xlabel="translation error (map units)", ylabel="queries (%)", xlim=(0, max_trans))
    axes[1].set(xlabel="rotation error (deg)", ylabel="queries (%)", xlim=(0, 10))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
