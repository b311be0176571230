"""GPU throughput against the CPU, in one run: F-PnP batches, feature extraction, localization.

- F-PnP: the torch backend of ``FeatureMetricPnP`` on both devices and, on the CPU, the compiled
  (numba) backend, which is CPU-only and the fastest CPU path; batches
  of 1, 16 and 64 queries, N=1024 points, C=32 channels, 3 levels with the finest at 640x480,
  10 LM iterations per level (no early stop, so every device does the same work).
- Extraction: GN-Net and the DISK trunk (random weights: speed does not depend on them) on
  640x480 images, batches of 1 and 8.
- Localization: queries/s of ``Localizer.localize`` on a small synthetic world with the shipped
  default features (``load_extractor("default")``). Only the extractor is placed on the device:
  ``DenseExtractor.extract`` hands CPU maps to the pipeline, so matching, PnP-RANSAC and F-PnP
  run on the CPU.

Times are medians of 3 calls after a warm-up call (which compiles the numba kernels, allocates
and picks the cuDNN algorithms); localization is one pass over the queries after one warm-up
query. The F-PnP inputs are smooth random fields (as in ``benchmarks/fpnp.py``).

Without a CUDA device it prints "no CUDA device" and the CPU figures. Run::

    .venv/bin/python benchmarks/gpu.py            # under 5 min on a GPU machine
    .venv/bin/python benchmarks/gpu.py --quick    # the smallest configuration (seconds)
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.features.disk_backbone import DISKBackbone
from s2dloc.features.gnnet import GNNet
from s2dloc.features.registry import load_extractor
from s2dloc.fpnp import FeatureMetricPnP
from s2dloc.geometry import Camera, Pose
from s2dloc.localization import Localizer, Map
from s2dloc.localization.io import read_queries
from s2dloc.utils.table import format_table

# Keep iterating (no convergence test) so that every device runs the same iterations.
FIXED_ITERATIONS = dict(
    rotation_tol=0,
    translation_tol=0,
    gradient_tol=0,
    cost_tol=-1e30,
    max_rejections=10**6,
    lambda_max=1e30,
)


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run (``size`` is ``(width, height)``)."""

    fpnp_batches: tuple[int, ...] = (1, 16, 64)
    points: int = 1024
    channels: int = 32
    size: tuple[int, int] = (640, 480)
    iterations: int = 10
    extract_batches: tuple[int, ...] = (1, 8)
    world: str = "small"
    num_db: int = 24
    num_queries: int = 8
    repeats: int = 3  # timed calls per measurement on CUDA (after a warm-up call)
    cpu_repeats: int = 3  # on the CPU (after a warm-up call too)


QUICK = BenchConfig(
    fpnp_batches=(2,),
    points=64,
    channels=4,
    size=(64, 48),
    iterations=2,
    extract_batches=(1,),
    world="tiny",
    num_db=4,
    num_queries=1,
    repeats=1,
    cpu_repeats=1,
)


@dataclass
class Measurement:
    """Median wall-clock milliseconds per call of one task on one device."""

    task: str
    setting: str
    device: str
    ms: float
    items: int  # queries or images per call
    peak_mib: float | None = None  # CUDA memory high-water mark
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.items / (self.ms / 1000)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timed:
    """What :func:`timed` measured."""

    ms: float  # median wall-clock milliseconds per call
    peak_mib: float | None  # CUDA memory high-water mark
    output: object  # of the last call


def timed(
    fn: Callable[[], object], device: torch.device, conf: BenchConfig, warmup: bool = True
) -> Timed:
    """Time ``fn()``: a warm-up call first (unless ``warmup`` is False: the first call allocates
    and picks kernels), then ``conf.repeats`` calls on CUDA, ``conf.cpu_repeats`` on the CPU."""
    cuda = device.type == "cuda"
    if warmup:
        fn()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times, output = [], None
    for _ in range(conf.repeats if cuda else conf.cpu_repeats):
        _sync(device)
        t = time.perf_counter()
        output = fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1000)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return Timed(statistics.median(times), peak, output)


