"""FeatureMetricPnP mechanics: batching with padding, weights, differentiability, bad input."""

from __future__ import annotations

import pytest
import torch

from s2dloc.datasets.toy import perturb
from s2dloc.fpnp import FeatureMetricPnP, FPnPResult
from s2dloc.geometry import Camera, Pose

from ._helpers import batch_camera, errors, refine_one, refine_toy


def _subset(refs, idx):
    return [r[idx] for r in refs]


def _assert_same_pose(a: Pose, b: Pose, deg: float = 1e-4, dist: float = 1e-5):
    assert a.angle_to(b).max().item() < deg
    assert a.center_distance_to(b).max().item() < dist


def _assert_finite(result: FPnPResult):
    for x in (result.pose.R, result.pose.t, result.covariance, result.cost_init, result.cost_final):
        assert torch.isfinite(x).all()


# ----------------------------------------------------------------------------- batching


def test_batch_with_padding_equals_single_queries(backend, toy, photometric):
    # Real (non-oracle) features, so that costs and covariances are well above round-off.
    refs, maps = photometric
    N = toy.points3d.shape[0]
    g = torch.Generator().manual_seed(0)
    sizes = [300, 180, N]
    subsets = [torch.randperm(N, generator=g)[:n] for n in sizes]
    inits = [perturb(toy.query_pose, 3.0, 0.15, s) for s in range(3)]
    solver = FeatureMetricPnP(backend=backend)
    singles = [
        solver.refine(toy.points3d[i].float(), _subset(refs, i), maps, toy.camera, init)
        for i, init in zip(subsets, inits, strict=True)
    ]
    # Pad with real-looking points carrying wrong features: they must be ignored by the mask.
    B = len(sizes)
    points = toy.points3d.float()[torch.randperm(N, generator=g)].repeat(B, 1, 1)
    batch_refs = [torch.randn(B, N, r.shape[1], generator=g) for r in refs]
    mask = torch.zeros(B, N, dtype=torch.bool)
    for b, idx in enumerate(subsets):
        points[b, : len(idx)] = toy.points3d[idx].float()
        for level, r in enumerate(refs):
            batch_refs[level][b, : len(idx)] = r[idx]
        mask[b, : len(idx)] = True
    result = solver.refine_batch(
        points,
        batch_refs,
        [m.expand(B, -1, -1, -1) for m in maps],
        batch_camera(toy.camera, B),
        Pose.stack(inits),
        mask=mask,
    )
    assert result.pose.shape == (B,) and result.covariance.shape == (B, 6, 6)
    assert result.iterations.shape == (B, 3)
    for b, single in enumerate(singles):
        assert bool(result.success[b]) and bool(single.success)
        _assert_same_pose(result.pose[b], single.pose)
        assert result.num_valid[b] == single.num_valid
        torch.testing.assert_close(result.cost_final[b], single.cost_final, rtol=1e-3, atol=1e-12)
        scale = single.covariance.abs().max().item()  # off-diagonal entries near 0: relative
        torch.testing.assert_close(
            result.covariance[b], single.covariance, rtol=1e-2, atol=1e-3 * scale
        )
        rot, centre = errors(toy, result.pose[b])
        assert rot < 0.2 and centre < 0.005


def test_result_indexing_and_unbatched_shapes(backend, toy, oracle):
    result = FeatureMetricPnP(backend=backend, max_iterations=3).refine(
        toy.points3d.float(), *oracle, toy.camera, perturb(toy.query_pose, 2.0, 0.1, 0)
    )
    assert result.pose.shape == () and result.success.shape == ()
    assert result.iterations.shape == (3,) and (result.iterations <= 3).all()
    assert result.covariance.shape == (6, 6) and result.pose.dtype == torch.float64
    torch.testing.assert_close(result.covariance, result.covariance.T)
    assert (torch.linalg.eigvalsh(result.covariance) > 0).all()


# ----------------------------------------------------------------------------- weights


