"""A multi-condition world: database views in the reference condition, query views in others."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from tqdm import tqdm

from s2dloc.geometry import Camera, Pose
from s2dloc.utils.config import (
    Check,
    ConfigError,
    check_fields,
    from_settings,
    in_range,
    one_of,
    settings_of,
)

from .conditions import CONDITIONS, apply_condition, condition_scene
from .rays import undistort
from .render import Scene, backproject, render
from .scenes import SCENES, break_repeats
from .trajectories import database_poses, query_poses

logger = logging.getLogger(__name__)

DISTORTION = {  # default extra parameters of distorted models
    "SIMPLE_RADIAL": (-0.04,),
    "RADIAL": (-0.04, 0.01),
    "OPENCV": (-0.04, 0.01, 0.0005, -0.0005),
}


# Allowed ranges of the numeric settings: (min, max, unit). The field of view is that of a
# pinhole projection (180 degrees is infinitely wide); distorted models may allow less.
LIMITS = {
    "num_db": (1, 10_000, "images"),
    "num_query": (1, 10_000, "images"),
    "width": (16, 4096, "pixels"),
    "height": (16, 4096, "pixels"),
    "fov_deg": (10.0, 170.0, "degrees"),
    "texture_jitter": (0.0, 0.9, "(a fraction of each texture repeat)"),
}
QUERY_FOCAL_SCALES = (0.9, 1.1)  # query focal lengths vary by this factor around the database's
CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


def within_limits(name: str) -> Check:
    """The check of setting ``name`` against its :data:`LIMITS` (a message with the unit)."""
    lo, hi, unit = LIMITS[name]

    def check(value: Any) -> str | None:
        return None if lo <= value <= hi else f"must be within {lo:g}-{hi:g} {unit}"

    return check


def _conditions(value: Any) -> str | None:
    bad = [c for c in value if c not in CONDITIONS]
    if bad or not value:
        return f"holds bad query conditions {bad or '(none)'}; choose from {list(CONDITIONS)}"
    return None


# Checks of the settings of a world (see :func:`s2dloc.utils.config.merge`).
CHECKS: dict[str, Check] = {
    **{name: within_limits(name) for name in LIMITS},
    "scene": one_of(*SCENES),
    "seed": in_range(0),
    "camera_model": one_of(*CAMERA_MODELS),
    "query_conditions": _conditions,
}


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a world; equal configs give identical worlds. Settings are
    checked by type (that of the default) and :data:`CHECKS` (:class:`ConfigError` otherwise);
    build one from a preset and overrides with :func:`world_config`."""

    scene: str = "street"
    seed: int = 0
    num_db: int = 60
    num_query: int = 30
    width: int = 480
    height: int = 360
    camera_model: str = "PINHOLE"
    fov_deg: float = 65.0  # horizontal field of view of the database camera
    query_conditions: tuple[str, ...] = CONDITIONS[1:]
    # Surfaces cut into pieces, each with its texture repeat scaled by up to this fraction,
    # so views one repeat apart differ (see scenes.break_repeats); 0: exact repeats.
    texture_jitter: float = 0.3

    def __post_init__(self):
        check_fields(self, CHECKS)
        check_field_of_view(self.camera_model, self.width, self.height, self.fov_deg)

    def to_dict(self) -> dict:
        """The settings as plain data (``query_conditions`` as a list), as saved."""
        return settings_of(self)


