"""The ``device`` setting: valid values, what ``auto`` picks, and clear errors."""

from __future__ import annotations

import pytest
import torch

from s2dloc.utils.device import check_device, resolve_device


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_valid_settings(value):
    assert check_device(value) is None


@pytest.mark.parametrize("value", ["gpu", "CUDA", "cuda:", "cuda:x", "mps", "", None, 0])
def test_invalid_settings_say_what_is_expected(value):
    assert check_device(value) == "must be 'auto', 'cpu', 'cuda' or 'cuda:N'"
    with pytest.raises(ValueError, match="must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(value)


def _fake_cuda(monkeypatch, count: int):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_auto_is_the_cpu_without_cuda(monkeypatch):
    _fake_cuda(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        resolve_device("cuda")


def test_auto_is_the_local_rank_gpu(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == torch.device("cuda", 1)
    monkeypatch.setenv("LOCAL_RANK", "3")  # more processes than GPUs: they share them
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_device("cuda") == torch.device("cuda", 0)  # the current device, indexed
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="device 'cuda:2': this machine has 2 CUDA device"):
        resolve_device("cuda:2")


def test_a_real_device_resolves_to_itself(device):
    assert resolve_device(str(device)) == device
