"""Writing matplotlib figures: headless backend, atomic PNG writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from s2dloc.utils.io import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (temp file + rename) and close it."""
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path
