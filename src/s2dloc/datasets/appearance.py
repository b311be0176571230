"""Strong appearance changes for real photos: darkness, sensor noise, light colour casts, light
pools, motion blur, overexposure, snow cover, fog and seasonal vegetation colour.

Every op is a dataclass mapping an image (H, W, 3) float32 in [0, 1] and a
``numpy.random.Generator`` to a new image of the same shape, dtype float32 and range [0, 1];
it is deterministic given the generator's state. Ranges ``(lo, hi)`` are sampled uniformly.
Compositions (the ``strong`` preset) live in :mod:`s2dloc.datasets.augment`.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

Range = tuple[float, float]

# Light colours (RGB gains): sodium street lamps (orange), LED / moonlight (blue-white).
SODIUM = (1.0, 0.68, 0.32)
LED = (0.82, 0.92, 1.0)


def uniform(rng: np.random.Generator, r: Range) -> float:
    """A draw from ``U(r[0], r[1])`` (``r[0]`` when the range is empty)."""
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _finish(img: np.ndarray) -> np.ndarray:
    return np.clip(img, 0, 1).astype(np.float32)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(yy, xx)``, each (H, W)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return yy, xx


def saturation(img: np.ndarray) -> np.ndarray:
    """HSV saturation (H, W) in [0, 1]."""
    mx, mn = img.max(-1), img.min(-1)
    return np.where(mx > 1e-6, (mx - mn) / np.maximum(mx, 1e-6), 0.0).astype(np.float32)


@dataclasses.dataclass
class Darkness:
    """Night-like darkening ``gain * img ** gamma`` (down to ~10% of the brightness)."""

    gamma: Range = (1.5, 3.0)
    gain: Range = (0.08, 0.5)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _finish(uniform(rng, self.gain) * np.clip(img, 0, 1) ** uniform(rng, self.gamma))


@dataclasses.dataclass
class SensorNoise:
    """Read noise (Gaussian, std ``read``) plus Poisson shot noise whose std at mid-grey is
    ``shot`` (both in [0, 1] units; defaults 1-6 / 255)."""

    read: Range = (1 / 255, 6 / 255)
    shot: Range = (1 / 255, 6 / 255)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.clip(img, 0, 1)
        s = uniform(rng, self.shot)
        if s > 0:
            photons = 0.5 / s**2  # photon count of mid-grey: Poisson std s there
            img = rng.poisson(img * photons).astype(np.float32) / photons
        noise = rng.standard_normal(img.shape).astype(np.float32) * uniform(rng, self.read)
        return _finish(img + noise)


@dataclasses.dataclass
class ColourCast:
    """Per-channel gains of an artificial light: sodium (orange) with probability ``sodium``,
    else LED (blue-white), each jittered by ``jitter``."""

    sodium: float = 0.5
    jitter: float = 0.08

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cast = np.asarray(SODIUM if rng.random() < self.sodium else LED, np.float32)
        cast = cast * rng.uniform(1 - self.jitter, 1 + self.jitter, 3).astype(np.float32)
        return _finish(img * cast / max(float(cast.max()), 1e-6))


@dataclasses.dataclass
class LightPools:
    """Additive radial blobs of lamp light: each pool adds ``strength * exp(-d^2 / 2 r^2)``
    times a lamp colour times (``ambient`` + the lit surface: ``albedo``, by default the image
    itself; pass the day image to re-light a darkened one)."""

    count: tuple[int, int] = (1, 4)
    radius: Range = (0.06, 0.25)  # fraction of the longer image side
    strength: Range = (0.3, 1.0)
    ambient: float = 0.15

    def __call__(
        self, img: np.ndarray, rng: np.random.Generator, albedo: np.ndarray | None = None
    ) -> np.ndarray:
        h, w = img.shape[:2]
        yy, xx = _grid(h, w)
        albedo = img if albedo is None else albedo
        light = np.zeros((h, w, 3), np.float32)
        for _ in range(int(rng.integers(self.count[0], self.count[1] + 1))):
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            r = uniform(rng, self.radius) * max(h, w)
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
            colour = np.asarray(SODIUM if rng.random() < 0.5 else LED, np.float32)
            light += uniform(rng, self.strength) * blob[..., None] * colour
        return _finish(img + light * (self.ambient + np.clip(albedo, 0, 1)))


@dataclasses.dataclass
class NightScene:
    """Night from a day photo: :class:`Darkness`, a :class:`ColourCast`, lamp
    :class:`LightPools` (probability ``pools_p``) that re-light the day image's surfaces,
    then :class:`SensorNoise`."""

    darkness: Darkness = dataclasses.field(default_factory=Darkness)
    cast: ColourCast = dataclasses.field(default_factory=ColourCast)
    pools: LightPools = dataclasses.field(default_factory=LightPools)
    noise: SensorNoise = dataclasses.field(default_factory=SensorNoise)
    pools_p: float = 0.6

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = self.cast(self.darkness(img, rng), rng)
        if rng.random() < self.pools_p:
            out = self.pools(out, rng, albedo=img)
        return self.noise(out, rng)


@dataclasses.dataclass
class MotionBlur:
    """Linear motion blur: a line kernel of ``length`` pixels at a random angle."""

    length: Range = (3.0, 9.0)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = max(int(round(uniform(rng, self.length))), 1)
        angle = rng.uniform(0, np.pi)
        k = 2 * (n // 2) + 1
        kernel = np.zeros((k, k), np.float32)
        c = k // 2
        for t in np.linspace(-(n - 1) / 2, (n - 1) / 2, n):
            kernel[int(round(c + t * np.sin(angle))), int(round(c + t * np.cos(angle)))] += 1
        kernel /= kernel.sum()
        return _finish(cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT101))


@dataclasses.dataclass
class Overexposure:
    """Overexposed photo: ``gain > 1`` and a gamma below 1, clipped at white."""

    gain: Range = (1.5, 3.0)
    gamma: Range = (0.7, 1.0)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _finish(uniform(rng, self.gain) * np.clip(img, 0, 1) ** uniform(rng, self.gamma))


def _smooth_field(h: int, w: int, rng: np.random.Generator, cell: float) -> np.ndarray:
    """A smooth random field (H, W) in [0, 1] with features of about ``cell`` pixels."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    coarse = rng.uniform(size=(gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


