"""Photometric augmentation: intended direction of each op, determinism, geometry untouched."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from s2dloc.datasets.augment import (
    PRESETS,
    Augmentation,
    Blur,
    ColorJitter,
    GaussianNoise,
    Night,
    build_augmentation,
)
from s2dloc.datasets.rgbd_pairs import RGBDPairs
from s2dloc.geometry import Camera, Pose


@pytest.fixture
def image():
    """A smooth textured day image (48, 64, 3) in [0.2, 0.9]."""
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.uniform(size=(48, 64, 3)).astype(np.float32), (0, 0), 2)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (0.2 + 0.7 * noise).astype(np.float32)


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_night_is_darker_and_light_pools_brighten(image):
    for seed in range(5):
        out = Night(lights=(0, 0))(image, _rng(seed))
        assert out.shape == image.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        assert out.mean() < 0.5 * image.mean()
    dark = Night(lights=(0, 0), noise=(0, 0), shot=0)(image, _rng(1))
    lit = Night(lights=(3, 3), noise=(0, 0), shot=0)(image, _rng(1))
    assert lit.mean() > dark.mean() and (lit >= dark - 1e-6).all()
    assert Night()(image, _rng(2)).mean() < image.mean()


def test_noise_raises_variance_and_blur_lowers_detail(image):
    flat = np.full((32, 32, 3), 0.5, np.float32)
    noisy = GaussianNoise(std=(0.05, 0.05))(flat, _rng())
    assert abs(noisy.std() - 0.05) < 0.005 and abs(noisy.mean() - 0.5) < 0.01
    shot = GaussianNoise(std=(0.0, 0.0), shot=0.01)(flat, _rng())
    assert abs(shot.std() - np.sqrt(0.005)) < 0.01
    blurred = Blur(sigma=(1.5, 1.5))(image, _rng())
    assert cv2.Laplacian(blurred, cv2.CV_32F).var() < 0.5 * cv2.Laplacian(image, cv2.CV_32F).var()
    assert abs(blurred.mean() - image.mean()) < 0.01


def test_color_jitter_directions(image):
    fixed = dict(brightness=(1, 1), contrast=(1, 1), gamma=(1, 1), saturation=(1, 1))
    np.testing.assert_allclose(ColorJitter(**fixed)(image, _rng()), image, atol=1e-6)
    hi = ColorJitter(**{**fixed, "contrast": (1.5, 1.5)})(image, _rng())
    lo = ColorJitter(**{**fixed, "contrast": (0.5, 0.5)})(image, _rng())
    assert hi.std() > image.std() > lo.std()
    assert abs(lo.mean() - image.mean()) < 1e-5
    dim = ColorJitter(**{**fixed, "brightness": (0.5, 0.5)})(image, _rng())
    np.testing.assert_allclose(dim, image * 0.5, atol=1e-6)
    g = ColorJitter(**{**fixed, "gamma": (2.0, 2.0)})(image, _rng())
    np.testing.assert_allclose(g, image**2, atol=1e-6)


def test_augmentation_determinism_and_types(image):
    a = build_augmentation("photometric", seed=3)
    b = build_augmentation("photometric", seed=3)
    assert np.array_equal(a(image), b(image)) and np.array_equal(a(image), b(image))
    assert not np.array_equal(a(image), a(image))  # the internal generator advances
    c = build_augmentation("photometric", seed=4)
    assert not np.array_equal(build_augmentation("photometric", seed=3)(image), c(image))
    t = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    out = Augmentation([Night()], seed=1)(t)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape and out.dtype == t.dtype
    np.testing.assert_allclose(
        out.permute(1, 2, 0).numpy(), Augmentation([Night()], seed=1)(image), atol=1e-6
    )
    for name in PRESETS:
        out = build_augmentation(name, seed=0)(image)
        assert out.shape == image.shape and 0 <= out.min() and out.max() <= 1
    assert build_augmentation(None) is None and build_augmentation("none") is None
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_augmentation("rainbow")
    with pytest.raises(ValueError, match="expected an"):
        Augmentation([Blur()])(image[..., 0])
    # one_of applies exactly one op: weight 1 on brightness halving
    half = ColorJitter(brightness=(0.5, 0.5), contrast=(1, 1), gamma=(1, 1), saturation=(1, 1))
    one = Augmentation([(half, 1.0), (GaussianNoise(), 0.0)], one_of=True)
    np.testing.assert_allclose(one(image), image * 0.5, atol=1e-6)


def test_dataset_augmentation_leaves_geometry_untouched(image):
    cam = Camera.from_colmap("PINHOLE", 64, 48, [50.0, 50, 32, 24])
    frames = [
        SimpleNamespace(
            name=f"f{k}",
            rgb=image,
            depth=np.full((48, 64), 4.0, np.float32),
            camera=cam,
            cam_from_world=Pose.from_Rt(np.eye(3), [0.05 * k, 0, 0]),
        )
        for k in range(2)
    ]
    plain = RGBDPairs(frames, max_points=64, seed=2)[0]
    night = RGBDPairs(frames, max_points=64, seed=2, augment=build_augmentation("night"))[0]
    both = RGBDPairs(
        frames, max_points=64, seed=2, augment=build_augmentation("noise"), augment_both=True
    )[0]
    for k in ("points_a", "points_b", "valid"):
        assert torch.equal(plain[k], night[k]) and torch.equal(plain[k], both[k])
    assert plain["valid"].all()
    torch.testing.assert_close(plain["points_b"][:, 0], plain["points_a"][:, 0] + 50 * 0.05 / 4)
    assert torch.equal(plain["image_a"], night["image_a"])
    assert night["image_b"].mean() < 0.5 * plain["image_b"].mean()
    assert not torch.equal(plain["image_a"], both["image_a"])


def test_snow_whitens_and_lowers_contrast():
    from s2dloc.datasets.augment import build_augmentation

    img = np.random.default_rng(3).random((24, 32, 3)).astype(np.float32)
    out = build_augmentation("snow", seed=1)(img)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.mean() > img.mean() + 0.15  # whiter
    assert out.std() < 0.6 * img.std()  # flatter
    assert out[..., 2].mean() >= out[..., 0].mean()  # bluish white
