"""Plots of F-PnP convergence: pose error per LM iteration, one panel per quantity."""

from __future__ import annotations

from pathlib import Path

from s2dloc.fpnp.result import IterationRecord
from s2dloc.geometry import Pose
from s2dloc.viz.figure import plt, save_figure


def history_errors(
    history: list[list[IterationRecord]], true_pose: Pose
) -> list[tuple[list, list]]:
    """Per level, the rotation (deg) and centre (map units) errors of each iteration's pose."""
    out = []
    for level in history:
        rot = [float(rec.pose.angle_to(true_pose)) for rec in level]
        tra = [float(rec.pose.center_distance_to(true_pose)) for rec in level]
        out.append((rot, tra))
    return out


def plot_error_vs_iteration(
    runs: dict[str, list[list[IterationRecord]]], true_pose: Pose, path: str | Path, title: str = ""
) -> Path:
    """Rotation and translation error vs cumulative iteration, coloured by level.

    ``runs`` maps a label (e.g. the initial error) to a solver history for one query
    (``FPnPResult.history`` of an unbatched result).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    cmap = plt.get_cmap("viridis")
    for ri, (label, history) in enumerate(runs.items()):
        errors = history_errors(history, true_pose)
        start = 0
        for li, (rot, tra) in enumerate(errors):
            x = list(range(start, start + len(rot)))
            color = cmap(li / max(len(errors) - 1, 1))
            kw = {"color": color, "marker": "o", "ms": 2, "lw": 1}
            axes[0].plot(x, rot, label=f"level {li}" if ri == 0 else None, **kw)
            axes[1].plot(x, tra, **kw)
            start += len(rot) - 1
        axes[0].annotate(label, (0, errors[0][0][0]), fontsize=7)
    for ax, name in zip(axes, ("rotation error [deg]", "camera centre error")):
        ax.set_yscale("log")
        ax.set_xlabel("LM iteration (cumulative over levels, coarse to fine)")
        ax.set_ylabel(name)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def plot_cost_history(costs: dict[str, list[list[float]]], path: str | Path) -> Path:
    """F-PnP robust cost per LM iteration, cumulative over levels (coarse to fine), one curve
    per query; ``costs`` maps a label to per-level lists of costs (each level has its scale)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    cmap = plt.get_cmap("viridis")
    for label, levels in costs.items():
        start = 0
        for li, lv in enumerate(levels):
            x = list(range(start, start + len(lv)))
            ax.plot(x, lv, marker="o", ms=2, lw=1, color=cmap(li / max(len(levels) - 1, 1)))
            start += max(len(lv) - 1, 0)
        ax.annotate(label, (0, levels[0][0]) if levels and levels[0] else (0, 0), fontsize=7)
    ax.set_yscale("log")
    ax.set_xlabel("LM iteration (levels coarse to fine, colour = level)")
    ax.set_ylabel("robust cost (scale of each level)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
