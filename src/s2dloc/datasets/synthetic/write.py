"""Write a world to disk in the formats of the real datasets (atomic, resumable).

Layout of ``out``::

    settings.json                   the config, written first (stale-settings guard)
    world.json                      config and per-image condition labels (written last)
    images/db/0000.png ...          database images (reference condition)
    images/query/<cond>/0000.png    query images
    depth.h5                        float32 z-depth maps (metres, 0 = none) keyed by image name
    sfm/                            COLMAP binary model of the database (pycolmap)
    queries_with_intrinsics.txt     hloc query list: name MODEL W H params...
    poses_query.txt, poses_db.txt   name qw qx qy qz tx ty tz (cam_from_world)
    pairs-query-db.txt              5 nearest database images per query
    correspondences/0000.mat        Cross-Season-Correspondence-Dataset pairs (db vs query)
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from s2dloc.utils.config import ConfigError, check_settings
from s2dloc.utils.io import atomic_path, write_text_atomic

from ..colmap_io import write_pairs, write_poses, write_query_list
from ..correspondences import write_correspondences
from .export import colmap_model, dense_correspondences, nearest_database
from .render import camera_tuple
from .world import World, WorldConfig

logger = logging.getLogger(__name__)
SETTINGS_NAME = "settings.json"  # the settings marker, written before anything else
# Everything a world folder holds besides the marker (cleared first when overwriting).
OUTPUTS = (
    "world.json",
    "images/db",
    "images/query",
    "depth.h5",
    "sfm",
    "queries_with_intrinsics.txt",
    "poses_query.txt",
    "poses_db.txt",
    "pairs-query-db.txt",
    "correspondences",
    "preview.png",
)


def _world_json(world: World) -> str:
    views = [{"name": v.name, "condition": v.condition} for v in world.views]
    return json.dumps({"config": world.config.to_dict(), "images": views}, indent=1) + "\n"


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write (H, W, 3) float RGB in [0, 1] as an 8-bit PNG, atomically."""
    data = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)[..., ::-1]
    ok, buf = cv2.imencode(".png", data)
    if not ok:
        raise ValueError(f"could not encode {path}")
    with atomic_path(path, suffix=".png") as tmp:
        tmp.write_bytes(buf.tobytes())


def read_depth(path: str | Path, name: str) -> np.ndarray:
    """The (H, W) float32 depth map of image ``name`` from a ``depth.h5`` file."""
    with h5py.File(path, "r") as f:
        if name not in f:
            raise ValueError(f"{path}: no depth for image {name!r}")
        return np.asarray(f[name][()], np.float32)


def prepare_world_folder(out: str | Path, config: WorldConfig, overwrite: bool = False) -> Path:
    """Make ``out`` ready for the world of ``config`` before anything is rendered or written.

    Writes ``config`` to ``out/settings.json`` (atomically) the first time; a folder that holds
    a world, complete or partly written, of other settings is refused (naming the changed keys),
    so that a resumed run never mixes two worlds. ``overwrite`` removes the old outputs instead.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    marker = out / SETTINGS_NAME
    if overwrite:
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    elif not marker.exists():
        _marker_from_outputs(out, marker)
    hint = "it describes a different world; use overwrite or another --out"
    check_settings(marker, {"config": config.to_dict()}, force=overwrite, hint=hint)
    return out


def holds_world(out: str | Path, config: WorldConfig) -> bool:
    """Whether ``out`` holds a complete world (its ``world.json``) of ``config``; False for a
    missing, unfinished, unreadable or other world."""
    try:
        written = json.loads((Path(out) / "world.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return written == config.to_dict()


def _marker_from_outputs(out: Path, marker: Path) -> None:
    """Without a marker: adopt the config of a complete ``world.json``; refuse other outputs,
    whose settings are unknown."""
    meta = out / "world.json"
    if meta.exists():
        try:
            config = json.loads(meta.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"{meta}: not a world.json with a 'config' ({err!r})") from err
        write_text_atomic(marker, json.dumps({"config": config}, indent=2, sort_keys=True) + "\n")
        return
    found = [name for name in OUTPUTS if (out / name).exists()]
    if found:
        raise ConfigError(
            f"{out} holds outputs of a world of unknown settings ({', '.join(found[:3])}) and "
            f"no {SETTINGS_NAME}; use overwrite or another --out"
        )


def write_world(world: World, out: str | Path, overwrite: bool = False, progress: bool = True):
    """Write every export of ``world`` under ``out`` and return a dict of the main paths.

    The folder is checked first (:func:`prepare_world_folder`): files already written for the
    same config are kept (resume), a folder of another config is refused unless ``overwrite``,
    which starts again. ``world.json`` is written last (the completion marker).
    """
    out = prepare_world_folder(out, world.config, overwrite)

    def todo(path: Path) -> bool:
        return not path.exists()

    paths = {"root": out, "images": out / "images", "depth": out / "depth.h5", "sfm": out / "sfm"}
    for view in tqdm(world.views, desc="images", disable=not progress, leave=False):
        if todo(out / "images" / view.name):
            write_png(out / "images" / view.name, view.rgb)
    if todo(paths["depth"]):
        _write_depth(paths["depth"], world.views)
    if todo(paths["sfm"] / "images.bin"):
        _write_sfm(world, paths["sfm"])
    paths.update(_write_lists(world, out))
    paths["correspondences"] = out / "correspondences"
    _write_correspondences(world, paths["correspondences"], todo, progress)
    write_text_atomic(out / "world.json", _world_json(world))
    logger.info("wrote %d images and ground truth to %s", len(world.views), out)
    return paths


def _write_depth(path: Path, views) -> None:
    """All depth maps in one HDF5 file, one dataset per image name (written atomically)."""
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", libver="earliest") as f:
            for view in views:
                f.create_dataset(
                    view.name, data=view.depth, compression="gzip", shuffle=True, track_times=False
                )


def _write_sfm(world: World, sfm: Path) -> None:
    """The database model as a COLMAP binary model, replacing ``sfm`` once complete."""
    rec = colmap_model(world, seed=world.config.seed)
    tmp = Path(tempfile.mkdtemp(dir=sfm.parent, prefix=".sfm."))
    rec.write_binary(str(tmp))
    if sfm.exists():
        shutil.rmtree(sfm)
    tmp.rename(sfm)


def _write_lists(world: World, out: Path) -> dict[str, Path]:
    """Query list with intrinsics, query and database poses, and retrieval pairs."""
    cams = {v.name: camera_tuple(v.camera) for v in world.queries}
    pairs = [
        (q.name, world.database[i].name)
        for q in world.queries
        for i in nearest_database(world, q, 5)
    ]
    return {
        "queries": write_query_list(out / "queries_with_intrinsics.txt", cams),
        "poses_query": write_poses(
            out / "poses_query.txt", {v.name: v.cam_from_world for v in world.queries}
        ),
        "poses_db": write_poses(
            out / "poses_db.txt", {v.name: v.cam_from_world for v in world.database}
        ),
        "pairs": write_pairs(out / "pairs-query-db.txt", pairs),
    }


def _write_correspondences(world: World, folder: Path, todo, progress: bool) -> None:
    """Dense ground-truth correspondences of each query with its nearest database view."""
    num_static = len(world.scene.primitives)
    queries = tqdm(world.queries, desc="correspondences", disable=not progress, leave=False)
    for k, q in enumerate(queries):
        path = folder / f"{k:04d}.mat"
        if todo(path):
            ref = world.database[nearest_database(world, q, 1)[0]]
            pair = dense_correspondences(ref, q, seed=world.config.seed + k, num_static=num_static)
            write_correspondences(path, pair)
