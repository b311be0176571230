"""The ``device`` setting of localization: an extractor loaded by name runs there (on CUDA with
the same answers as on the CPU), and a CUDA device without CUDA is a clear error."""

from __future__ import annotations

import pytest
import torch

from s2dloc.localization import Localizer
from s2dloc.localization.io import read_queries

from .conftest import CONF

EXTRACTOR = "gnnet-distilled"  # the fastest shipped network


def test_extractor_loaded_by_name_runs_on_the_device_setting(world_dir, world_map, device, no_tf32):
    queries = read_queries(world_dir / "queries_with_intrinsics.txt", world_dir / "images")
    conf = {**CONF, "extractor": EXTRACTOR, "device": str(device)}
    loc = Localizer(world_map, conf, progress=False)
    assert next(loc.extractor.parameters()).device == device
    results = [loc.localize(q) for q in queries]
    assert all(not r.error for r in results) and sum(r.success for r in results) >= 3
    if device.type == "cpu":
        return
    cpu = Localizer(world_map, {**conf, "device": "cpu"}, progress=False)
    for q, r in zip(queries, results, strict=True):
        c = cpu.localize(q)
        assert r.success == c.success, q.name
        assert float(r.pose.angle_to(c.pose)) < 0.05, q.name
        assert float(r.pose.center_distance_to(c.pose)) < 0.01, q.name


def test_a_cuda_device_without_cuda_is_refused(world_map, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        Localizer(world_map, {**CONF, "extractor": EXTRACTOR, "device": "cuda"}, progress=False)