@dataclasses.dataclass
class View:
    """One image: rgb (H, W, 3) float32, depth (H, W) float32 metres (0 = none), primitive (H, W)
    int32, and its camera, cam_from_world pose and condition label."""

    name: str
    condition: str
    camera: Camera
    cam_from_world: Pose
    rgb: np.ndarray
    depth: np.ndarray
    primitive: np.ndarray

    @property
    def Rt(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cam_from_world.numpy()


@dataclasses.dataclass
class World:
    config: WorldConfig
    scene: Scene
    database: list[View]
    queries: list[View]
    condition_scenes: dict[str, Scene] = dataclasses.field(default_factory=dict, repr=False)

    def scene_for(self, condition: str) -> Scene:
        """The scene under ``condition`` (cached)."""
        if condition not in self.condition_scenes:
            sc = condition_scene(self.scene, condition, self.config.seed)
            self.condition_scenes[condition] = sc
        return self.condition_scenes[condition]

    @property
    def views(self) -> list[View]:
        return self.database + self.queries


def make_camera(model: str, width: int, height: int, fov_deg: float, focal_scale: float = 1.0):
    """An s2dloc Camera of a COLMAP ``model`` with the given horizontal field of view."""
    f = focal_scale * width / 2 / np.tan(np.deg2rad(fov_deg) / 2)
    cx, cy = width / 2, height / 2
    params = {
        "SIMPLE_PINHOLE": (f, cx, cy),
        "PINHOLE": (f, f, cx, cy),
        "SIMPLE_RADIAL": (f, cx, cy),
        "RADIAL": (f, cx, cy),
        "OPENCV": (f, f, cx, cy),
    }
    if model not in params:
        raise ValueError(f"unsupported camera model {model!r}; choose from {list(CAMERA_MODELS)}")
    return Camera.from_colmap(model, width, height, params[model] + DISTORTION.get(model, ()))


def _border_pixels(width: int, height: int) -> np.ndarray:
    """Centres ``(K, 2)`` of the outermost pixels, where undistortion fails first."""
    u, v = np.arange(width) + 0.5, np.arange(height) + 0.5
    top = np.c_[u, np.full(width, 0.5)]
    left = np.c_[np.full(height, 0.5), v]
    return np.concatenate([top, top + [0, height - 1], left, left + [width - 1, 0]])


def _images_whole(model: str, width: int, height: int, fov_deg: float) -> bool:
    if model in ("SIMPLE_PINHOLE", "PINHOLE"):
        return True
    widest = make_camera(model, width, height, fov_deg, min(QUERY_FOCAL_SCALES))
    params = tuple(widest.params.tolist())
    return bool(
        np.isfinite(undistort(model, width, height, params, _border_pixels(width, height))).all()
    )


def check_field_of_view(model: str, width: int, height: int, fov_deg: float) -> None:
    """:class:`ConfigError` if a ``model`` camera (with :data:`DISTORTION`) cannot map every
    pixel of the image to a ray at this field of view (including the widest query camera)."""
    if _images_whole(model, width, height, fov_deg):
        return
    lo, hi = LIMITS["fov_deg"][0], fov_deg
    for _ in range(20):  # bisection for the widest supported field of view
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _images_whole(model, width, height, mid) else (lo, mid)
    raise ConfigError(
        f"setting 'fov_deg': field of view {fov_deg:g} deg is too wide for a {model} camera "
        f"with distortion {DISTORTION[model]}: the image corners have no ray beyond about "
        f"{int(lo)} deg for {width}x{height} images; use a smaller field of view or a "
        "PINHOLE/OPENCV camera"
    )


PRESETS = {
    "demo": WorldConfig(),
    "small": WorldConfig(num_db=24, num_query=12, width=320, height=240),
    "tiny": WorldConfig(num_db=8, num_query=6, width=160, height=120),
    "room": WorldConfig(scene="room", num_db=40, num_query=20, width=320, height=240),
}


def world_config(preset: str = "demo", overrides: Mapping[str, Any] | None = None) -> WorldConfig:
    """The settings of preset ``preset`` (see :data:`PRESETS`) updated with ``overrides``
    (e.g. ``{"width": 640, "query_conditions": ["night"]}``), checked strictly."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    return from_settings(WorldConfig, overrides, base=PRESETS[preset], checks=CHECKS)


def render_view(
    scene: Scene, camera: Camera, pose: Pose, condition: str, rng: np.random.Generator, name=""
) -> View:
    """Render ``scene`` (already prepared with :func:`condition_scene`) under ``condition``."""
    res = render(scene, camera, pose)
    points = backproject(res.depth, camera, pose) if condition == "night" else None
    rgb = apply_condition(res.rgb, res.depth, points, scene, condition, rng)
    return View(name, condition, camera, pose, rgb, res.depth, res.primitive)


def generate_world(config: WorldConfig | str = "demo", progress: bool = True) -> World:
    """Render all database and query views of a world (deterministic for ``config``)."""
    if isinstance(config, str):
        config = world_config(config)
    scene = break_repeats(SCENES[config.scene](config.seed), config.texture_jitter, config.seed)
    if scene.path is None:
        raise ValueError(f"scene {config.scene!r} has no camera path")
    rng = np.random.default_rng(config.seed)
    db_cam = make_camera(config.camera_model, config.width, config.height, config.fov_deg)
    db_poses = database_poses(scene.path, config.num_db)
    q_poses = query_poses(scene.path, config.num_query, rng)
    q_scales = rng.uniform(*QUERY_FOCAL_SCALES, config.num_query)
    cond_scenes = {c: condition_scene(scene, c, config.seed) for c in config.query_conditions}
    cond_scenes["reference"] = scene

    jobs = [(f"db/{i:04d}.png", "reference", db_cam, p) for i, p in enumerate(db_poses)]
    for k, p in enumerate(q_poses):
        cond = config.query_conditions[k % len(config.query_conditions)]
        cam = make_camera(
            config.camera_model, config.width, config.height, config.fov_deg, q_scales[k]
        )
        jobs.append((f"query/{cond}/{k:04d}.png", cond, cam, p))
    views = []
    for idx, (name, cond, cam, (R, t)) in enumerate(
        tqdm(jobs, desc="render", disable=not progress, leave=False)
    ):
        pose = Pose.from_Rt(R, t)
        img_rng = np.random.default_rng([config.seed, idx, 7])
        views.append(render_view(cond_scenes[cond], cam, pose, cond, img_rng, name))
    logger.info("rendered %d views of scene %r", len(views), config.scene)
    return World(config, scene, views[: config.num_db], views[config.num_db :], cond_scenes)


def same_view_all_conditions(world: World, index: int = 0) -> list[View]:
    """Database view ``index`` re-rendered under every condition (for previews and tests)."""
    ref = world.database[index]
    out = []
    for c in CONDITIONS:
        sc = world.scene_for(c)
        rng = np.random.default_rng([world.config.seed, index, 11])
        out.append(render_view(sc, ref.camera, ref.cam_from_world, c, rng, ref.name))
    return out
