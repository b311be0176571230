"""Textures for the synthetic world: real photographs shipped with scikit-image, procedural
patterns, and a mip-mapped texture atlas for fast vectorised trilinear lookups."""

from __future__ import annotations

import functools

import cv2
import numpy as np

TEXTURE_SIZE = 256  # every texture is resized to (S, S), S a power of two

PHOTOS = ("brick", "grass", "gravel", "coffee", "astronaut", "rocket", "camera", "chelsea")


def _square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop ``image`` (H, W[, 3]) to a square and resize to (size, size, 3) float32."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    img = img.astype(np.float32)
    if img.max() > 1.0:
        img = img / 255.0
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


@functools.lru_cache(maxsize=32)
def photo(name: str, size: int = TEXTURE_SIZE) -> np.ndarray:
    """A scikit-image sample photo (``skimage.data.<name>()``), (S, S, 3) float32 in [0, 1]."""
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo texture {name!r}; choose from {PHOTOS}")
    img = getattr(skimage.data, name)()
    if name == "brick":  # the sample photo shows the bricks standing; lay them horizontally
        img = np.rot90(img)
    out = _square(img, size)
    out.setflags(write=False)
    return out


def _wrap_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur of a square (S, S) image via the FFT (keeps textures tileable)."""
    f = np.fft.fftfreq(img.shape[0])
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    return np.real(np.fft.ifft2(np.fft.fft2(img) * g)).astype(np.float32)


def value_noise(rng: np.random.Generator, size: int = TEXTURE_SIZE, octaves: int = 5) -> np.ndarray:
    """Tileable fractal noise (S, S) float32 in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        sigma = size / 2 ** (o + 2)
        layer = _wrap_blur(rng.standard_normal((size, size)).astype(np.float32), max(sigma, 0.7))
        layer /= layer.std() + 1e-8
        out += amp * layer
        total += amp
        amp *= 0.55
    out /= total
    return np.clip(0.5 + 0.18 * out, 0.0, 1.0).astype(np.float32)


