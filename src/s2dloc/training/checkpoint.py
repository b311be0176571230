"""Safe resume of a training run: the checkpoint is read with ``weights_only=True`` (plain data
only: a crafted pickle cannot run code), checked for the trainer's entries, and its training
configuration compared with the current one.

Settings that may change between the first run and a resume (they do not change what is
learned at a given step): :data:`FREE_ON_RESUME`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from s2dloc.features.registry import load_checkpoint
from s2dloc.utils.config import compare_settings

TRAINER_KEYS = ("optimizer", "scheduler", "step", "train_config")
FREE_ON_RESUME = frozenset(
    {
        "out_dir",
        "device",
        "train.steps",
        "train.log_every",
        "train.val_every",
        "train.ckpt_every",
        "data.num_workers",
    }
)


class CheckpointError(ValueError):
    """A training checkpoint is corrupt, truncated, unsafe or not a trainer checkpoint."""


def _first_line(err: BaseException, limit: int = 240) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def read_resume_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The trainer checkpoint at ``path`` (plain data only), or :class:`CheckpointError`
    with a one-line message naming the file."""
    path = Path(path)
    hint = f"delete {path} to start afresh, or train into another output folder"
    try:
        ckpt = load_checkpoint(path, map_location=device)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, bad pickle, forbidden global, wrong keys, ...
        why = _first_line(err).replace(f"{path}: ", "")
        raise CheckpointError(
            f"{path}: cannot resume: corrupt, truncated or unsafe checkpoint ({why}); {hint}"
        ) from err
    missing = [k for k in TRAINER_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {missing}); {hint}")
    return ckpt


def load_resume_state(path: str | Path, ckpt: dict[str, Any], parts: dict[str, Any]) -> None:
    """Load the checkpoint's states into ``parts`` (``{key: module, optimizer or scheduler}``,
    e.g. ``{"state_dict": model}``); a state that does not fit (other model settings, a
    damaged file) is a :class:`CheckpointError` naming ``path`` and the key."""
    for key, part in parts.items():
        try:
            part.load_state_dict(ckpt[key])
        except Exception as err:  # shape or key mismatch, wrong parameter groups, bad types
            raise CheckpointError(
                f"{path}: cannot resume: its {key} does not fit this run's "
                f"{type(part).__name__} ({_first_line(err)}); train into another output "
                "folder, or resume with the settings it was written with"
            ) from err


def check_resume_config(
    path: str | Path, saved: dict[str, Any], current: dict[str, Any], force: bool = False
) -> list[str]:
    """Refuse (:class:`ConfigError`, naming the changed keys) to resume a run from ``path``
    whose training configuration ``saved`` differs from ``current`` outside
    :data:`FREE_ON_RESUME`, unless ``force`` (then log them): the one stale-settings guard
    (:func:`~s2dloc.utils.config.compare_settings`) on the settings the checkpoint holds.
    Returns the changed keys."""
    hint = "pass --force to resume with the new ones, or train into another output folder"
    return compare_settings(path, saved, current, force=force, hint=hint, free=FREE_ON_RESUME)
