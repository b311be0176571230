"""Scene builders: a toy scene, a street canyon and an indoor room (world frame z up, metres)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .render import Primitive, Scene
from .textures import PHOTOS, photo, procedural

PROCEDURAL = ("checker", "tiles", "planks", "asphalt", "plaster", "windows", "foliage", "autumn")


def default_textures(seed: int = 0) -> dict[str, np.ndarray]:
    """All photo textures plus the procedural ones, keyed by name."""
    tex = {name: photo(name) for name in PHOTOS}
    for k, name in enumerate(PROCEDURAL):
        tex[name] = procedural(name, seed=seed * 101 + k)
    return tex


def look_at(center, target, up=(0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """cam_from_world (R (3, 3), t (3,)) of a camera at ``center`` looking at ``target``
    (camera x right, y down, z forward)."""
    c = np.asarray(center, np.float64)
    f = np.asarray(target, np.float64) - c
    f /= np.linalg.norm(f)
    r = np.cross(f, np.asarray(up, np.float64))
    r /= np.linalg.norm(r)
    R = np.stack([r, np.cross(f, r), f])
    return R, -R @ c


def quad(origin, u, v, texture: str, tex_size=(1.0, 1.0), **kw) -> Primitive:
    return Primitive(np.asarray(origin), np.asarray(u), np.asarray(v), texture, tex_size, **kw)


def wall(p0, p1, z0: float, z1: float, texture: str, tex_size=(2.0, 2.0), **kw) -> Primitive:
    """Vertical rectangle above the segment p0 -> p1 (xy), from height z0 to z1."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    return quad([*p0, z0], [*(p1 - p0), 0.0], [0.0, 0.0, z1 - z0], texture, tex_size, **kw)


def floor(x0, x1, y0, y1, z: float, texture: str, tex_size=(2.0, 2.0), **kw) -> Primitive:
    """Horizontal rectangle [x0, x1] x [y0, y1] at height z."""
    return quad([x0, y0, z], [x1 - x0, 0, 0], [0, y1 - y0, 0], texture, tex_size, **kw)


def box(center, size, texture: str, tex_size=(1.0, 1.0), top: str | None = None, **kw):
    """Five quads (4 sides + top) of an axis-aligned box standing on z = center[2] - size[2]/2."""
    c, s = np.asarray(center, np.float64), np.asarray(size, np.float64) / 2
    x0, x1, y0, y1 = c[0] - s[0], c[0] + s[0], c[1] - s[1], c[1] + s[1]
    z0, z1 = c[2] - s[2], c[2] + s[2]
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    prims = [
        wall(corners[i], corners[(i + 1) % 4], z0, z1, texture, tex_size, **kw) for i in range(4)
    ]
    prims.append(floor(x0, x1, y0, y1, z1, top or texture, tex_size, **kw))
    return prims


def pole(x: float, y: float, height: float, width: float = 0.16, texture="plaster", **kw):
    return box([x, y, height / 2], [width, width, height], texture, (0.5, 1.0), **kw)


def toy_scene(seed: int = 0) -> Scene:
    """A few textured planes 3-8 m in front of :func:`toy_reference_pose`: a brick wall with photo
    posters, a side wall, a ground plane and a box."""
    rng = np.random.default_rng(seed)
    prims = [
        floor(-6, 6, -3, 9, 0.0, "gravel", (1.5, 1.5), material="ground"),
        floor(-6, 6, 4.6, 5.9, 0.01, "grass", (1.5, 1.5), material="grass"),
        wall((-4, 6), (4, 6), 0, 4, "brick", (2.0, 2.0), material="facade"),
        wall((-4, 1), (-4, 6), 0, 3.5, "windows", (2.5, 2.5), material="facade"),
    ]
    for k, name in enumerate(("astronaut", "coffee", "rocket")):
        x = -3.2 + 2.4 * k + rng.uniform(-0.2, 0.2)
        w = 1.4 + rng.uniform(0, 0.3)
        prims.append(wall((x, 5.98), (x + w, 5.98), 1.2, 1.2 + w, name, (w, w), material="poster"))
    bx = rng.uniform(0.8, 1.8)
    prims += box([bx, 3.5, 0.5], [1.0, 1.0, 1.0], "chelsea", (1.0, 1.0), material="box")
    prims += box([-2.2, 4.0, 0.4], [1.2, 0.8, 0.8], "checker", (0.8, 0.8), material="box")
    path = np.array([[-1.5, -1.5, 1.5], [1.5, -1.5, 1.5]])
    lights = np.array([[-2.5, 3.0, 3.0], [2.5, 2.0, 3.0]])
    slots = [((-0.5, 2.0, 0.85), (0.5, 0.4, 1.7))]
    return Scene(
        prims, default_textures(seed), name="toy", path=path, lights=lights, transient_slots=slots
    )


