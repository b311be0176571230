"""``s2dloc synth`` as a library call (:func:`synth_command`): a world from a preset, the
options that override it and ``KEY=VAL`` settings that override both, each checked and named
in the error by the option that set it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s2dloc.utils.config import ConfigError, from_namespace, parse_overrides

from .make import MadeWorld, make_world
from .world import CHECKS, world_config

# World settings set by an option of their own (field -> option), checked against their
# ranges before the other settings so that an error names the option.
OPTIONS = {
    "num_db": "--num-db",
    "num_query": "--num-query",
    "width": "--width",
    "height": "--height",
    "fov_deg": "--fov",
}


@dataclass
class SynthRequest:
    """One ``s2dloc synth`` run: the fields are its options (None: the preset's value)."""

    out: str | Path
    preset: str = "demo"
    scene: str | None = None
    seed: int | None = None
    num_db: int | None = None
    num_query: int | None = None
    width: int | None = None
    height: int | None = None
    camera_model: str | None = None
    fov: float | None = None
    conf: list[str] = field(default_factory=list)  # KEY=VAL overrides (they win)
    overwrite: bool = False
    preview: bool = False

    @classmethod
    def from_args(cls, args) -> SynthRequest:
        """From an ``argparse.Namespace`` (attributes of the same names; others ignored)."""
        return from_namespace(cls, args)

    def option_settings(self) -> dict:
        """The world settings given as options, each checked (an error names the option)."""
        given = {
            "scene": self.scene,
            "seed": self.seed,
            "num_db": self.num_db,
            "num_query": self.num_query,
            "width": self.width,
            "height": self.height,
            "camera_model": self.camera_model,
            "fov_deg": self.fov,
        }
        given = {k: v for k, v in given.items() if v is not None}
        for key, option in OPTIONS.items():
            problem = CHECKS[key](given[key]) if key in given else None
            if problem:
                raise ConfigError(f"s2dloc synth {option} {problem}, got {given[key]:g}")
        return given


def synth_command(request: SynthRequest, progress: bool = True) -> MadeWorld:
    """Render and write the world ``request`` asks for (resumable; see :func:`make_world`)."""
    overrides = {**request.option_settings(), **parse_overrides(request.conf)}  # --conf wins
    config = world_config(request.preset, overrides)  # also checks the field of view
    return make_world(
        config, request.out, request.overwrite, preview=request.preview, progress=progress
    )
