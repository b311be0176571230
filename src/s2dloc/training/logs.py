"""Training logs: CSV (resumable), TensorBoard scalars, and PNG loss curves."""

from __future__ import annotations

import csv
from pathlib import Path

from s2dloc.utils.io import atomic_path
from s2dloc.viz.figure import plt, save_figure

CURVES = ("e1", "e2", "contrastive", "feature_norm", "distill", "total")


class TrainLog:
    """Appends scalar rows to ``metrics.csv`` and TensorBoard; rows after ``step`` are dropped on
    resume, so a restarted run continues the same curves."""

    def __init__(self, out_dir: str | Path, resume_step: int = 0, tensorboard: bool = True):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.csv = self.dir / "metrics.csv"
        self.rows = self._read(resume_step)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.dir / "tensorboard"), purge_step=resume_step)

    def _read(self, resume_step: int) -> list[dict]:
        if not self.csv.exists():
            return []
        with self.csv.open() as f:
            rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= resume_step]
        return [
            {k: float(v) if k != "step" else int(float(v)) for k, v in r.items() if v != ""}
            for r in rows
        ]

    def log(self, step: int, scalars: dict[str, float]) -> None:
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self.rows.append(row)
        if self.writer is not None:
            for k, v in scalars.items():
                self.writer.add_scalar(k, v, step)
        self._write_csv()

    def _write_csv(self) -> None:
        keys = sorted({k for r in self.rows for k in r} - {"step"})
        with atomic_path(self.csv, suffix=".csv") as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, ["step", *keys])
            w.writeheader()
            for r in self.rows:
                w.writerow({k: r.get(k, "") for k in ["step", *keys]})

    def plot(self, path: str | Path | None = None) -> Path:
        """Loss curves (e1, e2, contrastive, feature norm, validation) as one PNG."""
        path = Path(path or self.dir / "curves.png")
        keys = [k for k in CURVES if any(k in r for r in self.rows)]
        keys += sorted({k for r in self.rows for k in r if k.startswith("val/")})
        fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(3.2 * max(len(keys), 1), 3))
        axes = [axes] if len(keys) <= 1 else list(axes)
        for ax, key in zip(axes, keys):
            pts = [(r["step"], r[key]) for r in self.rows if key in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
            ax.set_title(key, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        return save_figure(fig, path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
