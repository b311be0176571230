"""F-PnP speed and memory: ms per LM iteration, ms per coarse-to-fine refinement, peak memory.

Problem sizes: N in {256, 1024, 4096} points, C in {32, 128} channels, batch in {1, 16},
3 levels with the finest at 640x480. Feature maps are smooth random fields, channels-last
(as s2dloc's extractors hand them over); the cost of converting a channels-first map is
printed separately. Every refinement runs a fixed number of iterations per level so that
timings compare like with like.

    python benchmarks/fpnp.py [--quick] [--threads T]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F

from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose
from s2dloc.utils.table import format_table

W, H, LEVELS, ITERS = 640, 480, 3, 10


def make_problem(B: int, N: int, C: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    maps = []
    for s in (1, 2, 4)[:LEVELS]:
        m = torch.randn(B, C, H // s // 4, W // s // 4, generator=g)
        m = F.interpolate(m, size=(H // s, W // s), mode="bilinear", align_corners=False)
        maps.append(m.contiguous(memory_format=torch.channels_last))
    depth = 2 + 6 * torch.rand(B, N, generator=g)
    uv = torch.rand(B, N, 2, generator=g) * torch.tensor([W - 40.0, H - 40.0]) + 20
    f = 500.0
    xy = (uv - torch.tensor([W / 2, H / 2])) / f
    points = torch.cat([xy * depth[..., None], depth[..., None]], -1)
    ref = [torch.randn(B, N, C, generator=g) for _ in maps]
    camera = Camera.from_colmap("PINHOLE", W, H, [f, f, W / 2, H / 2], dtype=torch.float32)
    camera = Camera(camera.model, camera.size.expand(B, 2), camera.params.expand(B, 4))
    init = Pose.identity(B, dtype=torch.float32)
    return points, ref, maps, camera, init


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    tic = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - tic) / repeats, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only N=1024, C=32")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    solver = FeatureMetricPnP(max_iterations=ITERS, rotation_tol=0, translation_tol=0,
                              gradient_tol=0, lambda_max=1e30)  # fmt: skip
    sizes = [(1024, 32, 1)] if args.quick else [
        (N, C, B) for B in (1, 16) for C in (32, 128) for N in (256, 1024, 4096)
    ]  # fmt: skip
    rows = []
    for N, C, B in sizes:
        points, ref, maps, camera, init = make_problem(B, N, C)
        repeats = max(2, int(200 / (B * N * C / 32768)))
        repeats = min(repeats, 50)
        dt, res = timed(lambda: solver.refine_batch(points, ref, maps, camera, init), repeats)
        iters = float(res.iterations.sum(-1).float().mean())
        one_level = [maps[-1]], [ref[-1]]
        dt1, res1 = timed(
            lambda: solver.refine_batch(points, one_level[1], one_level[0], camera, init), repeats
        )
        per_iter = dt1 / float(res1.iterations.sum(-1).float().mean())
        rows.append([N, C, B, f"{1000 * per_iter:.3f}", f"{1000 * dt:.2f}", f"{iters:.0f}",
                     f"{1000 * dt / B:.2f}", f"{B / dt:.0f}"])  # fmt: skip
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{LEVELS} levels (finest {W}x{H}), {ITERS} LM iterations per level")
    print(format_table(rows, ["N", "C", "batch", "ms/iter (finest)", "ms/refine (c2f)",
                              "iters", "ms/query", "queries/s"]))  # fmt: skip
    print(f"peak resident memory of this process: {peak:.0f} MiB")
    m = torch.randn(1, 32, H, W)
    dt, _ = timed(lambda: m.contiguous(memory_format=torch.channels_last), 5)
    print(f"converting one channels-first 32x{H}x{W} map to channels-last: {1000 * dt:.1f} ms")


if __name__ == "__main__":
    main()
