"""Multi-condition synthetic worlds: textured planar scenes, a fast ray caster, conditions
(day, dusk, night, snow, fog, foliage), trajectories and exports in real dataset formats."""

from .render import Primitive, RenderResult, Scene, backproject, render
from .scenes import SCENES, indoor_room, look_at, street_canyon, toy_reference_pose, toy_scene

__all__ = [
    "Primitive",
    "RenderResult",
    "Scene",
    "SCENES",
    "backproject",
    "indoor_room",
    "look_at",
    "render",
    "street_canyon",
    "toy_reference_pose",
    "toy_scene",
]
