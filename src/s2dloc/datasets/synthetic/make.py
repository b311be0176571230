"""Generate a synthetic world into a folder: check the folder, render, write, preview."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from .preview import write_preview
from .world import WorldConfig, generate_world
from .write import prepare_world_folder, write_world

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MadeWorld:
    """What :func:`make_world` wrote: the folder, its main files (see
    :func:`~s2dloc.datasets.synthetic.write.write_world`), the preview grid if asked for, and
    the time taken in seconds."""

    root: Path
    paths: dict[str, Path]
    preview: Path | None
    seconds: float


def make_world(
    config: WorldConfig,
    out: str | Path,
    overwrite: bool = False,
    preview: bool = False,
    progress: bool = True,
) -> MadeWorld:
    """Render the world of ``config`` and write it under ``out`` (resumable).

    The folder is checked before rendering: one holding a world (or part of one) of other
    settings is refused with a :class:`~s2dloc.utils.config.ConfigError` unless ``overwrite``.
    """
    t0 = time.perf_counter()
    prepare_world_folder(out, config, overwrite)  # cleared here when overwriting
    world = generate_world(config, progress=progress)
    paths = write_world(world, out, progress=progress)
    grid = write_preview(world, paths["root"] / "preview.png") if preview else None
    if grid is not None:
        logger.info("preview: %s", grid)
    seconds = time.perf_counter() - t0
    logger.info("world %s written to %s in %.1f s", config, out, seconds)
    return MadeWorld(paths["root"], paths, grid, seconds)
