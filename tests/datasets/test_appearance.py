"""Strong appearance changes: determinism, shape / dtype / range, and the intended direction."""

import cv2
import numpy as np
import pytest

from s2dloc.datasets.appearance import (
    ColourCast,
    Darkness,
    Fog,
    LightPools,
    MotionBlur,
    NightScene,
    Overexposure,
    Season,
    SensorNoise,
    SnowCover,
    saturation,
)
from s2dloc.datasets.augment import build_augmentation

OPS = [
    Darkness(),
    SensorNoise(),
    ColourCast(),
    LightPools(),
    MotionBlur(),
    Overexposure(),
    SnowCover(),
    Fog(),
    Season(),
    NightScene(),
]


@pytest.fixture
def image():
    """A textured day photo stand-in (48, 64, 3) in [0.15, 0.85]: a green lower half
    (vegetation), a reddish-grey upper half."""
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.uniform(size=(48, 64, 3)).astype(np.float32), (0, 0), 1.5)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    img = 0.15 + 0.7 * (0.5 * tex + 0.5 * tex.mean(-1, keepdims=True))
    img[24:] = img[24:] * np.array([0.45, 1.0, 0.4], np.float32)  # green
    img[:24] = tex[:24].mean(-1, keepdims=True) * np.array([0.8, 0.6, 0.55], np.float32) + 0.1
    return img.astype(np.float32)


def _rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("op", OPS, ids=lambda op: type(op).__name__)
def test_ops_are_deterministic_and_keep_shape_dtype_range(op, image):
    out = op(image, _rng(3))
    assert out.shape == image.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    np.testing.assert_array_equal(out, op(image, _rng(3)))
    assert not np.allclose(out, image, atol=1e-3)


def test_darkness_noise_and_overexposure(image):
    for seed in range(5):
        dark = Darkness(gain=(0.08, 0.2))(image, _rng(seed))
        assert dark.mean() < 0.3 * image.mean()
        assert Darkness()(image, _rng(seed)).mean() < 0.6 * image.mean()
    flat = np.full((64, 64, 3), 0.5, np.float32)
    lo = SensorNoise((1 / 255, 1 / 255), (0, 0))(flat, _rng()).std()
    hi = SensorNoise((1 / 255, 1 / 255), (6 / 255, 6 / 255))(flat, _rng()).std()
    assert abs(lo - 1 / 255) < 0.3 / 255 and abs(hi - np.hypot(1, 6) / 255) < 0.6 / 255
    assert abs(SensorNoise()(flat, _rng()).mean() - 0.5) < 0.005
    over = Overexposure()(image, _rng())
    assert over.mean() > image.mean() + 0.15 and (over >= 1).mean() > (image >= 1).mean() + 0.1


def test_casts_and_light_pools(image):
    grey = np.full((16, 16, 3), 0.5, np.float32)
    sodium = ColourCast(sodium=1.0)(grey, _rng()).mean((0, 1))
    led = ColourCast(sodium=0.0)(grey, _rng()).mean((0, 1))
    assert sodium[0] > sodium[1] > sodium[2] and led[2] > led[1] > led[0]
    dark = Darkness(gain=(0.1, 0.1), gamma=(2, 2))(image, _rng())
    lit = LightPools(count=(2, 2))(dark, _rng(1), albedo=image)
    assert lit.mean() > 1.5 * dark.mean() and (lit >= dark - 1e-6).all()
    assert (lit - dark).max() > 0.3  # a bright pool somewhere
    night = NightScene()(image, _rng())
    assert night.mean() < 0.5 * image.mean() and night.shape == image.shape


def test_motion_blur_smooths_along_a_line(image):
    out = MotionBlur(length=(7, 7))(image, _rng())
    assert cv2.Laplacian(out, cv2.CV_32F).var() < 0.6 * cv2.Laplacian(image, cv2.CV_32F).var()
    assert abs(out.mean() - image.mean()) < 0.01


def test_snow_fog_and_season(image):
    snow = SnowCover()(image, _rng())
    assert snow.mean() > image.mean() + 0.1
    assert saturation(snow).mean() < 0.8 * saturation(image).mean()
    fog = Fog(density=(1.0, 1.0), airlight=(0.8, 0.8), vertical=(0.0, 0.0))(image, _rng())
    np.testing.assert_allclose(fog, image * np.exp(-1) + 0.8 * (1 - np.exp(-1)), atol=1e-6)
    graded = Fog(density=(1.0, 1.0), vertical=(0.7, 0.7))(image, _rng())
    top, bottom = graded[:8].std(), graded[-8:].std()
    assert top / image[:8].std() < bottom / image[-8:].std()  # thicker towards the horizon
    autumn = Season(winter=0.0, strength=(1, 1))(image, _rng())
    g = image[24:]
    greenness = lambda x: (x[..., 1] - np.maximum(x[..., 0], x[..., 2])).mean()  # noqa: E731
    assert greenness(autumn[24:]) < 0.2 * greenness(g)
    assert autumn[24:, :, 0].mean() > g[..., 0].mean()  # yellow / brown: more red
    np.testing.assert_allclose(autumn[:20], image[:20], atol=2e-3)  # not vegetation: kept
    winter = Season(winter=1.0, strength=(1, 1))(image, _rng())
    assert saturation(winter[28:]).mean() < 0.3 * saturation(image[28:]).mean()
    assert winter[28:].mean() > image[28:].mean()


def test_strong_preset_varied_and_often_dark(image):
    aug = build_augmentation("strong", seed=0)
    outs = [aug(image, _rng(s)) for s in range(40)]
    assert all(o.shape == image.shape and o.dtype == np.float32 for o in outs)
    assert all(0 <= o.min() and o.max() <= 1 for o in outs)
    means = np.array([o.mean() for o in outs]) / image.mean()
    assert 0.35 < (means < 0.5).mean() < 0.8  # night-like ones are frequent
    assert (means > 1.1).any()  # snow / fog / overexposure also occur
    np.testing.assert_array_equal(outs[5], build_augmentation("strong")(image, _rng(5)))
