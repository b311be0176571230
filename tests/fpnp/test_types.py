"""The named types of the torch path: residuals, match residuals and per-query selection."""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.fpnp.levels import Level
from s2dloc.fpnp.system import Evaluation
from s2dloc.geometry import Camera

D = torch.float64


def _ramp_level() -> Level:
    """A 2-channel 8x6 map ``F(x, y) = (x, y)`` at texel centres, two points' references."""
    ys, xs = torch.meshgrid(torch.arange(6, dtype=D), torch.arange(8, dtype=D), indexing="ij")
    maps = torch.stack([xs + 0.5, ys + 0.5])[None]  # (1, 2, 6, 8): value = pixel coordinate
    ref = torch.tensor([[[3.0, 2.0], [4.5, 3.5]]], dtype=D)  # (1, 2, 2)
    camera = Camera(
        "PINHOLE",
        torch.tensor([[8.0, 6.0]], dtype=D),
        torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=D),
    )
    return Level(maps, ref, camera)


def test_residuals_and_match_residuals_known_values():
    level = _ramp_level()
    # Pixels (3.5, 2.5) and (4.0, 3.0) at the identity pose (unit focal length, depth 1).
    points = torch.tensor([[[3.5, 2.5, 1.0], [4.0, 3.0, 1.0]]], dtype=D)
    M = torch.eye(4, dtype=D)[None]
    res = level.residuals(points, M, 1.0, 1e-3)
    assert res.channels == 2 and res.valid.tolist() == [[True, True]]
    torch.testing.assert_close(res.Xc, points)
    # r = F(p) - f: (0.5, 0.5) and (-0.5, -0.5); the ramp's gradient is the identity.
    torch.testing.assert_close(res.sq, torch.tensor([[0.5, 0.5]], dtype=D))
    torch.testing.assert_close(res.gram[0, :, :2, :2], torch.eye(2, dtype=D).expand(2, 2, 2))
    torch.testing.assert_close(
        res.gram[0, :, :2, 2], torch.tensor([[0.5, 0.5], [-0.5, -0.5]], dtype=D)
    )
    match = level.match_residuals(points, M, torch.tensor([[1.0, 0.0]], dtype=D), 1.0, 1e-3)
    assert match.sq_match[0, 0].item() == pytest.approx(0.5, abs=1e-12) and math.isnan(
        match.sq_match[0, 1].item()
    )
    assert match.sq_null[0, 0].item() == pytest.approx(
        0.5, abs=1e-12
    )  # its own partner: one valid point
    assert match.sq_grad[0, 0].item() == pytest.approx(2.0, abs=1e-12) and math.isnan(
        match.sq_grad[0, 1].item()
    )


def test_evaluation_where_selects_per_query_and_keeps_missing_fields():
    a = Evaluation(torch.tensor([1.0, 2.0]), torch.tensor([3, 4]), torch.zeros(2), torch.ones(2))
    b = Evaluation(torch.tensor([5.0, 6.0]), torch.tensor([7, 8]), torch.ones(2), torch.ones(2))
    a.H, b.H = torch.zeros(2, 6, 6), torch.ones(2, 6, 6)
    out = a.where(torch.tensor([True, False]), b)
    assert out.cost.tolist() == [1.0, 6.0] and out.num_valid.tolist() == [3, 8]
    assert out.H[0].sum() == 0 and out.H[1].sum() == 36
    assert out.g is None and out.res_var is None
