"""Dense re-ranking of the two best PnP poses by how well the map's features fit the query."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from s2dloc.geometry import Camera, Pose
from s2dloc.localization import rerank
from s2dloc.localization.cache import RefFeatures
from s2dloc.localization.map import Map, RefImage
from s2dloc.localization.pnp import PnPResult
from s2dloc.localization.query import Query
from s2dloc.localization.rerank import rerank_by_features, residual_medians

W, H, C = 160, 120, 8
CAM = Camera("PINHOLE", torch.tensor([W, H]), torch.tensor([120.0, 120.0, 80.0, 60.0]))
TRUTH = Pose.exp(torch.tensor([0.1, -0.05, 0.2, 0.02, -0.03, 0.01], dtype=torch.float64))
# 3 degrees and 0.4 units off, as a coherent set of wrong matches would give
WRONG = Pose.exp(torch.tensor([0.4, 0.1, 0.1, 0.05, 0.0, 0.0], dtype=torch.float64)) @ TRUTH


def _scene(seed: int = 0):
    """Points ``(N, 3)`` seen by the query at TRUTH, a smooth random query map ``(C, H, W)`` and
    the points' reference features: the map sampled at their true projections."""
    g = torch.Generator().manual_seed(seed)
    fmap = F.interpolate(torch.randn(1, C, H // 8, W // 8, generator=g), (H, W), mode="bicubic")[0]
    uv = torch.rand(300, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 20, H - 20]) + 10
    z = 4 + 4 * torch.rand(300, 1, generator=g, dtype=torch.float64)
    xyz_cam = torch.cat([(uv - torch.tensor([80.0, 60.0])) / 120 * z, z], 1)
    X = TRUTH.inv().transform(xyz_cam)
    grid = (uv / torch.tensor([W, H]) * 2 - 1).float()[None, None]
    ref = F.grid_sample(fmap[None], grid, align_corners=False)[0, :, 0].T  # (N, C)
    return X, fmap, ref


def test_residual_medians_are_zero_at_the_truth_only():
    X, fmap, ref = _scene()
    at_truth, at_wrong = residual_medians(X, ref, fmap, CAM, [TRUTH, WRONG])
    assert at_truth < 1e-8
    assert at_wrong > 0.05
    behind = Pose.from_Rt(TRUTH.R, TRUTH.t + torch.tensor([0.0, 0.0, -100.0], dtype=torch.float64))
    assert all(np.isnan(residual_medians(X, ref, fmap, CAM, [TRUTH, behind])))


def _setup(first: Pose, second: Pose):
    """A map of two references observing the same points, and PnP results with ``first``
    ranked above ``second``."""
    X, fmap, ref = _scene(1)
    ids = np.arange(len(X), dtype=np.int64)
    images = [RefImage(n, CAM, TRUTH, ids, np.zeros((len(X), 2))) for n in ("a", "b")]
    map_ = Map(images, ids, X.numpy())
    feats = RefFeatures(torch.zeros(len(X), 4), [ref], torch.zeros(4), ids, np.zeros((len(X), 2)))
    refs = {"a": feats, "b": feats}
    ranked = [
        ("a", PnPResult(first, np.ones(200, bool), True)),
        ("b", PnPResult(second, np.ones(150, bool), True)),
    ]
    query = Query("q", CAM, image=np.zeros((H, W, 3), np.uint8))
    return query, [fmap], ranked, refs, map_


def test_rerank_puts_the_pose_that_fits_the_features_first():
    query, levels, ranked, refs, map_ = _setup(WRONG, TRUTH)
    out, record = rerank_by_features(query, levels, ranked, refs, map_, 3, 4000)
    assert [n for n, _ in out] == ["b", "a"] and record.swapped
    assert record.references == ["a", "b"]
    fit_wrong, fit_truth = record.residual_median
    assert fit_truth < 1e-8 < fit_wrong
    assert record.rotation > 2.0


def test_rerank_keeps_the_order_when_the_best_fits_better():
    query, levels, ranked, refs, map_ = _setup(TRUTH, WRONG)
    out, record = rerank_by_features(query, levels, ranked, refs, map_, 3, 4000)
    assert out is ranked and not record.swapped


def test_rerank_skips_a_single_or_the_same_pose():
    query, levels, ranked, refs, map_ = _setup(TRUTH, TRUTH)
    assert rerank_by_features(query, levels, ranked, refs, map_, 3, 4000) == (ranked, None)
    assert rerank_by_features(query, levels, ranked[:1], refs, map_, 3, 4000) == (ranked[:1], None)


def test_rerank_needs_a_clearly_better_fit(monkeypatch):
    """Within the margin the inlier order stands; below it the rival goes first."""
    query, levels, ranked, refs, map_ = _setup(TRUTH, WRONG)
    for rival, swapped in ((0.95, False), (0.85, True), (float("nan"), False)):
        monkeypatch.setattr(rerank, "residual_medians", lambda *a, r=rival, **k: [1.0, r])
        out, record = rerank.rerank_by_features(query, levels, ranked, refs, map_, 3, 4000)
        assert record.swapped is swapped and (out[0][0] == "b") is swapped
