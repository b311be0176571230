"""Real-data benchmark helpers: conditions, held-out split, recall, retrieval correctness."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from s2dloc.evaluation.conditions import CONDITIONS, apply_condition
from s2dloc.evaluation.real import (
    STRECHA_HELD_OUT,
    STRECHA_SCENES,
    STRECHA_TRAINING_SCENES,
    correct_references,
    covisible_fraction,
    depth_points,
    held_out_images,
    points_problem,
    retrieval_hit,
    summarize,
    threshold_label,
    training_images,
)
from s2dloc.geometry import Camera, Pose
from s2dloc.localization.real_bench import basin_reference, synthetic_retrieval


def _image(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((24, 32, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_conditions_are_deterministic_and_keep_shape(condition):
    img = _image()
    a, b = apply_condition(img, condition, seed=3), apply_condition(img, condition, seed=3)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    if condition != "none":
        assert not np.array_equal(a, apply_condition(img, condition, seed=4))


def test_dark_conditions_follow_their_formula():
    img = np.full((64, 64, 3), 200, np.uint8)
    x = 200 / 255
    dark = apply_condition(img, "dark", 0).astype(np.float64) / 255
    np.testing.assert_allclose(
        dark.mean((0, 1)), 0.25 * x**2.5 * np.array([1, 0.85, 0.65]), atol=2e-3
    )
    np.testing.assert_allclose(dark.std((0, 1)), 3 / 255, rtol=0.1)
    very = apply_condition(img, "very_dark", 0).astype(np.float64) / 255
    np.testing.assert_allclose(very.mean(), 0.12 * x**2.5, atol=2e-3)
    np.testing.assert_allclose(very.std((0, 1)), 4 / 255, rtol=0.1)
    assert very.mean() < dark.mean() < x
    np.testing.assert_array_equal(apply_condition(img, "none"), img)


def test_snow_brightens_and_fog_lowers_contrast():
    img = _image(1)
    assert apply_condition(img, "snow").mean() > img.mean() + 40
    fog = apply_condition(img, "fog").astype(np.float64)
    assert fog.std() < 0.6 * img.astype(np.float64).std()


def test_condition_errors():
    with pytest.raises(ValueError, match="unknown condition 'rain'"):
        apply_condition(_image(), "rain")
    with pytest.raises(ValueError, match="uint8"):
        apply_condition(_image().astype(np.float32), "dark")


def test_held_out_split_is_disjoint_from_training():
    assert STRECHA_HELD_OUT["castle-P30"] == tuple(
        f"{i:04d}.jpg" for i in (2, 6, 10, 14, 18, 22, 26)
    )
    assert STRECHA_HELD_OUT["Herz-Jesus-P25"][:3] == ("0000.jpg", "0003.jpg", "0006.jpg")
    for scene, n in STRECHA_SCENES.items():
        names = [f"{i:04d}.jpg" for i in range(n)]
        train = training_images(scene, names)
        assert not set(train) & set(held_out_images(scene))
        assert sorted(set(train) | set(held_out_images(scene))) == names
    assert len(held_out_images("Herz-Jesus-P25")) == math.ceil(25 / 3)
    with pytest.raises(ValueError, match="unknown strecha_dev scene"):
        training_images("fountain", [])


def test_training_configs_exclude_the_held_out_split():
    configs = Path(__file__).parents[2] / "configs"
    distill = yaml.safe_load((configs / "gnnet_distilled.yaml").read_text())["distill"]
    assert "strecha_dev/Herz-Jesus-P25/*" in distill["exclude"]
    for name in held_out_images("castle-P30"):
        assert f"strecha_dev/castle-P30/images/{name}" in distill["exclude"]
    conf = yaml.safe_load((configs / "gnnet_disk.yaml").read_text())
    sources = conf["data"]["sources"]
    text = json.dumps(sources)
    assert "Herz-Jesus" not in text.replace("strecha_dev/Herz-Jesus-P25/*", "")
    assert STRECHA_TRAINING_SCENES == ("castle-P30",)
    castle = [s for s in sources if "castle-P30" in s.get("root", "")]
    assert castle and all(
        sorted(s["exclude"]) == sorted(held_out_images("castle-P30")) for s in castle
    )
    homography = [s for s in sources if s["type"] == "homography"][0]["exclude"]
    assert "strecha_dev/Herz-Jesus-P25/*" in homography
    for name in held_out_images("castle-P30"):
        assert f"strecha_dev/castle-P30/images/{name}" in homography


def test_summarize_known_numbers():
    rot = [0.05, 0.3, 1.0, 4.0, math.inf]
    trans = [0.01, 0.04, 0.2, 0.9, math.inf]
    s = summarize(rot, trans, seconds=[1.0, 3.0])
    assert s.count == 5 and s.seconds_per_query == 2.0
    assert s.recall == {"2cm/0.1deg": 20.0, "5cm/0.5deg": 40.0, "25cm/2deg": 60.0, "1m/5deg": 80.0}
    assert s.median_rot_deg == 1.0 and s.median_trans == 0.2
    assert threshold_label(0.25, 2.0) == "25cm/2deg"
    with pytest.raises(ValueError):
        summarize([], [])


def _camera() -> Camera:
    return Camera("PINHOLE", torch.tensor([64.0, 48.0]), torch.tensor([50.0, 50.0, 32.0, 24.0]))


def test_covisibility_and_retrieval_hits():
    cam, T = _camera(), Pose.from_quat_t([1.0, 0, 0, 0], [0.0, 0, 0])
    front = np.array([[0.0, 0, 5], [0.1, 0.1, 4]])
    behind, outside = np.array([[0.0, 0, -5]]), np.array([[100.0, 0, 5]])
    assert covisible_fraction(front, cam, T) == 1.0
    assert covisible_fraction(np.concatenate([front, behind, outside]), cam, T) == 0.5
    assert covisible_fraction(np.zeros((0, 3)), cam, T) == 0.0
    refs = {"a": front, "b": behind, "c": np.concatenate([front, behind, outside])}
    assert correct_references(refs, cam, T, min_fraction=0.5) == {"a", "c"}
    assert retrieval_hit(["b", "x", "c"], {"c"}, k=3) and not retrieval_hit(
        ["b", "x", "c"], {"c"}, 2
    )


def test_basin_reference_is_the_nearest_view_among_those_that_see_the_query():
    cam, T = _camera(), Pose.from_quat_t([1.0, 0, 0, 0], [0.0, 0, 0])
    front, outside = np.array([[0.0, 0, 5], [0.1, 0.1, 4]]), np.array([[100.0, 0, 5]] * 2)

    def ref(name, deg, X):
        h = math.radians(deg) / 2
        pose = Pose.from_quat_t([math.cos(h), 0, math.sin(h), 0], [0.0, 0, 0])
        return SimpleNamespace(name=name, cam_from_world=pose, point3D_ids=X)

    images = [
        ref("far", 30.0, front),  # sees all of the view, 30 deg away
        ref("near", 5.0, np.concatenate([front, outside[:1]])),  # sees 2/3, 5 deg away
        ref("nearest", 1.0, np.concatenate([front[:1], outside])),  # sees 1/3 only
    ]
    scene = SimpleNamespace(
        name="s",
        cameras={"q": cam},
        poses={"q": T},
        map=SimpleNamespace(images=images, xyz=lambda X: X),
    )
    assert basin_reference(scene, "q").name == "near"
    assert basin_reference(scene, "q", min_fraction=0.3).name == "nearest"
    with pytest.raises(ValueError, match="no training image sees"):
        basin_reference(scene, "q", min_fraction=1.01)


def test_points_problem_samples_reference_features():
    cam = _camera()
    ref = np.zeros((48, 64, 3), np.uint8)
    ref[:, 32:] = 255
    pixels = np.array([[10.5, 20.5], [50.5, 20.5]])
    points = np.array([[0.0, 0, 5], [1.0, 0, 5]])

    def extract(rgb):
        return [torch.from_numpy(rgb.mean(-1))[None].float()]

    pose = Pose.from_quat_t([1.0, 0, 0, 0], [0.0, 0, 1])
    p = points_problem(ref, pixels, cam, points, ref, cam, pose, extract, "x")
    np.testing.assert_allclose(p.ref_features[0][:, 0].numpy(), [0.0, 1.0], atol=1e-6)
    assert p.scene_depth == pytest.approx(6.0) and p.query_features[0].shape == (1, 48, 64)


def test_depth_points_unproject_valid_grid_pixels():
    cam = _camera()
    depth = np.full((48, 64), 2.0)
    depth[:24] = 0.0  # no depth in the top half
    T = Pose.from_quat_t([1.0, 0, 0, 0], [0.0, 0, -1])  # camera centre at z = 1
    X = depth_points(depth, cam, T, stride=8)
    assert X.shape == (3 * 8, 3)
    np.testing.assert_allclose(X[:, 2], 3.0)
    np.testing.assert_allclose(X[0, :2], [(4.5 - 32) * 2 / 50, (28.5 - 24) * 2 / 50])


def test_synthetic_retrieval_recall_known_answer():
    cam, depth = _camera(), np.full((48, 64), 2.0)
    ident = Pose.from_quat_t([1.0, 0, 0, 0], [0.0, 0, 0])
    away = Pose.from_quat_t([0.0, 0, 1, 0], [0.0, 0, 0])  # looks along -z

    def view(gray, pose):
        return SimpleNamespace(
            rgb=np.full((48, 64, 3), gray, np.float32), depth=depth, camera=cam, cam_from_world=pose
        )

    world = SimpleNamespace(
        database=[view(0.2, ident), view(0.8, away)], queries=[view(0.8, ident)]
    )

    def describe(img):
        m = float(img.mean()) / 255
        return torch.nn.functional.normalize(torch.tensor([m, 1 - m]), dim=0)

    assert synthetic_retrieval(world, describe, k=1) == 0.0  # the look-alike faces away
    assert synthetic_retrieval(world, describe, k=2) == 100.0
