"""F-PnP speed: milliseconds per coarse-to-fine refinement, by backend and map memory layout.

Problem sizes: N in {256, 1024, 4096} points, C in {32, 128} channels, batch in {1, 16},
3 levels with the finest at 640x480; feature maps are smooth random fields. Every refinement
runs exactly 10 LM iterations per level (30 in all, set-up included) through the documented
``refine`` / ``refine_batch`` calls, alternating between the layouts compared. Each cell is the
median over repeats with [min, max]; "CPU" is process CPU time (all threads). Ratios are
against the baseline measured in the same run: the compiled path on channels-last maps.

Layouts: "plain" maps are ordinary contiguous ``(C, H, W)`` tensors (what a user hands over);
"channels-last" maps are stored ``(H, W, C)``. The compiled path reads both in place; the torch
path converts plain maps to channels-last itself (its CPU time includes that).
The last table times refinements with default settings that stop by themselves on the toy
scene (N=1024, C in {32, 128}, batch in {1, 16}, each query with its own features; both
layouts alternating for the compiled path).

    python benchmarks/fpnp.py [--quick] [--repeats K]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from s2dloc.datasets.toy import make_toy_problem, perturb
from s2dloc.features import photometric_pyramid
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose
from s2dloc.utils.table import format_table

W, H = 640, 480
FIXED = {
    "rotation_tol": 0,
    "translation_tol": 0,
    "gradient_tol": 0,
    "cost_tol": -1e30,
    "max_rejections": 10**6,
    "lambda_max": 1e30,
    "max_iterations": 10,
}


@dataclass
class Timing:
    """Wall-clock milliseconds per call: median, min, max over repeats; median CPU ms."""

    median: float
    low: float
    high: float
    cpu: float

    def cell(self, baseline: Timing | None = None) -> str:
        ratio = f" ({self.median / baseline.median:.2f}x)" if baseline else ""
        return f"{self.median:.2f} [{self.low:.2f}, {self.high:.2f}]{ratio}"


def timed(*fns, repeats: int) -> list[Timing]:
    """Time each of ``fns`` ``repeats`` times after one warm-up call (and compilation).

    The calls alternate (a, b, a, b, ...), so a drift of the machine's speed during the run
    affects every function alike and their ratios stay comparable.
    """
    for fn in fns:
        fn()
    wall, cpu = [[] for _ in fns], [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            wall[k].append(1000 * (time.perf_counter() - w0))
            cpu[k].append(1000 * (time.process_time() - c0))
    return [
        Timing(statistics.median(w), min(w), max(w), statistics.median(c))
        for w, c in zip(wall, cpu, strict=True)
    ]


def make_problem(B: int, N: int, C: int, seed: int = 0):
    """Plain contiguous smooth maps at strides 1, 2, 4 and points projecting inside the image."""
    g = torch.Generator().manual_seed(seed)
    maps = []
    for s in (1, 2, 4):
        m = torch.randn(B, C, H // s // 4, W // s // 4, generator=g)
        maps.append(F.interpolate(m, size=(H // s, W // s), mode="bilinear").contiguous())
    depth = 2 + 6 * torch.rand(B, N, generator=g)
    uv = torch.rand(B, N, 2, generator=g) * torch.tensor([W - 40.0, H - 40.0]) + 20
    xy = (uv - torch.tensor([W / 2, H / 2])) / 500.0
    points = torch.cat([xy * depth[..., None], depth[..., None]], -1)
    ref = [torch.randn(B, N, C, generator=g) for _ in maps]
    cam = Camera.from_colmap("PINHOLE", W, H, [500.0, 500.0, W / 2, H / 2], dtype=torch.float32)
    return points, ref, maps, cam, Pose.identity(dtype=torch.float32)


def channels_last(maps: list[torch.Tensor]) -> list[torch.Tensor]:
    return [m.contiguous(memory_format=torch.channels_last) for m in maps]


def run(backend: str, problem, B: int, layout: str):
    """A no-argument callable refining the problem once (``refine`` for a single query)."""
    points, ref, maps, cam, init = problem
    maps = channels_last(maps) if layout == "channels-last" else maps
    solver = FeatureMetricPnP(backend=backend, **FIXED)
    if B == 1:
        args = (points[0], [r[0] for r in ref], [m[0] for m in maps], cam, init)
        return lambda: solver.refine(*args)
    cams = Camera(cam.model, cam.size.expand(B, 2), cam.params.expand(B, 4))
    inits = Pose(init.R.expand(B, 3, 3), init.t.expand(B, 3))
    return lambda: solver.refine_batch(points, ref, maps, cams, inits)


def speed_table(quick: bool, repeats: int) -> None:
    sizes = [(1024, 32, 1)]
    if not quick:
        sizes = [(N, C, B) for B in (1, 16) for C in (32, 128) for N in (256, 1024, 4096)]
    rows = []
    for N, C, B in sizes:
        problem = make_problem(B, N, C)
        k = max(3, min(repeats, int(repeats * 32768 / (B * N * C))))
        base, plain = timed(
            run("numba", problem, B, "channels-last"), run("numba", problem, B, "plain"), repeats=k
        )
        torch_plain, torch_cl = timed(
            run("torch", problem, B, "plain"),
            run("torch", problem, B, "channels-last"),
            repeats=max(3, k // 5),
        )
        rows.append(
            [
                N,
                C,
                B,
                base.cell(),
                f"{base.cpu:.2f}",
                plain.cell(base),
                f"{plain.cpu:.2f}",
                torch_cl.cell(base),
                torch_plain.cell(base),
                f"{torch_plain.cpu:.1f}",
            ]
        )
        print(f"  done N={N} C={C} B={B}", flush=True)
    headers = [
        "N",
        "C",
        "batch",
        "compiled, channels-last [min, max]",
        "CPU",
        "compiled, plain (x baseline)",
        "CPU",
        "torch, channels-last",
        "torch, plain",
        "torch CPU",
    ]
    print(format_table(rows, headers))
    m = torch.randn(1, 32, H, W)
    (conv,) = timed(lambda: m.contiguous(memory_format=torch.channels_last), repeats=5)
    print(f"converting one plain 32x{H}x{W} map to channels-last: {conv.cell()} ms")


def toy_batch(problem, C: int, B: int):
    """``B`` queries of the toy scene, each with its own ``C``-channel features (random smooth
    mixtures of the colour pyramid): points ``(B, N, 3)``, references per level ``(B, N, C)``,
    plain query maps per level ``(B, C, H, W)``."""
    refs, queries = [], []
    for b in range(B):
        mix = torch.randn(C, 3, generator=torch.Generator().manual_seed(b))

        def extractor(image, mix=mix):
            levels = photometric_pyramid(image)
            return [torch.tanh(torch.einsum("kc,chw->khw", mix, m)) for m in levels]

        ref, query = problem.features(extractor)
        refs.append(ref)
        queries.append(query)
    points = problem.points3d.float().expand(B, -1, -1)
    ref = [torch.stack(level) for level in zip(*refs)]
    query = [torch.stack(level).contiguous() for level in zip(*queries)]
    return points, ref, query


CONVERGED_HEADERS = [
    "C",
    "batch",
    "backend",
    "maps",
    "median ms/call",
    "ratio",
    "mean iterations",
    "median rot err [deg]",
    "success",
]


def converged_table(sizes, trials: int = 10) -> None:
    """Refinements that stop by themselves (default settings) from 5 degree starts."""
    problem = make_toy_problem(num_points=1024)
    solvers = {b: FeatureMetricPnP(backend=b) for b in ("numba", "torch")}
    settings = [("numba", "channels-last"), ("numba", "plain"), ("torch", "plain")]
    rows = []
    for C, B in sizes:
        points, ref, query = toy_batch(problem, C, B)
        maps = {"plain": query, "channels-last": channels_last(query)}
        cams = Camera.stack([problem.camera] * B)
        times = {s: [] for s in settings}
        iters, errs, ok = (
            {s: [] for s in settings},
            {s: [] for s in settings},
            dict.fromkeys(settings, 0),
        )
        for k in range(trials):
            starts = [perturb(problem.query_pose, 5.0, 0.1, seed=k * B + b) for b in range(B)]
            init = Pose.stack(starts).float()
            calls = [
                partial(solvers[backend].refine_batch, points, ref, maps[layout], cams, init)
                for backend, layout in settings
            ]
            for s, call in zip(settings, calls, strict=True):
                res = call()
                iters[s].append(float(res.iterations.sum(-1).float().mean()))
                errs[s] += [float(e) for e in res.pose.angle_to(problem.query_pose.float())]
                ok[s] += int(res.success.sum())
            numba_times = timed(*calls[:2], repeats=5)  # the two layouts alternate
            for s, t in zip(settings, [*numba_times, *timed(calls[2], repeats=2)], strict=True):
                times[s].append(t.median)
        base = statistics.median(times[settings[0]])
        for backend, layout in settings:
            s = (backend, layout)
            med = statistics.median(times[s])
            rows.append(
                [
                    C,
                    B,
                    backend,
                    layout,
                    f"{med:.2f}",
                    f"{med / base:.2f}x",
                    f"{sum(iters[s]) / trials:.1f}",
                    f"{statistics.median(errs[s]):.4f}",
                    f"{ok[s]}/{trials * B}",
                ]
            )
        print(f"  done C={C} B={B}", flush=True)
    print(format_table(rows, CONVERGED_HEADERS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only N=1024, C=32, batch 1")
    parser.add_argument("--repeats", type=int, default=20, help="repeats of the smallest cell")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; 3 levels (finest "
        f"{W}x{H}), 10 iterations per level; wall-clock ms per refinement"
    )
    speed_table(args.quick, args.repeats)
    print("\nNatural convergence (toy scene, N=1024, default settings, 5 deg starts):")
    converged_table([(32, 1)] if args.quick else [(32, 1), (128, 1), (32, 16), (128, 16)])


if __name__ == "__main__":
    main()
