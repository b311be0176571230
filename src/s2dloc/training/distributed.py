"""torch.distributed set-up for ``torchrun``: gloo on CPU, nccl on GPU."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(device: str = "auto") -> tuple[int, int]:
    """Join the process group described by torchrun's environment; ``(rank, world_size)``.
    The backend follows the training's ``device`` setting: nccl when it puts the model on a
    GPU (``auto`` with CUDA available, ``cuda``, ``cuda:N``), gloo on the CPU.

    Without torchrun's variables this is a single process: ``(0, 1)``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1
    if not dist.is_initialized():
        on_gpu = device != "cpu" and torch.cuda.is_available()
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return dist.get_rank(), dist.get_world_size()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
