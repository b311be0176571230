"""F-PnP speed and memory: ms per LM iteration, ms per coarse-to-fine refinement, peak memory.

Problem sizes: N in {256, 1024, 4096} points, C in {32, 128} channels, batch in {1, 16},
3 levels with the finest at 640x480. Feature maps are smooth random fields, channels-last
(as s2dloc's extractors hand them over; converting a channels-first map is timed apart).
"ms/refine" is a full coarse-to-fine refinement with 10 iterations at each level (30 in all,
set-up included) and "ms/iter" is that divided by 30 (an upper bound on one iteration).
Wall-clock times inflate when other processes share the cores; CPU time is shown beside them. The baseline is the solver's own vectorised PyTorch
path (``backend="torch"``, the differentiable reference), measured in the same run.
The last table times refinements that stop by themselves, on the toy scene with 32-channel
features, from 5 degree starts.

    python benchmarks/fpnp.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import time
from functools import partial

import torch
import torch.nn.functional as F

from s2dloc.datasets.toy import make_toy_problem, perturb
from s2dloc.features import photometric_pyramid
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose
from s2dloc.utils.table import format_table

W, H = 640, 480
FIXED = {"rotation_tol": 0, "translation_tol": 0, "gradient_tol": 0, "cost_tol": -1e30,
         "max_rejections": 10**6, "lambda_max": 1e30}  # fmt: skip


def make_problem(B: int, N: int, C: int, seed: int = 0):
    """Random smooth maps at strides 1, 2, 4 and points that project inside the image."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for s in (1, 2, 4):
        m = torch.randn(B, C, H // s // 4, W // s // 4, generator=g)
        m = F.interpolate(m, size=(H // s, W // s), mode="bilinear", align_corners=False)
        maps.append(m.contiguous(memory_format=torch.channels_last))
    depth = 2 + 6 * torch.rand(B, N, generator=g)
    uv = torch.rand(B, N, 2, generator=g) * torch.tensor([W - 40.0, H - 40.0]) + 20
    xy = (uv - torch.tensor([W / 2, H / 2])) / 500.0
    points = torch.cat([xy * depth[..., None], depth[..., None]], -1)
    ref = [torch.randn(B, N, C, generator=g) for _ in maps]
    cam = Camera.from_colmap("PINHOLE", W, H, [500.0, 500.0, W / 2, H / 2], dtype=torch.float32)
    cams = Camera(cam.model, cam.size.expand(B, 2), cam.params.expand(B, 4))
    return points, ref, maps, cams, Pose.identity(B, dtype=torch.float32)


def channels_last(fmap: torch.Tensor) -> torch.Tensor:
    """A ``(C, H, W)`` map stored as ``(H, W, C)``, the layout the solver samples fastest."""
    return fmap.permute(1, 2, 0).contiguous().permute(2, 0, 1)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Mean wall and CPU (all threads of this process) milliseconds of ``fn()``."""
    fn()  # warm-up (and compilation)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    n = repeats / 1000
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def measure(backend: str, problem, repeats: int) -> tuple[float, float]:
    """Wall and CPU ms per 3-level refinement of a batch (10 iterations per level)."""
    points, ref, maps, cams, init = problem
    solver = FeatureMetricPnP(backend=backend, max_iterations=10, **FIXED)
    return timed(lambda: solver.refine_batch(points, ref, maps, cams, init), repeats)


def speed_table(quick: bool) -> None:
    sizes = [(1024, 32, 1)] if quick else [
        (N, C, B) for B in (1, 16) for C in (32, 128) for N in (256, 1024, 4096)
    ]  # fmt: skip
    rows = []
    for N, C, B in sizes:
        problem = make_problem(B, N, C)
        work = B * N * C / 32768
        fast_ref, fast_cpu = measure("numba", problem, max(3, min(50, int(100 / work))))
        torch_ref, _ = measure("torch", problem, max(2, min(10, int(10 / work))))
        fast_it, torch_it = fast_ref / 30, torch_ref / 30
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append([N, C, B, f"{fast_it:.3f}", f"{fast_ref:.2f}", f"{fast_cpu:.2f}",
                     f"{fast_ref / B:.2f}",
                     f"{torch_it:.3f}", f"{torch_ref:.1f}", f"{torch_ref / fast_ref:.1f}x",
                     f"{rss:.0f}"])  # fmt: skip
        print(f"  done N={N} C={C} B={B}", flush=True)
    print(
        format_table(
            rows,
            [
                "N",
                "C",
                "batch",
                "ms/iter",
                "ms/refine",
                "CPU ms/refine",
                "ms/query",
                "torch ms/iter",
                "torch ms/refine",
                "speed-up",
                "peak RSS MiB",
            ],
        )
    )
    m = torch.randn(1, 32, H, W)
    wall, _ = timed(lambda: m.contiguous(memory_format=torch.channels_last), 5)
    print(f"converting one channels-first 32x{H}x{W} map to channels-last: {wall:.1f} ms")


def converged_table(trials: int = 10) -> None:
    problem = make_toy_problem(num_points=1024)
    mix = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))

    def extractor(image):  # 32 smooth channels: random mixtures of the colour pyramid
        return [torch.tanh(torch.einsum("kc,chw->khw", mix, m)) for m in photometric_pyramid(image)]

    ref, query = problem.features(extractor)
    query = [channels_last(m) for m in query]  # done once per query image by an extractor
    rows = []
    for backend in ("numba", "torch"):
        solver = FeatureMetricPnP(backend=backend)
        times, iters, errs = [], [], []
        for k in range(trials):
            init = perturb(problem.query_pose, 5.0, 0.1, seed=k)
            run = partial(solver.refine, problem.points3d.float(), ref, query, problem.camera, init)
            res = run()
            wall, _ = timed(run, 3)
            times.append(wall)
            iters.append(int(res.iterations.sum()))
            errs.append(float(res.pose.angle_to(problem.query_pose)))
        times.sort()
        rows.append([backend, f"{times[len(times) // 2]:.2f}", f"{sum(iters) / trials:.1f}",
                     f"{sorted(errs)[trials // 2]:.4f}"])  # fmt: skip
    print(format_table(rows, ["backend", "median ms/refine", "mean iterations",
                              "median final rot err [deg]"]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only N=1024, C=32, batch 1")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"3 levels (finest {W}x{H}); wall-clock milliseconds")  # fmt: skip
    speed_table(args.quick)
    print("\nNatural convergence (toy scene, N=1024, C=32, 5 deg starts):")
    converged_table()


if __name__ == "__main__":
    main()
