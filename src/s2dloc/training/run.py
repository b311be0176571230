"""The ``s2dloc train`` command: load the config, train (also under ``torchrun`` for DDP)."""

from __future__ import annotations

import json
from pathlib import Path

from s2dloc.training.config import load_config
from s2dloc.training.distributed import init_from_env, shutdown
from s2dloc.training.trainer import Trainer
from s2dloc.utils.io import write_text_atomic


def train_command(
    conf_path: str | Path | None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Train with the YAML config ``conf_path`` (merged over the defaults) and the
    ``section.key=value`` overrides; ``out`` overrides ``out_dir``. ``force`` resumes
    ``last.pt`` even if its training settings differ. Returns the checkpoint's path (rank 0
    writes ``config.json`` and prints it)."""
    overrides = list(overrides or []) + ([f"out_dir={out}"] if out else [])
    conf = load_config(conf_path, overrides)
    rank, world_size = init_from_env(conf.get("device", "auto"))
    try:
        trainer = Trainer(conf, rank, world_size, force=force)
        if rank == 0:
            write_text_atomic(trainer.out / "config.json", json.dumps(conf, indent=2))
        path = trainer.run()
        if rank == 0:
            print(f"checkpoint: {path}")
    finally:
        shutdown()
    return Path(path)