def procedural(kind: str, seed: int = 0, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Procedural tileable patterns (S, S, 3) float32: ``checker``, ``tiles``, ``planks``,
    ``asphalt``, ``plaster``, ``windows``, ``foliage``, ``autumn``, ``stripes``."""
    rng = np.random.default_rng(seed)
    n = value_noise(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "checker":
        g = ((np.floor(xx * 8) + np.floor(yy * 8)) % 2).astype(np.float32)
        rgb = np.stack([0.2 + 0.6 * g] * 3, -1) * (0.8 + 0.4 * n[..., None])
    elif kind == "tiles":
        grout = (np.minimum((xx * 4) % 1, (yy * 4) % 1) < 0.06).astype(np.float32)
        base = np.array([0.75, 0.72, 0.65], np.float32) * (0.7 + 0.6 * n[..., None])
        rgb = base * (1 - 0.6 * grout[..., None])
    elif kind == "planks":
        row = np.floor(yy * 6)
        stripe = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * 3 + 0.2 * row + 6 * n))
        gap = ((yy * 6) % 1 < 0.05).astype(np.float32)
        rgb = np.array([0.55, 0.36, 0.2], np.float32) * (0.7 + 0.3 * stripe[..., None])
        rgb = rgb * (1 - 0.7 * gap[..., None])
    elif kind == "asphalt":
        grain = rng.random((size, size)).astype(np.float32)
        v = 0.25 + 0.35 * n + 0.12 * grain
        rgb = np.stack([v, v, v * 1.05], -1)
    elif kind == "plaster":
        rgb = np.array([0.85, 0.78, 0.62], np.float32) * (0.75 + 0.5 * n[..., None])
    elif kind == "windows":
        fx, fy = (xx * 2) % 1, (yy * 2) % 1
        win = ((fx > 0.2) & (fx < 0.8) & (fy > 0.2) & (fy < 0.75)).astype(np.float32)
        frame = ((fx > 0.16) & (fx < 0.84) & (fy > 0.16) & (fy < 0.79)).astype(np.float32)
        wall = np.array([0.7, 0.55, 0.45], np.float32) * (0.8 + 0.4 * n[..., None])
        glass = np.array([0.2, 0.3, 0.4], np.float32) + 0.3 * n[..., None] * yy[..., None]
        rgb = (
            wall * (1 - frame[..., None]) + 0.9 * (frame - win)[..., None] + glass * win[..., None]
        )
    elif kind in ("foliage", "autumn"):
        leaves = _wrap_blur(rng.random((size, size)).astype(np.float32), 1.5)
        leaves = (leaves - leaves.mean()) / (leaves.std() + 1e-8)
        v = np.clip(0.5 + 0.25 * leaves + 0.3 * (n - 0.5), 0, 1)[..., None]
        col = [0.2, 0.45, 0.15] if kind == "foliage" else [0.75, 0.4, 0.12]
        rgb = np.array(col, np.float32) * (0.4 + 1.1 * v)
    elif kind == "stripes":
        s = (np.floor(xx * 10) % 2).astype(np.float32)
        rgb = np.stack([0.3 + 0.5 * s, 0.3 + 0.2 * s, 0.25 + 0.1 * n], -1)
    else:
        raise ValueError(f"unknown procedural texture {kind!r}")
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def mip_levels(texture: np.ndarray) -> list[np.ndarray]:
    """Box-filtered mip pyramid of a (S, S, 3) texture, S a power of two, down to 1x1."""
    levels = [np.ascontiguousarray(texture, dtype=np.float32)]
    while levels[-1].shape[0] > 1:
        t = levels[-1]
        s = t.shape[0] // 2
        levels.append(t.reshape(s, 2, s, 2, 3).mean(axis=(1, 3), dtype=np.float32))
    return levels


class TextureAtlas:
    """All mip levels of all textures packed into one 2D image for ``cv2.remap``.

    Texture ``k`` occupies a column block of width ``size + 2``; its level ``l`` (side
    ``size >> l``) starts at row ``rows[l]``. Each level is padded with one wrapped texel on every
    side, so bilinear lookups at the edges read the texels of the opposite edge.
    """

    def __init__(self, textures: list[np.ndarray]):
        if not textures:
            textures = [np.full((TEXTURE_SIZE, TEXTURE_SIZE, 3), 0.5, np.float32)]
        self.size = int(textures[0].shape[0])
        if self.size & (self.size - 1) or any(
            t.shape != (self.size, self.size, 3) for t in textures
        ):
            raise ValueError("textures must all be (S, S, 3) with S a power of two")
        self.num_levels = int(np.log2(self.size)) + 1
        sides = [self.size >> lvl for lvl in range(self.num_levels)]
        self.rows = np.cumsum([0] + [s + 2 for s in sides])[:-1].astype(np.float32)
        self.inv = np.array([1.0 / (1 << lvl) for lvl in range(self.num_levels)], np.float32)
        self.image = np.zeros(
            (int(sum(s + 2 for s in sides)), len(textures) * (self.size + 2), 3), np.float32
        )
        for k, tex in enumerate(textures):
            x0 = k * (self.size + 2)
            for lvl, img in enumerate(mip_levels(tex)):
                side, r = img.shape[0], int(self.rows[lvl])
                padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="wrap")
                self.image[r : r + side + 2, x0 : x0 + side + 2] = padded

    def _remap(self, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
        n = len(mx)
        cols = 1024
        rows = max(1, -(-n // cols))
        pad = rows * cols - n
        mx = np.pad(mx, (0, pad)).reshape(rows, cols)
        my = np.pad(my, (0, pad)).reshape(rows, cols)
        out = cv2.remap(self.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out.reshape(-1, 3)[:n]

    def sample(self, tex: np.ndarray, s: np.ndarray, t: np.ndarray, lod: np.ndarray) -> np.ndarray:
        """Trilinear lookup with wrap-around.

        tex (N,) texture index, s/t (N,) texel coordinates at level 0 (continuous, texel centres at
        +0.5), lod (N,) mip level (log2 of texels per pixel). Returns (N, 3) float32.
        """
        s = np.mod(s, np.float32(self.size), dtype=np.float32)
        t = np.mod(t, np.float32(self.size), dtype=np.float32)
        col = tex.astype(np.float32) * np.float32(self.size + 2) + np.float32(0.5)  # pad - 0.5
        lod = np.clip(lod, 0.0, self.num_levels - 1).astype(np.float32)
        l0 = lod.astype(np.int32)
        f = lod - l0
        l1 = np.minimum(l0 + 1, self.num_levels - 1)
        out = None
        for lvl, w in ((l0, 1 - f), (l1, f)):
            inv = self.inv[lvl]
            c0 = self._remap(s * inv + col, t * inv + (self.rows[lvl] + np.float32(0.5)))
            c0 *= w[:, None]
            out = c0 if out is None else out + c0
        return out
