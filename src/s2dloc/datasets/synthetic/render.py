"""A small vectorised numpy ray caster for scenes made of textured planar quads.

World frame: metres, z up. Poses are ``cam_from_world`` (``X_cam = R X_world + t``), cameras use
COLMAP models; the ray of pixel index (u, v) goes through the continuous coordinate (u+0.5, v+0.5).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from .rays import NEAR, backproject, camera_tuple, pixel_rays, pose_Rt, project
from .textures import TextureAtlas

__all__ = [
    "NEAR",
    "Primitive",
    "RenderResult",
    "Scene",
    "backproject",
    "camera_tuple",
    "pixel_rays",
    "pose_Rt",
    "project",
    "render",
]


@dataclasses.dataclass
class Primitive:
    """A textured parallelogram ``origin + a * u + b * v`` for a, b in [0, 1] (two-sided).

    ``tex_size`` is the size in metres of one texture repeat along u and v.
    """

    origin: np.ndarray  # (3,)
    u: np.ndarray  # (3,) edge vector
    v: np.ndarray  # (3,) edge vector
    texture: str
    tex_size: tuple[float, float] = (1.0, 1.0)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    material: str = ""
    transient: bool = False

    def __post_init__(self):
        self.origin = np.asarray(self.origin, np.float64).reshape(3)
        self.u = np.asarray(self.u, np.float64).reshape(3)
        self.v = np.asarray(self.v, np.float64).reshape(3)
        if np.linalg.norm(np.cross(self.u, self.v)) < 1e-9:
            raise ValueError("degenerate primitive: u and v are parallel or zero")

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.u, self.v)
        return n / np.linalg.norm(n)

    def corners(self) -> np.ndarray:
        """(4, 3) corners in order origin, +u, +u+v, +v."""
        o, u, v = self.origin, self.u, self.v
        return np.stack([o, o + u, o + u + v, o + v])


@dataclasses.dataclass
class Scene:
    """Textured primitives plus lighting. ``textures`` maps name -> (S, S, 3) float32."""

    primitives: list[Primitive]
    textures: dict[str, np.ndarray]
    sky: tuple[float, float, float] = (0.62, 0.74, 0.9)
    sun: tuple[float, float, float] = (0.4, -0.3, 0.87)  # direction towards the sun
    ambient: float = 0.55
    name: str = "scene"
    path: np.ndarray | None = None  # (K, 3) waypoints of the camera path
    lights: np.ndarray | None = None  # (L, 3) lamp positions used at night
    transient_slots: list[tuple[tuple, tuple]] = dataclasses.field(default_factory=list)
    outdoor: bool = True

    def replace(self, **kwargs) -> Scene:
        return dataclasses.replace(self, **kwargs)

    @functools.cached_property
    def compiled(self) -> _Compiled:
        return _Compiled(self)


class _Compiled:
    """Stacked per-primitive arrays and the texture atlas of a scene."""

    def __init__(self, scene: Scene):
        prims = scene.primitives
        names = sorted({p.texture for p in prims})
        missing = [n for n in names if n not in scene.textures]
        if missing:
            raise ValueError(f"scene {scene.name!r} uses undefined textures {missing}")
        self.atlas = TextureAtlas([scene.textures[n] for n in names])
        index = {n: k for k, n in enumerate(names)}
        self.origin = np.array([p.origin for p in prims]).reshape(-1, 3)
        self.u = np.array([p.u for p in prims]).reshape(-1, 3)
        self.v = np.array([p.v for p in prims]).reshape(-1, 3)
        self.normal = np.array([p.normal for p in prims]).reshape(-1, 3)
        self.tex = np.array([index[p.texture] for p in prims], np.int64)
        size = self.atlas.size
        lu = np.linalg.norm(self.u, axis=1)
        lv = np.linalg.norm(self.v, axis=1)
        ts = np.array([p.tex_size for p in prims], np.float64).reshape(-1, 2)
        self.scale = np.stack([lu / ts[:, 0], lv / ts[:, 1]], 1) * size  # texels per unit a, b
        self.scale32 = self.scale.astype(np.float32)
        self.texels_per_m = (size / ts.min(1)).astype(np.float32)
        self.tint = np.array([p.tint for p in prims], np.float32).reshape(-1, 3)
        sun = np.asarray(scene.sun, np.float64)
        self.sun = sun / np.linalg.norm(sun)
        self.sky = np.asarray(scene.sky, np.float32)
        self.ambient = float(scene.ambient)


@dataclasses.dataclass
class RenderResult:
    """rgb (H, W, 3) float32 in [0, 1]; depth (H, W) float32 z-depth in metres, 0 = no hit;
    primitive (H, W) int32 index into ``scene.primitives``, -1 = no hit."""

    rgb: np.ndarray
    depth: np.ndarray
    primitive: np.ndarray


def _clip_bbox(corners_cam: np.ndarray, near: float):
    """Clip a convex polygon (K, 3) to z >= near; return its normalised-plane bbox or None."""
    pts = []
    k = len(corners_cam)
    for i in range(k):
        a, b = corners_cam[i], corners_cam[(i + 1) % k]
        if a[2] >= near:
            pts.append(a)
        if (a[2] >= near) != (b[2] >= near):
            s = (near - a[2]) / (b[2] - a[2])
            pts.append(a + s * (b - a))
    if not pts:
        return None
    p = np.array(pts)
    xy = p[:, :2] / p[:, 2:]
    return xy.min(0), xy.max(0)


def _span(lo_ext: np.ndarray, hi_ext: np.ndarray, lo: float, hi: float):
    idx = np.flatnonzero((hi_ext >= lo) & (lo_ext <= hi))
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else None


@dataclasses.dataclass
class _CameraPlanes:
    """Primitives in the camera frame: plane normals ``n`` (P, 3) and dual edge bases ``du``,
    ``dv`` (P, 3) float32 with their offsets ``d_n``, ``d_u``, ``d_v`` (P,), corners (P, 4, 3)."""

    n: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    d_n: np.ndarray
    d_u: np.ndarray
    d_v: np.ndarray
    corners: np.ndarray
    normals: np.ndarray  # (P, 3) float64 unnormalised normals


def _camera_planes(c: _Compiled, R: np.ndarray, t: np.ndarray) -> _CameraPlanes:
    o_c = c.origin @ R.T + t
    u_c, v_c = c.u @ R.T, c.v @ R.T
    n_c = np.cross(u_c, v_c)
    # dual basis: a = q . du, b = q . dv for q = P - o in the plane
    du_c, dv_c = np.cross(v_c, n_c), np.cross(n_c, u_c)
    du_c /= np.einsum("ij,ij->i", du_c, u_c)[:, None]
    dv_c /= np.einsum("ij,ij->i", dv_c, v_c)[:, None]
    d_n = np.einsum("ij,ij->i", n_c, o_c).astype(np.float32)
    d_u = np.einsum("ij,ij->i", du_c, o_c).astype(np.float32)
    d_v = np.einsum("ij,ij->i", dv_c, o_c).astype(np.float32)
    corners = np.stack([o_c, o_c + u_c, o_c + u_c + v_c, o_c + v_c], 1)
    n32, du32, dv32 = (x.astype(np.float32) for x in (n_c, du_c, dv_c))
    return _CameraPlanes(n32, du32, dv32, d_n, d_u, d_v, corners, n_c)


@dataclasses.dataclass
class _Hits:
    """Nearest hit per pixel: z-depth (inf = none), primitive (-1 = none), plane coordinates."""

    z: np.ndarray  # (H, W) float32
    prim: np.ndarray  # (H, W) int32
    a: np.ndarray  # (H, W) float32
    b: np.ndarray  # (H, W) float32


def _intersect(xs, ys, pl: _CameraPlanes, i: int, near: float, zbuf: np.ndarray):
    """Depth ``z`` and plane coordinates ``a, b`` of primitive ``i`` on the rays ``xs, ys``, and
    the mask of rays it hits in front of ``zbuf`` (None when it is fully hidden)."""
    n, du, dv = pl.n[i], pl.du[i], pl.dv[i]
    x, y = xs, ys
    with np.errstate(divide="ignore", invalid="ignore"):
        z = x * n[0]
        z += y * n[1]
        z += n[2]
        np.divide(pl.d_n[i], z, out=z)
        m = z > near
        m &= z < zbuf
        if not m.any():  # fully hidden behind what is already drawn
            return None
        a = x * du[0]
        a += y * du[1]
        a += du[2]
        a *= z
        a -= pl.d_u[i]
        m &= a >= 0
        m &= a <= 1
        b = x * dv[0]
        b += y * dv[1]
        b += dv[2]
        b *= z
        b -= pl.d_v[i]
        m &= b >= 0
        m &= b <= 1
    return z, a, b, m


def _raycast(xs, ys, bounds, pl: _CameraPlanes, near: float) -> _Hits:
    """Nearest hit of every pixel ray ``(xs, ys)`` (H, W) among the primitives."""
    cx0, cx1, ry0, ry1 = bounds
    h, w = xs.shape
    hits = _Hits(
        np.full((h, w), np.inf, np.float32),
        np.full((h, w), -1, np.int32),
        np.zeros((h, w), np.float32),
        np.zeros((h, w), np.float32),
    )
    # front to back (by nearest corner), so that hidden primitives are rejected early
    for i in np.argsort(pl.corners[..., 2].min(1), kind="stable").tolist():
        box = _clip_bbox(pl.corners[i], near)
        if box is None:
            continue
        cols = _span(cx0, cx1, box[0][0], box[1][0])
        rows = _span(ry0, ry1, box[0][1], box[1][1])
        if cols is None or rows is None:
            continue
        sl = np.s_[rows[0] : rows[1], cols[0] : cols[1]]
        hit = _intersect(xs[sl], ys[sl], pl, i, near, hits.z[sl])
        if hit is None:
            continue
        z, a, b, m = hit
        np.copyto(hits.z[sl], z, where=m)
        np.copyto(hits.prim[sl], np.int32(i), where=m)
        np.copyto(hits.a[sl], a, where=m)
        np.copyto(hits.b[sl], b, where=m)
    return hits


def _shade(c: _Compiled, hits: _Hits, pl: _CameraPlanes, xs, ys, focal, R, t) -> np.ndarray:
    """Colours ``(H, W, 3)``: the sky gradient, or the mip-mapped texture with Lambert shading."""
    h, w = xs.shape
    rgb = np.empty((h, w, 3), np.float32)
    rgb[:] = c.sky * (1.0 - 0.25 * np.clip(ys, -1, 1))[..., None]
    idx = np.flatnonzero(hits.prim >= 0)
    if not len(idx):
        return rgb
    p = hits.prim.ravel()[idx]
    z = hits.z.ravel()[idx]
    x, y = xs.ravel()[idx], ys.ravel()[idx]
    n_c = pl.normals
    n_unit = (n_c / np.linalg.norm(n_c, axis=1, keepdims=True)).astype(np.float32)[p]
    cos = np.abs(n_unit[:, 0] * x + n_unit[:, 1] * y + n_unit[:, 2]) / np.sqrt(x * x + y * y + 1)
    lod = np.log2(z * (c.texels_per_m / np.float32(focal))[p])
    lod += np.float32(0.75) * np.log2(1.0 / np.maximum(cos, np.float32(1e-3)))
    s = hits.a.ravel()[idx] * c.scale32[p, 0]
    tt = (1 - hits.b.ravel()[idx]) * c.scale32[p, 1]
    col = c.atlas.sample(c.tex[p], s, tt, lod)
    # flat Lambert shading with the normal flipped towards the camera centre
    centre = -R.T @ t
    n_w = c.normal * np.sign(np.einsum("ij,ij->i", c.normal, centre - c.origin))[:, None]
    shade = c.ambient + (1 - c.ambient) * np.clip(n_w @ c.sun, 0, 1)
    col *= (c.tint * shade[:, None].astype(np.float32))[p]
    rgb.reshape(-1, 3)[idx] = col
    return rgb


def render(scene: Scene, camera: Any, cam_from_world: Any, near: float = NEAR) -> RenderResult:
    """Ray-cast ``scene`` from one camera (nearest hit, trilinear mip-mapped textures)."""
    model, w, h, params = camera_tuple(camera)
    xs, ys, bounds, focal = pixel_rays(model, w, h, params)
    R, t = pose_Rt(cam_from_world)
    c = scene.compiled
    planes = _camera_planes(c, R, t)
    hits = _raycast(xs, ys, bounds, planes, near)
    rgb = _shade(c, hits, planes, xs, ys, focal, R, t)
    depth = np.where(hits.prim >= 0, hits.z, np.float32(0)).astype(np.float32)
    return RenderResult(np.clip(rgb, 0, 1), depth, hits.prim)
