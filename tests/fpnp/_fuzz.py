"""Seeded small F-PnP problems with exact ground truth: well-posed, uninformative, degenerate.

Each :class:`FuzzBatch` holds ``B`` queries of one kind, ready for ``refine_batch``: smooth
random feature maps at two levels (96x72 and 48x36), points in front of the true camera, and
reference features sampled from the maps at the true projections (exact: zero cost at the truth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from s2dloc.geometry import Camera, Pose, sample

W, H = 96, 72
KINDS_UNINFORMATIVE = ("zero_maps", "constant_maps", "random_refs")
KINDS_DEGENERATE = ("identical_points", "collinear_points", "too_few_points")


@dataclass
class FuzzBatch:
    """``B`` queries of one kind: inputs of ``refine_batch`` and the true poses."""

    kind: str
    points: torch.Tensor  # (B, N, 3)
    refs: list[torch.Tensor]  # per level (B, N, C)
    maps: list[torch.Tensor]  # per level (B, C, H, W)
    camera: Camera  # (B,)
    truth: Pose  # (B,)
    init: Pose  # (B,)

    def run(self, solver):
        return solver.refine_batch(self.points, self.refs, self.maps, self.camera, self.init)


def _rotation(g: torch.Generator, B: int, deg: torch.Tensor) -> torch.Tensor:
    axis = torch.randn(B, 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    xi = torch.cat([torch.zeros(B, 3, dtype=torch.float64), axis * deg[:, None] * math.pi / 180], 1)
    return Pose.exp(xi).R


def _camera(model: str, B: int) -> Camera:
    extra = {
        "SIMPLE_PINHOLE": [],
        "PINHOLE": [],
        "SIMPLE_RADIAL": [-0.05],
        "RADIAL": [-0.05, 0.01],
        "OPENCV": [-0.05, 0.01, 1e-3, -1e-3],
    }[model]
    f = [80.0] if model.startswith(("SIMPLE", "RADIAL")) else [80.0, 82.0]
    cam = Camera.from_colmap(model, W, H, [*f, W / 2, H / 2, *extra])
    return Camera(model, cam.size.expand(B, 2), cam.params.expand(B, -1))


def _maps(g: torch.Generator, B: int, C: int) -> list[torch.Tensor]:
    coarse = torch.randn(B, C, H // 8, W // 8, generator=g)
    fine = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)
    return [fine, F.avg_pool2d(fine, 2)]


def well_posed(
    seed: int, B: int = 32, N: int = 64, C: int = 8, model: str = "PINHOLE", deg: float = 1.0
) -> FuzzBatch:
    """Exact problems; starts ``deg`` degrees (times 0.5..1.5) and ~2% of the depth away."""
    g = torch.Generator().manual_seed(seed)
    camera = _camera(model, B)
    uv = torch.rand(B, N, 2, generator=g, dtype=torch.float64) * torch.tensor([W - 16.0, H - 16.0])
    depth = 2 + 4 * torch.rand(B, N, 1, generator=g, dtype=torch.float64)
    rays = torch.cat([camera.unproject(uv + 8), torch.ones(B, N, 1, dtype=torch.float64)], -1)
    X_cam = rays * depth
    truth = Pose(_rotation(g, B, torch.full((B,), 20.0)), torch.randn(B, 3, generator=g).double())
    points = truth.inv().transform(X_cam)
    maps = _maps(g, B, C)
    refs = []
    for m in maps:
        p, _ = camera.scale(m.shape[-1] / W).project(X_cam)
        refs.append(sample(m, p.float())[0])
    scale = deg * (0.5 + torch.rand(B, generator=g, dtype=torch.float64))
    shift = torch.randn(B, 3, generator=g, dtype=torch.float64)
    shift = shift / shift.norm(dim=-1, keepdim=True) * 0.02 * 4 * scale[:, None] / deg
    delta = Pose(_rotation(g, B, scale), shift)
    init = delta @ truth
    return FuzzBatch("well_posed", points.float(), refs, maps, camera, truth, init)


def variant(kind: str, seed: int, B: int = 16, N: int = 64, C: int = 8) -> FuzzBatch:
    """An uninformative or degenerate version of :func:`well_posed` (same truth and starts)."""
    base = well_posed(seed, B, N, C)
    g = torch.Generator().manual_seed(seed + 1)
    if kind == "zero_maps":
        return replace(base, kind=kind, maps=[torch.zeros_like(m) for m in base.maps])
    if kind == "constant_maps":
        value = torch.randn(B, C, 1, 1, generator=g)
        return replace(base, kind=kind, maps=[value.expand_as(m).clone() for m in base.maps])
    if kind == "random_refs":
        refs = [torch.randn(r.shape, generator=g) * r.std() + r.mean() for r in base.refs]
        return replace(base, kind=kind, refs=refs)
    points = base.points.clone()
    if kind == "identical_points":
        points[:] = points[:, :1]
    elif kind == "collinear_points":
        t = torch.rand(B, N, 1, generator=g)
        points = points[:, :1] + t * (points[:, 1:2] - points[:, :1])
    elif kind == "too_few_points":
        points[:, 6:] = math.nan
    else:
        raise ValueError(f"unknown kind {kind!r}")
    refs = exact_refs(base, points) if kind != "too_few_points" else base.refs
    return replace(base, kind=kind, points=points, refs=refs)


def exact_refs(base: FuzzBatch, points: torch.Tensor) -> list[torch.Tensor]:
    """Reference features of ``points`` sampled at ``base.truth`` (zero cost there)."""
    X_cam = base.truth.transform(points.double())
    refs = []
    for m in base.maps:
        p, _ = base.camera.scale(m.shape[-1] / W).project(X_cam)
        refs.append(sample(m, p.float())[0])
    return refs