def fpnp_inputs(B: int, conf: BenchConfig, device: torch.device, seed: int = 0):
    """Smooth random maps ``(B, C, H/s, W/s)`` at strides 1, 2, 4, references ``(B, N, C)``,
    points ``(B, N, 3)`` in view, cameras and identity initial poses, all on ``device``."""
    g = torch.Generator().manual_seed(seed)
    (W, H), N, C = conf.size, conf.points, conf.channels
    maps = []
    for s in (1, 2, 4):
        m = torch.randn(B, C, max(H // s // 4, 1), max(W // s // 4, 1), generator=g)
        m = F.interpolate(m, size=(H // s, W // s), mode="bilinear", align_corners=False)
        maps.append(m.to(device).contiguous(memory_format=torch.channels_last))
    depth = 2 + 6 * torch.rand(B, N, 1, generator=g)
    uv = torch.rand(B, N, 2, generator=g) * torch.tensor([W * 0.9, H * 0.9]) + 0.05 * W
    xy = (uv - torch.tensor([W / 2, H / 2])) / (0.8 * W)
    points = torch.cat([xy * depth, depth], -1).to(device)
    refs = [torch.randn(B, N, C, generator=g).to(device) for _ in maps]
    cam = Camera.from_colmap("PINHOLE", W, H, [0.8 * W, 0.8 * W, W / 2, H / 2], torch.float32)
    cams = Camera(cam.model, cam.size.expand(B, 2), cam.params.expand(B, 4)).to(device)
    return points, refs, maps, cams, Pose.identity(B, dtype=torch.float32, device=device)


def bench_fpnp(conf: BenchConfig, device: torch.device) -> list[Measurement]:
    """The torch backend on ``device``; on the CPU also the compiled (numba) backend, the
    fastest CPU path, after a warm-up call that compiles it."""
    backends = ["torch", "numba"] if device.type == "cpu" else ["torch"]
    out = []
    for backend in backends:
        solver = FeatureMetricPnP(
            backend=backend, max_iterations=conf.iterations, **FIXED_ITERATIONS
        )
        for B in conf.fpnp_batches:
            points, refs, maps, cams, init = fpnp_inputs(B, conf, device)
            call = partial(solver.refine_batch, points, refs, maps, cams, init)
            t = timed(call, device, conf)
            if t.output.pose.device.type != device.type:
                raise RuntimeError(f"F-PnP returned a pose on {t.output.pose.device}, not {device}")
            setting = f"B={B} N={conf.points} C={conf.channels}"
            task = f"F-PnP ({'compiled' if backend == 'numba' else 'torch'})"
            out.append(Measurement(task, setting, device.type, t.ms, B, t.peak_mib))
    return out


def bench_extract(conf: BenchConfig, device: torch.device) -> list[Measurement]:
    W, H = conf.size
    models = {"GN-Net": GNNet(), "DISK trunk": DISKBackbone(pretrained=False)}
    out = []
    for name, model in models.items():
        model = model.eval().to(device)
        for B in conf.extract_batches:
            images = torch.rand(B, 3, H, W, generator=torch.Generator().manual_seed(0))
            images = images.to(device)
            with torch.no_grad():
                t = timed(partial(model, images), device, conf)
            if any(m.device.type != device.type for m in t.output):
                raise RuntimeError(f"{name} returned maps off {device}")
            setting = f"B={B} {W}x{H}"
            out.append(Measurement(f"extract {name}", setting, device.type, t.ms, B, t.peak_mib))
    return out


def make_world(conf: BenchConfig, folder: Path) -> tuple[Map, list]:
    """A synthetic world (reference condition) written to ``folder``: its map and queries."""
    cfg = dataclasses.replace(
        PRESETS[conf.world],
        num_db=conf.num_db,
        num_query=conf.num_queries,
        query_conditions=("reference",),
    )
    write_world(generate_world(cfg, progress=False), folder, progress=False)
    queries = read_queries(folder / "queries_with_intrinsics.txt", folder / "images")
    return Map.load(folder), queries


def bench_localize(conf: BenchConfig, device: torch.device, world) -> list[Measurement]:
    map_, queries = world
    cfg = PRESETS[conf.world]
    loc_conf = {"s2d": {"match_stride": 4}} if cfg.width <= 160 else None
    extractor = load_extractor("default").to(device)  # the shipped default
    loc = Localizer(map_, loc_conf, extractor=extractor, progress=False)
    loc.localize(queries[0])  # warm-up
    one_pass = dataclasses.replace(conf, repeats=1, cpu_repeats=1)
    t = timed(lambda: [loc.localize(q) for q in queries], device, one_pass, warmup=False)
    note = f"{sum(r.success for r in t.output)}/{len(queries)} queries localized"
    setting = f"{conf.world} world {cfg.width}x{cfg.height}"
    m = Measurement("localize (default)", setting, device.type, t.ms, len(queries), t.peak_mib)
    return [dataclasses.replace(m, note=note)]


def run(conf: BenchConfig, devices: list[torch.device]) -> list[Measurement]:
    """Every measurement on every device; a task failing on a device is reported and skipped."""
    out: list[Measurement] = []
    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(conf, Path(tmp) / "world")
        for device in devices:
            for bench in (bench_fpnp, bench_extract, bench_localize):
                args = (conf, device, world) if bench is bench_localize else (conf, device)
                try:
                    out += bench(*args)
                except Exception as err:  # report what cannot run on this device, go on
                    print(f"{bench.__name__} cannot run on {device}: {type(err).__name__}: {err}")
    return out


def table(rows: list[Measurement]) -> str:
    """One line per task and setting: ms and items/s per device, and the CUDA speed-up."""
    keys = list(dict.fromkeys((r.task, r.setting) for r in rows))
    by = {(r.task, r.setting, r.device): r for r in rows}
    lines = []
    for task, setting in keys:
        cpu, cuda = by.get((task, setting, "cpu")), by.get((task, setting, "cuda"))
        cells = [task, setting]
        for r in (cpu, cuda):
            cells += [f"{r.ms:.1f}", f"{r.per_second:.1f}"] if r else ["-", "-"]
        speedup = f"{cpu.ms / cuda.ms:.1f}x" if cpu and cuda else "-"
        peak = f"{cuda.peak_mib:.0f}" if cuda and cuda.peak_mib is not None else "-"
        lines.append([*cells, speedup, peak])
    headers = ["task", "setting", "CPU ms", "CPU /s", "CUDA ms", "CUDA /s", "speed-up", "CUDA MiB"]
    return format_table(lines, headers)


def main(argv: list[str] | None = None) -> list[Measurement]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest configuration")
    parser.add_argument("--cpu-only", action="store_true", help="skip CUDA even if present")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.cpu_only:
        devices.append(torch.device("cuda", torch.cuda.current_device()))
        print(f"CUDA device: {torch.cuda.get_device_name(0)}")
    else:
        print("no CUDA device: CPU figures only")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    t = time.perf_counter()
    rows = run(QUICK if args.quick else BenchConfig(), devices)
    print(table(rows))
    for r in rows:
        if r.note:
            print(f"{r.task} on {r.device}: {r.note}")
    by = {(r.task, r.setting, r.device): r for r in rows}
    for (task, setting, device), r in by.items():
        compiled = by.get(("F-PnP (compiled)", setting, "cpu"))
        if task == "F-PnP (torch)" and device == "cuda" and compiled:
            print(f"F-PnP {setting}: CUDA torch {compiled.ms / r.ms:.1f}x the compiled CPU path")
    print(
        "localize: only extraction runs on the device (extract() returns CPU maps); S2D "
        f"matching, PnP-RANSAC and F-PnP run on the CPU. Total {time.perf_counter() - t:.0f} s"
    )
    return rows


if __name__ == "__main__":
    main()