@dataclasses.dataclass
class SnowCover:
    """Snow lying on the scene: low-saturation regions and, with a vertical bias, the lower
    (upward-facing ground) part of the image are whitened in patches; bright speckles of
    falling snow are added with probability ``speckle_p``."""

    amount: Range = (0.5, 0.9)
    ground_bias: Range = (0.2, 0.6)
    speckles: Range = (0.0005, 0.004)  # fraction of pixels
    speckle_p: float = 0.5

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.clip(img, 0, 1).astype(np.float32)
        h, w = img.shape[:2]
        yy, _ = _grid(h, w)
        ground = uniform(rng, self.ground_bias) * yy / h
        cover = (1 - saturation(img)) ** 2 * (0.5 + ground) + ground
        cover = cover * (0.4 + 0.6 * _smooth_field(h, w, rng, max(h, w) / 8))
        cover = np.clip(cover * uniform(rng, self.amount) * 1.6, 0, 1)[..., None]
        white = np.array([0.94, 0.96, 1.0], np.float32) * (0.85 + 0.15 * img.mean(-1, keepdims=1))
        out = (1 - cover) * img + cover * white
        if rng.random() < self.speckle_p:
            n = int(uniform(rng, self.speckles) * h * w)
            ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
            flakes = np.zeros((h, w), np.float32)
            flakes[ys, xs] = rng.uniform(0.6, 1.0, n)
            flakes = cv2.GaussianBlur(flakes, (0, 0), 0.7) * 3
            out = out + flakes[..., None]
        return _finish(out)


@dataclasses.dataclass
class Fog:
    """Fog without depth: a blend towards a grey airlight ``A`` with transmission
    ``t = exp(-density * (1 - vertical * y / H))``: thicker towards the top (the horizon)
    when ``vertical`` > 0, uniform when 0."""

    density: Range = (0.4, 1.6)
    airlight: Range = (0.6, 0.9)
    vertical: Range = (0.0, 0.7)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        yy, _ = _grid(h, w)
        t = np.exp(-uniform(rng, self.density) * (1 - uniform(rng, self.vertical) * yy / h))
        a = uniform(rng, self.airlight)
        return _finish(img * t[..., None] + a * (1 - t[..., None]))


@dataclasses.dataclass
class Season:
    """Seasonal colour of vegetation: green pixels (hue 60-170 deg, saturation > ``min_sat``)
    turn yellow / brown (autumn, hue shifted towards ``autumn_hue``) or white (``winter``
    probability: desaturated and brightened). Other pixels are unchanged."""

    autumn_hue: Range = (25.0, 50.0)
    strength: Range = (0.6, 1.0)
    winter: float = 0.3
    min_sat: float = 0.15

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.clip(img, 0, 1).astype(np.float32)
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)  # H in [0, 360), S, V in [0, 1]
        hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        green = ((hue > 60) & (hue < 170) & (sat > self.min_sat)).astype(np.float32)
        weight = cv2.GaussianBlur(green, (0, 0), 1.0) * uniform(rng, self.strength)
        out = hsv.copy()
        if rng.random() < self.winter:
            out[..., 1] = sat * (1 - weight)
            out[..., 2] = val + (0.9 - val).clip(0) * weight
        else:
            out[..., 0] = hue + (uniform(rng, self.autumn_hue) - hue) * weight
            out[..., 2] = val * (1 - 0.3 * weight * rng.uniform())  # browner, a little darker
        return _finish(cv2.cvtColor(out, cv2.COLOR_HSV2RGB))