def toy_reference_pose() -> tuple[np.ndarray, np.ndarray]:
    """cam_from_world (R, t) of a camera 1.5 m high looking at the toy scene's wall (3-8 m away)."""
    return look_at([0.3, -1.0, 1.5], [0.0, 6.0, 1.2])


def street_canyon(seed: int = 0, length: float = 60.0) -> Scene:
    """A street along +y: facades at varying setbacks, sidewalks, poles, trees, kiosks, posters."""
    rng = np.random.default_rng(seed)
    prims: list[Primitive] = [
        floor(-3, 3, -10, length + 10, 0.0, "asphalt", (3.0, 3.0), material="road"),
    ]
    for side in (-1, 1):
        prims += _street_side(rng, side, length)
    poles, lights, slots = _street_lamps(rng, length)
    prims += poles + _street_trees(rng, length)
    prims.append(
        wall((-8, length + 10), (8, length + 10), 0, 14, "windows", (3, 3), material="facade")
    )
    prims.append(wall((-8, -10), (8, -10), 0, 14, "brick", (3, 3), material="facade"))
    path = np.array([[0.0, 0.0, 1.6], [0.0, length - 8.0, 1.6]])
    return Scene(
        prims,
        default_textures(seed),
        name="street",
        path=path,
        lights=np.array(lights),
        transient_slots=slots,
    )


def _street_side(rng: np.random.Generator, side: int, length: float) -> list[Primitive]:
    """Facade segments at random setbacks on one side (x sign ``side``), with their
    sidewalks, the walls joining them and posters."""
    facade_tex = ["brick", "windows", "plaster", "windows", "brick"]
    posters = ["astronaut", "coffee", "rocket", "camera", "chelsea"]
    prims: list[Primitive] = []
    y, prev_x = -10.0, None
    while y < length + 10:
        seg = rng.uniform(6, 11)
        x = side * rng.uniform(5.0, 7.5)
        h = rng.uniform(6, 13)
        tex = facade_tex[rng.integers(len(facade_tex))]
        p0, p1 = (x, y), (x, y + seg)
        prims.append(wall(p0, p1, 0, h, tex, (3.0, 3.0), material="facade"))
        if prev_x is not None:
            prims.append(wall((prev_x, y), (x, y), 0, 13.0, "plaster", (3, 3), material="facade"))
        sidewalk = ("tiles", "gravel", "grass")[rng.choice(3, p=[0.5, 0.25, 0.25])]
        lo, hi = sorted((side * 3.0, x))
        prims.append(floor(lo, hi, y, y + seg, 0.0, sidewalk, (2, 2), material="ground"))
        if rng.random() < 0.7:
            pw = rng.uniform(1.2, 2.2)
            py = y + rng.uniform(0.5, seg - pw - 0.5)
            name = posters[rng.integers(len(posters))]
            xp = x - side * 0.02
            prims.append(
                wall((xp, py), (xp, py + pw), 1.0, 1.0 + pw, name, (pw, pw), material="poster")
            )
        prev_x, y = x, y + seg
    return prims


def _street_lamps(rng: np.random.Generator, length: float):
    """Lamp poles on both sides every 8 m: ``(primitives, lamp positions, parking slots)``."""
    prims: list[Primitive] = []
    lights, slots = [], []
    for y in np.arange(2.0, length, 8.0):
        for side in (-1, 1):
            ph = rng.uniform(3.5, 5)
            py = y + rng.uniform(-1, 1)
            prims += pole(side * 3.4, py, ph, material="pole")
            lights.append([side * 3.2, py, ph])
        side = 1 if rng.random() < 0.5 else -1
        slots.append(((side * 2.3, y + 4 + rng.uniform(-1, 1), 0.75), (1.6, 3.8, 1.5)))
    return prims, lights, slots


def _street_trees(rng: np.random.Generator, length: float) -> list[Primitive]:
    """A tree every 12 m with a kiosk and a hedge nearby."""
    prims: list[Primitive] = []
    for y in np.arange(6.0, length, 12.0):
        side = 1 if rng.random() < 0.5 else -1
        ty = y + rng.uniform(-2, 2)
        prims += pole(side * 4.2, ty, 2.2, 0.25, "planks", material="trunk")
        size = [1.8, 1.8, 1.6]
        prims += box([side * 4.2, ty, 3.0], size, "foliage", (1.0, 1.0), material="foliage")
        kx = -side * rng.uniform(3.8, 4.5)
        prims += box([kx, ty + 3, 0.6], [1.0, 1.6, 1.2], "checker", (1.0, 1.0), material="box")
        prims += box([-kx, ty - 3, 0.35], [0.8, 3.0, 0.7], "foliage", (1, 1), material="foliage")
    return prims


