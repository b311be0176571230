"""Known-answer tests of the synthetic ray caster and textures."""

import numpy as np
import pytest

from s2dloc.datasets.synthetic import (
    Primitive,
    Scene,
    look_at,
    render,
    toy_reference_pose,
    toy_scene,
)
from s2dloc.datasets.synthetic.render import backproject, project
from s2dloc.datasets.synthetic.textures import TextureAtlas, photo, procedural
from s2dloc.geometry import Camera, Pose

W, H = 64, 48
PINHOLE = ("PINHOLE", W, H, (40.0, 42.0, 32.0, 24.0))
OPENCV = ("OPENCV", W, H, (40.0, 42.0, 31.0, 23.5, -0.08, 0.01, 0.001, -0.002))
IDENTITY = (np.eye(3), np.zeros(3))


def flat(color=(0.2, 0.4, 0.6), size=8):
    return np.broadcast_to(np.float32(color), (size, size, 3)).copy()


def wall_scene(z=5.0, x0=-50.0, color=(0.2, 0.4, 0.6)):
    """A fronto-parallel quad at depth z covering x >= x0, no shading (ambient 1)."""
    prim = Primitive([x0, -50, z], [150 - x0, 0, 0], [0, 100, 0], "flat")
    return Scene([prim], {"flat": flat(color)}, ambient=1.0, sky=(0.0, 0.0, 0.0))


@pytest.mark.parametrize("camera", [PINHOLE, OPENCV])
def test_fronto_parallel_depth_color_and_ids(camera):
    res = render(wall_scene(5.0), camera, IDENTITY)
    assert res.rgb.shape == (H, W, 3) and res.rgb.dtype == np.float32
    assert res.depth.dtype == np.float32 and res.primitive.dtype == np.int32
    np.testing.assert_allclose(res.depth, 5.0, rtol=1e-6)
    assert (res.primitive == 0).all()
    np.testing.assert_allclose(res.rgb, np.broadcast_to([0.2, 0.4, 0.6], (H, W, 3)), atol=1e-5)


def test_pixel_centre_convention_at_quad_edge():
    # The quad starts at world x = 0.01; cx = 32 so pixel index u sees x = (u + 0.5 - 32) / fx * z.
    # Columns u >= 32 (ray x > 0.01 m at 5 m) hit it, columns u <= 31 do not.
    res = render(wall_scene(5.0, x0=0.01), PINHOLE, IDENTITY)
    assert (res.primitive[:, 32:] == 0).all()
    assert (res.primitive[:, :32] == -1).all()
    assert (res.depth[:, :32] == 0).all()


def test_tilted_plane_matches_analytic_depth():
    R, t = look_at([0.3, -2.0, 1.4], [0.0, 6.0, 0.5])
    ground = Primitive([-20, -20, 0], [40, 0, 0], [0, 60, 0], "flat")
    res = render(Scene([ground], {"flat": flat()}), PINHOLE, (R, t))
    v, u = np.mgrid[0:H, 0:W] + 0.5
    x, y = (u - 32.0) / 40.0, (v - 24.0) / 42.0
    n_cam = R @ np.array([0.0, 0.0, 1.0])  # plane z_world = 0 in camera coordinates
    d = n_cam @ t  # n.X_cam = n.t for points on the plane
    z = d / (n_cam[0] * x + n_cam[1] * y + n_cam[2])
    X_world = (np.stack([x * z, y * z, z], -1) - t) @ R
    hit = (
        (z > 0) & (np.abs(X_world[..., 0]) < 20) & (X_world[..., 1] > -20) & (X_world[..., 1] < 40)
    )
    assert hit.sum() > 0.3 * H * W and (~hit).sum() > 0.1 * H * W  # horizon in view
    np.testing.assert_allclose(res.depth[hit], z[hit], rtol=1e-4)
    assert (res.depth[~hit] == 0).all()


def test_nearest_hit_wins_and_backproject_project_roundtrip():
    scene = toy_scene(0)
    cam = Camera.from_colmap(*OPENCV)
    pose = Pose.from_Rt(*toy_reference_pose())
    res = render(scene, cam, pose)
    near_box = render(scene.replace(primitives=scene.primitives[-10:]), cam, pose)
    both = (near_box.depth > 0) & (res.depth > 0)
    assert both.any()
    assert (res.depth[both] <= near_box.depth[both] + 1e-5).all()
    X = backproject(res.depth, cam, pose)
    v, u = np.nonzero(res.depth > 0)
    p, z, valid = project(cam, pose, X[v, u])
    assert valid.all()
    np.testing.assert_allclose(p, np.stack([u, v], 1) + 0.5, atol=2e-3)
    np.testing.assert_allclose(z, res.depth[v, u], rtol=1e-5)


def test_toy_scene_depth_range_and_determinism():
    a = render(toy_scene(3), PINHOLE, toy_reference_pose())
    b = render(toy_scene(3), PINHOLE, toy_reference_pose())
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert (a.depth > 0).mean() > 0.7
    assert 2.0 < a.depth[a.depth > 0].min() and np.percentile(a.depth[a.depth > 0], 90) < 12.0


def test_mipmapping_prevents_aliasing():
    """A far-away fine checkerboard must render close to its mean grey, not as noise."""
    checker = (np.indices((64, 64)).sum(0) % 2).astype(np.float32)
    tex = np.repeat(checker[..., None], 3, -1)
    prim = Primitive([-500, -500, 200], [1000, 0, 0], [0, 1000, 0], "c", tex_size=(0.64, 0.64))
    res = render(Scene([prim], {"c": tex}, ambient=1.0), PINHOLE, IDENTITY)
    assert abs(res.rgb.mean() - 0.5) < 0.02 and res.rgb.std() < 0.02


def test_atlas_bilinear_wraps_and_interpolates():
    tex = np.zeros((4, 4, 3), np.float32)
    tex[:, 0] = 1.0  # first column white
    atlas = TextureAtlas([tex])
    s = np.array([0.5, 1.0, 4.0, 1.5], np.float32)  # centre of col 0, halfway, wrap, col 1
    out = atlas.sample(np.zeros(4, np.int64), s, np.full(4, 2.5, np.float32), np.zeros(4))
    np.testing.assert_allclose(out[:, 0], [1.0, 0.5, 0.5, 0.0], atol=1 / 32 + 1e-6)


def test_textures_and_bad_inputs():
    assert photo("brick").shape == (256, 256, 3) and 0 <= photo("astronaut").min()
    assert procedural("foliage", 1).std() > 0.02
    with pytest.raises(ValueError, match="unknown photo"):
        photo("nope")
    with pytest.raises(ValueError, match="degenerate"):
        Primitive([0, 0, 0], [1, 0, 0], [2, 0, 0], "x")
    with pytest.raises(ValueError, match="undefined textures"):
        render(Scene([Primitive([0, 0, 5], [1, 0, 0], [0, 1, 0], "x")], {}), PINHOLE, IDENTITY)
