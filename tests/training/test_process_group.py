"""torchrun's process group for training: its backend follows the ``device`` setting."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from s2dloc.training import distributed


@pytest.mark.parametrize(
    ("device", "cuda", "backend"),
    [
        ("auto", True, "nccl"),
        ("auto", False, "gloo"),
        ("cpu", True, "gloo"),  # a CPU run on a GPU machine: gloo, which takes CPU tensors
        ("cuda:0", True, "nccl"),
    ],
)
def test_backend_follows_the_device_setting(monkeypatch, device, cuda, backend):
    chosen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: chosen.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert distributed.init_from_env(device) == (1, 2)
    assert chosen == [backend]


def test_a_single_process_joins_no_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: pytest.fail("joined"))
    assert distributed.init_from_env("auto") == (0, 1)