def test_zero_weights_equal_removing_points(backend, toy, photometric):
    refs, maps = photometric
    N = toy.points3d.shape[0]
    keep = torch.rand(N, generator=torch.Generator().manual_seed(1)) > 0.3
    # Give the dropped points wrong features so that a leak would show.
    wrong = [r.clone() for r in refs]
    for r in wrong:
        r[~keep] = r[~keep].flip(0)
    init = perturb(toy.query_pose, 4.0, 0.2, 7)
    solver = FeatureMetricPnP(backend=backend)
    weighted = solver.refine(
        toy.points3d.float(), wrong, maps, toy.camera, init, weights=keep.float()
    )
    removed = solver.refine(toy.points3d[keep].float(), _subset(refs, keep), maps, toy.camera, init)
    assert weighted.success and removed.success
    _assert_same_pose(weighted.pose, removed.pose)
    assert weighted.num_valid == removed.num_valid
    assert weighted.iterations.tolist() == removed.iterations.tolist()
    torch.testing.assert_close(weighted.cost_final, removed.cost_final, rtol=1e-4, atol=1e-14)


def test_uniform_weight_scale_does_not_change_the_answer(backend, toy, photometric):
    init = perturb(toy.query_pose, 3.0, 0.15, 3)
    solver = FeatureMetricPnP(backend=backend, loss="huber")
    ones = torch.ones(toy.points3d.shape[0])
    a = solver.refine(toy.points3d.float(), *photometric, toy.camera, init, weights=ones)
    b = solver.refine(toy.points3d.float(), *photometric, toy.camera, init, weights=5 * ones)
    _assert_same_pose(a.pose, b.pose, 1e-3, 1e-4)
    torch.testing.assert_close(a.cost_final, b.cost_final, rtol=1e-4, atol=0.0)


# ----------------------------------------------------------------------------- differentiable


@pytest.fixture(scope="module")
def tiny(toy, oracle):
    """24 visible points, one 80x60 level, float64: small enough for gradcheck."""
    refs, maps = oracle
    _, valid = toy.camera.project(toy.query_pose.transform(toy.points3d), margin=12.0)
    idx = torch.nonzero(valid)[:24, 0]
    return (
        toy.points3d[idx],
        refs[2][idx].double(),
        maps[2].double(),
        toy.camera,
        perturb(toy.query_pose, 1.0, 0.05, 0),
    )


def _unrolled(max_iterations: int = 2) -> FeatureMetricPnP:
    # Fixed lambda and no early stopping: a smooth function of the inputs.
    return FeatureMetricPnP(
        loss="squared",
        max_iterations=max_iterations,
        lambda_init=1e-2,
        lambda_up=1.0,
        lambda_down=1.0,
        rotation_tol=0.0,
        translation_tol=0.0,
        gradient_tol=0.0,
        differentiable=True,
    )


def test_differentiable_gradcheck_reference_features(tiny, device):
    points, ref, fmap, camera, init = (x.to(device) for x in tiny)
    solver = _unrolled()

    def pose_of(ref):
        result = solver.refine(points, [ref], [fmap], camera, init)
        assert result.success and result.iterations.item() == 2
        assert result.pose.device.type == device.type
        return torch.cat([result.pose.R.flatten(), result.pose.t])

    assert torch.autograd.gradcheck(
        pose_of, (ref.clone().requires_grad_(),), eps=1e-6, atol=1e-6, rtol=1e-4
    )


def test_differentiable_query_maps_match_finite_differences(tiny):
    points, ref, fmap, camera, init = tiny
    solver = _unrolled(3)
    direction = torch.randn(
        fmap.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )

    def pose_of(fmap):
        result = solver.refine(points, [ref], [fmap], camera, init)
        return (result.pose @ init.inv()).log()

    x = fmap.clone().requires_grad_()
    out = pose_of(x)
    assert out.requires_grad
    J = torch.stack([torch.autograd.grad(out[i], x, retain_graph=True)[0] for i in range(6)])
    assert torch.isfinite(J).all() and J.abs().sum() > 0
    analytic = (J * direction).flatten(1).sum(-1)
    eps = 1e-6
    with torch.no_grad():
        numeric = (pose_of(fmap + eps * direction) - pose_of(fmap - eps * direction)) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-4, atol=1e-8)


def test_not_differentiable_by_default(tiny):
    points, ref, fmap, camera, init = tiny
    result = FeatureMetricPnP().refine(points, [ref], [fmap], camera, init)
    assert not result.pose.R.requires_grad and not result.covariance.requires_grad


