"""The compiled (numba) and torch backends compute the same thing.

One evaluation (cost, J^T r, J^T W J) agrees for every camera model and robust loss; the
compiled losses pass the hand-computed cases; end to end, what ``fast.py`` documents holds
over a grid of settings; and the compiled path reads maps of any memory layout in place.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from s2dloc.fpnp import FeatureMetricPnP, RobustLoss, fast
from s2dloc.fpnp.fast import bind_map, conf_vector, level_arrays, map_layout, query_map
from s2dloc.fpnp.kernel_model import LOSS_IDS, robust_loss
from s2dloc.fpnp.kernels import evaluate, prefill_texels
from s2dloc.fpnp.levels import level_weights, prepare_levels
from s2dloc.geometry import MODELS

from ._fuzz import well_posed
from .test_losses import ALL_LOSSES, CASES

MODEL_NAMES = list(MODELS)
BACKENDS = ("torch", "numba")


def _evaluations(model: str, name: str, alpha: float, dtype: torch.dtype):
    """Torch and compiled evaluation of the same 3 queries at perturbed poses (finest level)."""
    batch = well_posed(3, B=3, N=48, model=model, deg=3.0)
    maps, refs = [m.to(dtype) for m in batch.maps], [r.to(dtype) for r in batch.refs]
    levels, w = prepare_levels(
        batch.points, refs, maps, batch.camera, batch.init, None, None, channels_last=False
    )
    level = levels[-1]
    M = batch.init.matrix().to(dtype)
    points = batch.points.to(dtype)
    scale = 0.7  # residual norms are ~0.1-3: every robust loss is in its non-quadratic range
    solver = FeatureMetricPnP(loss=name, barron_alpha=alpha, loss_scale=scale)
    ev = solver._evaluate(level, points, w, M, scale)
    fmap, ref, cam, _ = level_arrays(level)
    conf = conf_vector(solver.conf, scale)
    out = []
    for b in range(3):
        H, g, sq = np.empty((6, 6)), np.empty(6), np.empty(points.shape[1])
        fm = bind_map(fmap[0], fmap[1][b], np.arange(points.shape[1]), ref.shape[-1])
        cost, _, nvalid, *_ = evaluate(
            points[b].double().numpy(),
            M[b].double().numpy(),
            fm,
            ref[b],
            w[b].double().numpy(),
            cam[b],
            level.camera.has_distortion,
            conf,
            scale,
            H,
            g,
            sq,
            np.arange(points.shape[1]),
        )
        out.append((cost, nvalid, H, g, sq))
    return ev, out


def _close(a, b, rtol):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * b.abs().max().item())


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("name, alpha", ALL_LOSSES)
def test_one_evaluation_agrees(model, name, alpha):
    ev, compiled = _evaluations(model, name, alpha, torch.float64)
    for b, (cost, nvalid, H, g, _) in enumerate(compiled):
        assert nvalid == ev.num_valid[b] > 30
        _close(cost, ev.cost[b], 1e-10)
        _close(g, ev.g[b], 1e-9)
        _close(H, ev.H[b], 1e-9)
        assert np.linalg.eigvalsh(H).min() > 0  # a real, full-rank system is compared


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_one_evaluation_agrees_in_float32(model):
    ev, compiled = _evaluations(model, "cauchy", 0.0, torch.float32)
    for b, (cost, nvalid, H, g, _) in enumerate(compiled):
        assert nvalid == ev.num_valid[b]
        _close(cost, ev.cost[b], 1e-4)
        _close(g, ev.g[b], 1e-3)
        _close(H, ev.H[b], 1e-4)


@pytest.mark.parametrize("name, alpha, c, s, rho, weight", CASES)
def test_compiled_loss_known_values(name, alpha, c, s, rho, weight):
    value, w = robust_loss(s, c * c, LOSS_IDS[name], alpha)
    assert value == pytest.approx(rho, rel=1e-12, abs=1e-14)
    assert w == pytest.approx(weight, rel=1e-12)


@pytest.mark.parametrize("name, alpha", ALL_LOSSES)
def test_compiled_loss_equals_torch_loss(name, alpha):
    s = torch.logspace(-4, 3, 30, dtype=torch.float64) * 0.49
    rho, w = RobustLoss(name, 0.7, alpha)(s)
    out = np.array([robust_loss(x, 0.49, LOSS_IDS[name], alpha) for x in s.tolist()])
    np.testing.assert_allclose(out[:, 0], rho.numpy(), rtol=1e-10)  # pow cancels near 0
    np.testing.assert_allclose(out[:, 1], w.numpy(), rtol=1e-12)


GRID = [(m, "cauchy", 0.0, None) for m in MODEL_NAMES] + [
    ("PINHOLE", "squared", 0.0, None),
    ("OPENCV", "huber", 0.0, 0.5),
    ("RADIAL", "barron", 1.0, None),
    ("SIMPLE_RADIAL", "barron", -2.0, 0.3),
    ("PINHOLE", "barron", -math.inf, None),
    ("OPENCV", "cauchy", 0.0, 0.2),
]


@pytest.mark.parametrize("model, name, alpha, scale", GRID)
def test_end_to_end_as_documented(model, name, alpha, scale, device, dtype, tol):
    """fast.py: float64 -> same iterations, poses within 1e-9 deg; float32 -> poses within
    1e-4 deg and 1e-5 of the depth; success flags identical in both. The torch backend runs
    on ``device``, the compiled one on the CPU."""
    batch = well_posed(11, B=4, N=48, model=model)
    batch.maps = [m.to(dtype) for m in batch.maps]
    batch.refs = [r.to(dtype) for r in batch.refs]
    on_device = replace(
        batch,
        points=batch.points.to(device),
        refs=[r.to(device) for r in batch.refs],
        maps=[m.to(device) for m in batch.maps],
        camera=batch.camera.to(device),
        init=batch.init.to(device),
    )
    kw = dict(loss=name, barron_alpha=alpha, loss_scale=scale)
    a = on_device.run(FeatureMetricPnP(backend="torch", **kw))
    b = batch.run(FeatureMetricPnP(backend="numba", **kw))
    assert a.pose.device.type == device.type
    pose = a.pose.to("cpu")
    assert a.success.tolist() == b.success.tolist() == [True] * 4
    assert a.message == b.message
    torch.testing.assert_close(pose.matrix(), b.pose.matrix(), **tol)
    rot, centre = pose.angle_to(b.pose), pose.center_distance_to(b.pose)
    if dtype == torch.float64:
        assert a.iterations.tolist() == b.iterations.tolist()
        assert rot.max() < 1e-9 and centre.max() < 1e-10, (rot, centre)
    else:
        assert rot.max() < 1e-4 and centre.max() < 4e-5, (rot, centre)  # depths are 2-6


def _layout(m: torch.Tensor, layout: str) -> torch.Tensor:
    """The same ``(B, C, H, W)`` values stored in another memory layout."""
    if layout == "channels_last":
        return m.contiguous(memory_format=torch.channels_last)
    if layout == "every_other_channel":  # a view into a wider map
        out = torch.empty(m.shape[0], 2 * m.shape[1], *m.shape[2:], dtype=m.dtype)[:, ::2]
        return out.copy_(m)
    if layout == "column_major":
        return m.transpose(2, 3).contiguous().transpose(2, 3)
    return m.contiguous()


@pytest.mark.parametrize("layout", ["channels_last", "every_other_channel", "column_major"])
def test_compiled_path_reads_any_layout_in_place(layout):
    batch = well_posed(2, B=2, N=48)
    maps = [_layout(m, layout) for m in batch.maps]
    assert not any(m.is_contiguous() for m in maps)
    levels, _ = prepare_levels(
        batch.points, batch.refs, maps, batch.camera, batch.init, None, None, channels_last=False
    )
    for level in levels:
        flat = level_arrays(level)[0][0]
        assert any(flat.ctypes.data == m.data_ptr() for m in maps)  # a view, not a copy
    solver = FeatureMetricPnP(backend="numba")
    ref = batch.run(solver)
    batch.maps = maps
    out = batch.run(solver)
    assert out.success.all() and out.iterations.tolist() == ref.iterations.tolist()
    assert out.pose.angle_to(ref.pose).max() < 1e-9  # (summation order may differ)


def finest_plain_level(batch):
    """The finest level of ``batch`` prepared on plain maps, as the compiled kernels read it:
    ``((flat, layout), ref, cam, weights)``."""
    levels, w = prepare_levels(
        batch.points,
        batch.refs,
        batch.maps,
        batch.camera,
        batch.init,
        None,
        None,
        channels_last=False,
    )
    arrays, ref, cam, _ = level_arrays(levels[-1])
    return arrays, ref, cam, w


def test_texel_cache_reads_what_the_map_holds():
    """Plain maps are read through the per-point texel cache: a sequence of poses that keeps
    some points in their cell and moves others (hits, misses, returns) gives the evaluations
    of reading the map in place."""
    batch = well_posed(4, B=1, N=64)
    (flat, layout), ref, cam, w = finest_plain_level(batch)
    assert layout[0, 3] != 1  # plain (C, H, W): channels far apart
    solver = FeatureMetricPnP()
    conf, N = conf_vector(solver.conf, 0.5), batch.points.shape[1]
    order = np.arange(N)
    cached = bind_map(flat, layout[0], order, ref.shape[-1])
    direct = bind_map(flat, layout[0], order, ref.shape[-1], cache=False)
    assert cached[2].size == 12 * N * ref.shape[-1] and direct[2].size == 0
    points = batch.points[0].double().numpy()
    M0 = batch.init.matrix()[0].double().numpy()
    moves = [np.eye(4)] + [np.eye(4) for _ in range(3)]
    for k, shift in enumerate([0.0, 0.002, 0.02, 0.0]):  # back to the start at the end
        moves[k][0, 3] = shift
    hits_seen = []
    for move in moves:
        M = move @ M0
        outs = []
        for fmap in (cached, direct):
            H, g, sq = np.empty((6, 6)), np.empty(6), np.empty(N)
            ev = evaluate(
                points,
                M,
                fmap,
                ref[0],
                w[0].double().numpy(),
                cam[0],
                False,
                conf,
                0.5,
                H,
                g,
                sq,
                order,
            )
            outs.append((ev, H.copy(), g.copy(), sq.copy()))
        (ev_c, H_c, g_c, sq_c), (ev_d, H_d, g_d, sq_d) = outs
        # Equal up to the order of the channel sums (the cache is read vectorized).
        assert ev_c[2] == ev_d[2] > 30
        np.testing.assert_allclose(ev_c, ev_d, rtol=1e-12)
        for a, b in ((H_c, H_d), (g_c, g_d), (sq_c, sq_d)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())
        hits_seen.append(cached[3][:, 1:].copy())
    # The small move kept some points in their cell and moved others; the larger one moved more.
    same_small = (hits_seen[1] == hits_seen[0]).all(1)
    same_large = (hits_seen[2] == hits_seen[0]).all(1)
    assert 0 < same_large.sum() < same_small.sum() < N


def test_prefilled_texel_cache_holds_what_the_first_evaluation_reads():
    """``prefill_texels`` at a pose leaves the cache and cells exactly as the first evaluation
    at that pose would, for every point of positive weight (others stay empty), and the
    evaluation on the prefilled cache gives the same results without refilling any cell."""
    batch = well_posed(6, B=1, N=64)
    (flat, layout), ref, cam, w = finest_plain_level(batch)
    conf, N, C = conf_vector(FeatureMetricPnP().conf, 0.5), batch.points.shape[1], ref.shape[-1]
    order = np.arange(N)[::-1].copy()
    points = batch.points[0].double().numpy()
    M = batch.init.matrix()[0].double().numpy()
    weights = w[0].double().numpy().copy()
    weights[::5] = 0.0  # these points are neither evaluated nor prefilled

    def run(fmap):
        H, g, sq = np.empty((6, 6)), np.empty(6), np.empty(N)
        args = (points, M, fmap, ref[0], weights, cam[0], False, conf, 0.5, H, g, sq, order)
        return evaluate(*args), H, g, sq

    evaluated = bind_map(flat, layout[0], order, C)
    expected = run(evaluated)
    evaluated_texels = evaluated[2].copy()  # bind_map hands out one scratch buffer per thread
    prefilled = bind_map(flat, layout[0], order, C)
    prefilled[2][:] = np.nan
    prefill_texels(points, M, prefilled, C, weights, cam[0], False, conf, order)
    empty = np.iinfo(np.int64).min
    assert (prefilled[3][::5, 1:] == empty).all() and (prefilled[3][1::5, 1:] != empty).all()
    np.testing.assert_array_equal(prefilled[3], evaluated[3])
    filled = prefilled[3][:, 1] != empty
    texels = prefilled[2].reshape(N, 12 * C)[prefilled[3][filled, 0]]
    expected_texels = evaluated_texels.reshape(N, 12 * C)[evaluated[3][filled, 0]]
    np.testing.assert_array_equal(texels, expected_texels)
    cells = prefilled[3].copy()
    got = run(prefilled)
    np.testing.assert_array_equal(prefilled[3], cells)
    assert got[0] == expected[0]
    for a, b in zip(got[1:], expected[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_small_plain_levels_are_copied_channels_last():
    """A plain level with at most ``SMALL_LEVEL_PIXELS_PER_POINT`` pixels per point is read
    from a channels-last copy of the same values; larger levels and channels-last maps in
    place."""
    maps = torch.randn(2, 5, 6, 7, dtype=torch.float64)  # 42 pixels per map
    assert fast.SMALL_LEVEL_PIXELS_PER_POINT == 24
    flat, layout = map_layout(maps)
    out, lay = query_map(maps[1], flat, layout[1], N=2)  # 21 pixels per point
    assert lay.tolist() == [0, 7 * 5, 5, 1, 6, 7]
    np.testing.assert_array_equal(out.reshape(6, 7, 5), maps[1].permute(1, 2, 0).numpy())
    same, lay = query_map(maps[1], flat, layout[1], N=1)  # 42 pixels per point: in place
    assert same is flat and lay.tolist() == layout[1].tolist()
    cl = maps.contiguous(memory_format=torch.channels_last)
    flat_cl, layout_cl = map_layout(cl)
    same, _ = query_map(cl[1], flat_cl, layout_cl[1], N=1000)
    assert same is flat_cl


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_copied_levels_give_the_texel_cache_results(monkeypatch, dtype):
    """Refining on plain maps gives the same iterations and poses, bit for bit, whether small
    levels are copied channels-last or read through the texel cache (both read the same
    values in the same order)."""
    batch = well_posed(5, B=2, N=80)
    batch.maps = [m.to(dtype).contiguous() for m in batch.maps]
    batch.refs = [r.to(dtype) for r in batch.refs]
    assert (
        min(m.shape[-1] * m.shape[-2] for m in batch.maps)
        <= 24 * 80
        < max(m.shape[-1] * m.shape[-2] for m in batch.maps)
    )
    solver = FeatureMetricPnP(backend="numba")
    copied = batch.run(solver)
    monkeypatch.setattr(fast, "SMALL_LEVEL_PIXELS_PER_POINT", 0)
    cached = batch.run(solver)
    assert copied.iterations.tolist() == cached.iterations.tolist()
    assert torch.equal(copied.pose.matrix(), cached.pose.matrix())
    assert torch.equal(copied.success, cached.success)


def test_level_weights_keep_evenly_spaced_weighted_points_on_coarse_levels():
    w = torch.tensor([[1.0, 0.0, 2.0, 3.0, 0.0, 4.0, 5.0], [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    coarse, mid, fine = level_weights(w, 3, 3)
    assert fine is w and mid is coarse
    # row 0: weighted points 0, 2, 3, 5, 6 -> the 1st, 3rd and 5th; row 1 keeps its two
    assert coarse.tolist() == [[1.0, 0, 0, 3.0, 0, 0, 5.0], [0, 1.0, 1.0, 0, 0, 0, 0]]
    assert all(lw is w for lw in level_weights(w, 3, 0))
    assert all(lw is w for lw in level_weights(w, 2, 7))


@pytest.mark.parametrize("model", ["PINHOLE", "OPENCV"])
def test_backends_agree_with_fewer_points_on_coarse_levels(model):
    """coarse_max_points changes the coarse levels identically in both backends (same
    iterations, same poses in float64), and the finest level still reaches the truth."""
    batch = well_posed(5, B=3, N=64, model=model)
    batch.maps = [m.double() for m in batch.maps]
    batch.refs = [r.double() for r in batch.refs]
    a, b = (batch.run(FeatureMetricPnP(backend=n, coarse_max_points=16)) for n in BACKENDS)
    assert a.iterations.tolist() == b.iterations.tolist()
    assert a.pose.angle_to(b.pose).max() < 1e-9
    assert a.success.tolist() == b.success.tolist() == [True] * 3
    assert a.pose.angle_to(batch.truth).max() < 1e-3
    # the coarse level runs exactly as an all-levels run weighted by the coarse subset does
    subset = level_weights(torch.ones(3, 64, dtype=torch.float64), 2, 16)[0]
    args = (batch.points, batch.refs, batch.maps, batch.camera, batch.init)
    sub = FeatureMetricPnP(backend="torch", coarse_max_points=16)
    full = FeatureMetricPnP(backend="torch")
    h_sub = sub.refine_batch(*args, return_history=True).history[0]
    h_full = full.refine_batch(*args, subset, return_history=True).history[0]
    assert len(h_sub) == len(h_full) > 1
    for r_sub, r_full in zip(h_sub, h_full):
        assert torch.equal(r_sub.cost, r_full.cost)
