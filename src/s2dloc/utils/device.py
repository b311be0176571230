"""The ``device`` setting of the commands: where networks run.

``"auto"`` picks CUDA when ``torch.cuda.is_available()`` (under torchrun the GPU of this
process's ``LOCAL_RANK``, modulo the GPU count, so more processes than GPUs share them), else
the CPU; ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` name one.
"""

from __future__ import annotations

import os
import re

import torch

_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(value: object) -> str | None:
    """A config check (:data:`s2dloc.utils.config.Check`): None if ``value`` is a valid
    ``device`` setting, else what is expected."""
    ok = isinstance(value, str) and _PATTERN.fullmatch(value) is not None
    return None if ok else "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"


def resolve_device(setting: str) -> torch.device:
    """The device a ``device`` setting names (see the module).

    Raises ``ValueError`` for an invalid setting, and for a CUDA device when CUDA is not
    available or the index does not exist, naming the setting.
    """
    problem = check_device(setting)
    if problem:
        raise ValueError(f"device {setting!r} {problem}")
    if setting == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        setting = f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}"
    device = torch.device(setting)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {setting!r}: CUDA is not available (torch {torch.__version__}); "
                "use device=cpu or device=auto"
            )
        count = torch.cuda.device_count()
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= count:
            raise ValueError(f"device {setting!r}: this machine has {count} CUDA device(s)")
        device = torch.device("cuda", index)
    return device