def indoor_room(seed: int = 0, size=(8.0, 6.0, 3.0)) -> Scene:
    """A furnished room [0, sx] x [0, sy] x [0, sz] with photos on the walls."""
    rng = np.random.default_rng(seed)
    sx, sy, sz = size
    corners = [(0, 0), (sx, 0), (sx, sy), (0, sy)]
    wall_tex = ["plaster", "windows", "brick", "plaster"]
    prims = [
        floor(0, sx, 0, sy, 0.0, "planks", (2, 2), material="floor"),
        floor(0, sx, 0, sy, sz, "tiles", (1.5, 1.5), material="ceiling"),
    ]
    for i in range(4):
        p0, p1 = corners[i], corners[(i + 1) % 4]
        prims.append(wall(p0, p1, 0, sz, wall_tex[i], (2.0, 2.0), material="wall"))
        d = np.subtract(p1, p0) / np.linalg.norm(np.subtract(p1, p0))
        inward = np.array([-d[1], d[0]]) * 0.02
        for k in range(2):
            name = PHOTOS[(2 * i + k + 3) % len(PHOTOS)]
            w = rng.uniform(0.7, 1.1)
            length = np.linalg.norm(np.subtract(p1, p0))
            s = (k + 1) * length / 3 - w / 2
            a, b = np.add(p0, d * s) + inward, np.add(p0, d * (s + w)) + inward
            prims.append(wall(a, b, 1.1, 1.1 + w, name, (w, w), material="poster"))
    prims += box([sx * 0.5, sy * 0.5, 0.375], [1.6, 0.9, 0.75], "planks", (1, 1), material="box")
    prims += box([0.4, sy * 0.35, 0.9], [0.6, 1.8, 1.8], "stripes_shelf", (1, 1), material="box")
    prims += box([sx - 0.5, sy * 0.7, 0.45], [0.8, 0.8, 0.9], "checker", (0.8, 0.8), material="box")
    prims += box([sx * 0.3, sy - 0.6, 0.4], [0.8, 0.8, 0.8], "foliage", (1, 1), material="foliage")
    tex = default_textures(seed)
    tex["stripes_shelf"] = procedural("stripes", seed=seed + 7)
    cx, cy = sx / 2, sy / 2
    ang = np.linspace(0, 2 * np.pi, 13)
    path = np.stack([cx + 1.6 * np.cos(ang), cy + 1.0 * np.sin(ang), np.full(13, 1.5)], 1)
    lights = np.array([[sx * 0.25, cy, sz - 0.1], [sx * 0.75, cy, sz - 0.1]])
    slots = [((sx - 1.2, 1.0, 0.85), (0.5, 0.4, 1.7)), ((1.2, sy - 1.0, 0.85), (0.5, 0.4, 1.7))]
    return Scene(
        prims,
        tex,
        sky=(0.2, 0.2, 0.2),
        name="room",
        path=path,
        lights=lights,
        transient_slots=slots,
        outdoor=False,
    )


SCENES = {"toy": toy_scene, "street": street_canyon, "room": indoor_room}


def break_repeats(scene: Scene, jitter: float, seed: int = 0, max_edge: float = 12.0) -> Scene:
    """``scene`` with surfaces that do not repeat exactly along the camera path.

    A tiled texture repeats every ``tex_size`` metres, so on a long street a view moved by one
    repeat looks the same. Here every edge longer than ``max_edge`` metres is cut into pieces of
    0.4-0.8 ``max_edge``, and each primitive's repeat is scaled by a factor drawn from
    ``[1 - jitter, 1 + jitter]`` (posters keep theirs: they show one photo). The geometry is
    unchanged; ``jitter = 0`` returns ``scene`` itself.
    """
    if jitter <= 0:
        return scene
    rng = np.random.default_rng([seed, 31])
    prims: list[Primitive] = []
    for p in scene.primitives:
        for piece in _cut(p, max_edge, rng):
            if piece.material != "poster":
                f = rng.uniform(1 - jitter, 1 + jitter)
                piece.tex_size = (piece.tex_size[0] * f, piece.tex_size[1] * f)
            prims.append(piece)
    return scene.replace(primitives=prims)


def _cut(p: Primitive, max_edge: float, rng: np.random.Generator) -> list[Primitive]:
    """``p`` cut across its longer edge into pieces of random length (one piece if short)."""
    lu, lv = np.linalg.norm(p.u), np.linalg.norm(p.v)
    long, other, length = (p.u, p.v, lu) if lu >= lv else (p.v, p.u, lv)
    if length <= max_edge:
        return [dataclasses.replace(p)]
    cuts = [0.0]
    while length - cuts[-1] > max_edge:
        cuts.append(cuts[-1] + rng.uniform(0.4, 0.8) * max_edge)
    cuts.append(length)
    d = long / length
    pieces = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        edge = d * (b - a)
        u, v = (edge, other) if lu >= lv else (other, edge)
        pieces.append(dataclasses.replace(p, origin=p.origin + d * a, u=u, v=v))
    return pieces
