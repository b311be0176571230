"""The GPU benchmark (benchmarks/gpu.py): importable without side effects, and its smallest
configuration runs on the CPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _load(name: str):
    """The script imported as module ``name`` (registered while loading: dataclasses need it)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@pytest.fixture(scope="module")
def gpu():
    return _load("s2dloc_gpu_benchmark")


def test_import_has_no_side_effects(gpu, capfd):
    _load("s2dloc_gpu_benchmark_again")
    assert capfd.readouterr().out == ""
    assert gpu.BenchConfig().fpnp_batches == (1, 16, 64) and gpu.BenchConfig().size == (640, 480)


def test_quick_run_on_cpu(gpu, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    threads = torch.get_num_threads()
    try:
        rows = gpu.main(["--quick", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "no CUDA device" in out and "cannot run" not in out
    tasks = [
        "F-PnP (torch)",
        "F-PnP (compiled)",
        "extract GN-Net",
        "extract DISK trunk",
        "localize (default)",
    ]
    assert [r.task for r in rows] == tasks
    assert all(r.device == "cpu" and r.ms > 0 and r.per_second > 0 for r in rows)
    assert rows[0].items == rows[1].items == 2 and rows[-1].note.endswith("queries localized")
    assert all(task in out for task in tasks)
