"""Recall of result files against ground truth, printed, with a cumulative error plot
(``s2dloc evaluate``)."""

from __future__ import annotations

from pathlib import Path

from s2dloc.evaluation.recall import evaluate, format_table
from s2dloc.viz.figure import plot_cumulative


def evaluate_results(
    results: list[str],
    gt: str | Path,
    thresholds: tuple[tuple[float, float], ...],
    plot: str | Path | None = None,
) -> Path:
    """Print each result file's recall at ``thresholds`` ((metres, degrees) pairs) over all
    ground-truth queries of ``gt`` and over the submitted ones (naming the missing ones), and
    plot the cumulative errors. ``results`` items are ``PATH`` or ``LABEL=PATH``; ``plot``
    defaults to the last file with suffix ``.errors.png``. Returns the plot's path."""
    plot = Path(plot or Path(results[-1].split("=")[-1]).with_suffix(".errors.png"))
    if plot.is_dir():
        raise ValueError(f"--plot {plot} is a directory; expected the path of a PNG file")
    curves = {}
    for item in results:
        label, path = item.split("=", 1) if "=" in item else (Path(item).stem, item)
        ev = evaluate(path, gt, thresholds)
        total = len(ev.errors.names)
        print(f"== {label} ({path})")
        if ev.missing:
            print(
                f"{len(ev.missing)} of {total} ground-truth queries have no result "
                f"(counted as failures), e.g. {', '.join(ev.missing[:5])}"
            )
        print(f"recall over all {total} ground-truth queries:\n{format_table(ev.table)}")
        if ev.submitted:
            print(
                f"recall over the {total - len(ev.missing)} submitted queries:\n"
                f"{format_table(ev.submitted)}"
            )
        curves[label] = ev.errors
    return plot_cumulative(curves, plot)
