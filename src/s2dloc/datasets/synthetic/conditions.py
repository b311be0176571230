"""Appearance conditions: reference (day), dusk, night, snow, fog (rain/fog) and foliage.

A condition acts in two places: on the scene (texture swaps, snow on horizontal surfaces, lighting,
optional transient occluders) and on the rendered image (tone, noise, light pools, fog by depth).
Static geometry, and hence depth outside transient occluders, is the same in every condition.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .render import Scene
from .scenes import box

CONDITIONS = ("reference", "dusk", "night", "snow", "fog", "foliage")
TRANSIENT_CONDITIONS = ("dusk", "fog")  # conditions with parked cars / pedestrians


def _snowy(tex: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mostly white, low-contrast version of a texture with a little sparkle."""
    grain = rng.random(tex.shape[:2]).astype(np.float32)[..., None]
    white = np.array([0.93, 0.95, 1.0], np.float32)
    return np.clip(0.8 * white + 0.15 * tex + 0.08 * (grain - 0.5), 0, 1).astype(np.float32)


def condition_scene(scene: Scene, condition: str, seed: int = 0) -> Scene:
    """The scene as it looks under ``condition`` (same static primitives, in the same order;
    transient occluders, if any, are appended after them)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; choose from {CONDITIONS}")
    rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
    prims = list(scene.primitives)
    textures = dict(scene.textures)
    kw: dict = {}
    if condition == "snow":
        for i, p in enumerate(prims):
            if p.normal[2] > 0.7 or (p.normal[2] < -0.7 and p.material != "ceiling"):
                name = f"snow_{p.texture}"
                if name not in textures:
                    textures[name] = _snowy(scene.textures[p.texture], rng)
                prims[i] = dataclasses.replace(p, texture=name, tint=(1.0, 1.0, 1.0))
        kw = dict(sky=(0.8, 0.82, 0.86), ambient=0.75)
    elif condition == "foliage":
        swap = {"foliage": "autumn", "grass": "gravel"}
        for i, p in enumerate(prims):
            if p.texture in swap and swap[p.texture] in textures:
                prims[i] = dataclasses.replace(p, texture=swap[p.texture])
        kw = dict(sky=(0.7, 0.72, 0.75))
    elif condition == "dusk":
        kw = dict(sky=(0.95, 0.6, 0.4), sun=(-0.8, 0.3, 0.15), ambient=0.35)
    elif condition == "night":
        kw = dict(sky=(0.02, 0.03, 0.08), ambient=1.0)
    elif condition == "fog":
        kw = dict(sky=(0.75, 0.76, 0.78), ambient=0.85)
    if condition in TRANSIENT_CONDITIONS and scene.transient_slots:
        for center, size in scene.transient_slots:
            if rng.random() < 0.6:
                tint = tuple(float(x) for x in rng.uniform(0.3, 1.0, 3))
                occ = box(center, size, "checker", (1.0, 1.0), material="transient", tint=tint)
                prims += [dataclasses.replace(p, transient=True) for p in occ]
    return scene.replace(primitives=prims, textures=textures, **kw)


def _light_pools(points: np.ndarray, lights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) irradiance from coloured point lamps at ``lights`` (L, 3) on points (H, W, 3)."""
    colours = np.array([[1.0, 0.75, 0.4], [0.6, 0.8, 1.0], [1.0, 0.55, 0.3]], np.float32)
    out = np.zeros(points.shape, np.float32)
    valid = np.isfinite(points[..., 0])
    pts = np.where(valid[..., None], points, 1e6).astype(np.float32)
    for k, lamp in enumerate(np.asarray(lights, np.float32)):
        d2 = np.sum((pts - lamp) ** 2, -1)
        out += colours[k % len(colours)] * (1.2 / (1.0 + d2 / 2.5))[..., None]
    return out


def apply_condition(
    rgb: np.ndarray,
    depth: np.ndarray,
    points_world: np.ndarray,
    scene: Scene,
    condition: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Image-space part of a condition. rgb (H, W, 3) rendered with :func:`condition_scene`,
    depth (H, W) (0 = sky), points_world (H, W, 3) (NaN = sky). Returns (H, W, 3) float32."""
    out = rgb.astype(np.float32)
    hit = (depth > 0)[..., None]
    if condition == "dusk":
        out = np.clip(0.85 * out**1.2 * np.array([1.05, 0.85, 0.7], np.float32), 0, 1)
    elif condition == "night":
        lights = scene.lights if scene.lights is not None else np.zeros((0, 3))
        pools = _light_pools(points_world, lights, rng)
        lit = out * (0.06 + pools) * hit + out * (1 - hit)
        noise = rng.normal(0.0, 0.025, out.shape).astype(np.float32)
        out = np.clip(lit + noise, 0, 1)
    elif condition == "snow":
        mean = out.mean(axis=(0, 1), keepdims=True)
        out = np.clip(0.65 * out + 0.35 * mean + 0.08, 0, 1) * np.array([0.95, 0.98, 1.02])
    elif condition == "fog":
        fog = np.asarray(scene.sky, np.float32)
        visibility = np.exp(-depth / 14.0)[..., None].astype(np.float32)
        out = out * visibility * hit + fog * (1 - visibility * hit)
        out = out + rng.normal(0.0, 0.01, out.shape).astype(np.float32)
    elif condition == "foliage":
        out = out * np.array([1.04, 0.98, 0.9], np.float32)
    return np.clip(out, 0, 1).astype(np.float32)
