"""Timings of the synthetic world: one 640x480 RGB-D render and the default demo world.

Baseline, measured in the same run: a plain vectorised z-buffer that intersects every pixel with
every primitive (no screen-space culling) and computes depth only (no texturing, no shading), so
it does strictly less work per pixel than ``render``.

    python benchmarks/synth.py [--repeats 10] [--skip-world]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from s2dloc.datasets.synthetic import look_at, render, street_canyon
from s2dloc.datasets.synthetic.render import camera_tuple, pixel_rays, pose_Rt
from s2dloc.datasets.synthetic.world import generate_world, make_camera
from s2dloc.datasets.synthetic.write import write_world


def naive_depth(scene, camera, pose) -> np.ndarray:
    """Full-frame ray/quad intersection for every primitive, depth only."""
    xs, ys, _, _ = pixel_rays(*camera_tuple(camera))
    R, t = pose_Rt(pose)
    zbuf = np.full(xs.shape, np.inf, np.float32)
    for p in scene.primitives:
        o, u, v = R @ p.origin + t, R @ p.u, R @ p.v
        n = np.cross(u, v)
        du, dv = np.cross(v, n), np.cross(n, u)
        du, dv = du / (du @ u), dv / (dv @ v)
        with np.errstate(all="ignore"):
            z = (n @ o) / (n[0] * xs + n[1] * ys + n[2])
            a = z * (du[0] * xs + du[1] * ys + du[2]) - du @ o
            b = z * (dv[0] * xs + dv[1] * ys + dv[2]) - dv @ o
            m = (z > 0.05) & (z < zbuf) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
        zbuf[m] = z[m]
    return np.where(np.isfinite(zbuf), zbuf, 0).astype(np.float32)


def best_of(fn, repeats: int) -> float:
    fn()  # warm caches (rays, textures)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-world", action="store_true")
    args = parser.parse_args()

    scene = street_canyon(0)
    camera = make_camera("PINHOLE", 640, 480, 65.0)
    pose = look_at([0.5, 2.0, 1.6], [0.0, 20.0, 1.5])
    res = render(scene, camera, pose)
    depth_naive = naive_depth(scene, camera, pose)
    agree = np.mean(np.abs(depth_naive - res.depth) <= 1e-3 * np.maximum(res.depth, 1))
    t_render = best_of(lambda: render(scene, camera, pose), args.repeats)
    t_naive = best_of(lambda: naive_depth(scene, camera, pose), max(2, args.repeats // 3))
    distorted = make_camera("OPENCV", 640, 480, 65.0)
    t_dist = best_of(lambda: render(scene, distorted, pose), args.repeats)
    print(f"cpu cores: {os.cpu_count()}, street scene: {len(scene.primitives)} primitives")
    print(f"render 640x480 RGB-D (PINHOLE), median of {args.repeats}: {1e3 * t_render:.1f} ms")
    print(f"render 640x480 RGB-D (OPENCV),  median of {args.repeats}: {1e3 * t_dist:.1f} ms")
    print(f"baseline: full-frame z-buffer, depth only: {1e3 * t_naive:.1f} ms")
    print(
        f"speed-up of render over baseline: {t_naive / t_render:.1f}x; "
        f"same depth on {100 * agree:.2f}% px"
    )
    if args.skip_world:
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        world = generate_world("demo", progress=False)
        t1 = time.perf_counter()
        write_world(world, tmp, progress=False)
        t2 = time.perf_counter()
    cfg = world.config
    print(
        f"demo world ({cfg.num_db} db + {cfg.num_query} queries at {cfg.width}x{cfg.height}): "
        f"{t2 - t0:.1f} s total = {t1 - t0:.1f} s render + {t2 - t1:.1f} s export"
    )


if __name__ == "__main__":
    main()