def _bad_shapes(toy, oracle):
    refs, maps = oracle
    P = toy.points3d.float()
    return {
        "points3d": dict(points=P[:, :2]),
        "ref_features\\[0\\]": dict(refs=[refs[0][:, :2], *refs[1:]]),
        "ref_features\\[1\\]": dict(refs=[refs[0], refs[1][:-1], refs[2]]),
        "query_features\\[2\\]": dict(maps=[maps[0], maps[1], maps[2][0]]),
        "ref_features and query_features": dict(refs=refs[:2]),
    }


@pytest.mark.parametrize(
    "name",
    [
        "points3d",
        "ref_features\\[0\\]",
        "ref_features\\[1\\]",
        "query_features\\[2\\]",
        "ref_features and query_features",
    ],
)
def test_wrong_shapes_raise_naming_the_argument(toy, oracle, name):
    with pytest.raises(ValueError, match=name):
        refine_one("auto", toy, oracle, **_bad_shapes(toy, oracle)[name])


def test_wrong_weights_and_mask_shapes_raise(toy, oracle):
    init = perturb(toy.query_pose, 3.0, 0.15, 0)
    P = toy.points3d.float()
    with pytest.raises(ValueError, match="weights"):
        FeatureMetricPnP().refine(P, *oracle, toy.camera, init, weights=torch.ones(7))
    with pytest.raises(ValueError, match="mask"):
        FeatureMetricPnP().refine_batch(
            P[None],
            [r[None] for r in oracle[0]],
            [m[None] for m in oracle[1]],
            batch_camera(toy.camera, 1),
            init[None],
            mask=torch.ones(1, 3, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="init_pose"):
        FeatureMetricPnP().refine_batch(
            P[None],
            [r[None] for r in oracle[0]],
            [m[None] for m in oracle[1]],
            batch_camera(toy.camera, 1),
            Pose.stack([init, init]),
        )


def test_levels_in_any_order(backend, toy, oracle):
    refs, maps = oracle
    init = perturb(toy.query_pose, 3.0, 0.15, 5)
    solver = FeatureMetricPnP(backend=backend)
    P = toy.points3d.float()
    shuffled = solver.refine(
        P, [refs[1], refs[2], refs[0]], [maps[1], maps[2], maps[0]], toy.camera, init
    )
    ordered = solver.refine(P, refs, maps, toy.camera, init)
    _assert_same_pose(shuffled.pose, ordered.pose, 1e-6, 1e-7)
    assert shuffled.iterations.tolist() == ordered.iterations.tolist()


def test_camera_of_another_model_is_accepted(backend, toy, oracle):
    # A PINHOLE camera expressed as OPENCV with zero distortion gives the same answer.
    cam = toy.camera.as_opencv()
    assert isinstance(cam, Camera) and cam.model == "OPENCV"
    init = perturb(toy.query_pose, 3.0, 0.15, 6)
    a = FeatureMetricPnP(backend=backend).refine(toy.points3d.float(), *oracle, cam, init)
    b = FeatureMetricPnP(backend=backend).refine(toy.points3d.float(), *oracle, toy.camera, init)
    _assert_same_pose(a.pose, b.pose, 1e-5, 1e-6)


def test_backends_agree(toy, photometric):
    pytest.importorskip("numba")
    init = Pose.stack([perturb(toy.query_pose, 4.0, 0.2, s) for s in range(3)])
    out = {}
    for backend in ("torch", "numba"):
        out[backend] = refine_toy(FeatureMetricPnP(backend=backend), toy, *photometric, init)
    a, b = out["torch"], out["numba"]
    assert a.success.tolist() == b.success.tolist() == [True] * 3
    _assert_same_pose(a.pose, b.pose, 1e-3, 1e-4)
    assert (a.num_valid - b.num_valid).abs().max() <= 1
    # (The torch path reports costs and covariances in the maps' dtype, numba in float64.)
    close = {"check_dtype": False}
    torch.testing.assert_close(a.cost_final, b.cost_final, rtol=1e-3, atol=0.0, **close)
    torch.testing.assert_close(a.covariance, b.covariance, rtol=0.05, atol=1e-10, **close)
