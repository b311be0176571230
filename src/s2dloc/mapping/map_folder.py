"""The output folder of a map (layout in :mod:`s2dloc.mapping.sfm`): settings guard, model
written atomically, link to the images and ``summary.json``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from s2dloc.utils.config import check_settings
from s2dloc.utils.io import write_text_atomic

logger = logging.getLogger(__name__)


def summarize(rec) -> dict:
    """Figures of a ``pycolmap.Reconstruction``."""
    return {
        "registered_images": int(rec.num_reg_images()),
        "images": int(rec.num_images()),
        "cameras": int(rec.num_cameras()),
        "points3D": int(rec.num_points3D()),
        "observations": int(rec.compute_num_observations()),
        "mean_reprojection_error": float(rec.compute_mean_reprojection_error()),
        "mean_track_length": float(rec.compute_mean_track_length()),
    }


def prepare_out(out: Path, meta: dict, overwrite: bool) -> None:
    """Create ``out`` and save the run's settings ``meta`` to ``out/config.json``; refuse a
    folder of other settings (:func:`check_settings`) unless ``overwrite``, which clears it."""
    out.mkdir(parents=True, exist_ok=True)
    conf_path = out / "config.json"
    if overwrite:
        for name in ("database.db", "database.db-wal", "database.db-shm", "summary.json"):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "sfm", ignore_errors=True)
    hint = f"{out} holds a map built with other settings; use --overwrite or another --out"
    check_settings(conf_path, meta, force=overwrite, hint=hint)


def link_images(images: Path, out: Path) -> Path | None:
    """Make ``out/images`` point to ``images`` (a symlink); None if that is impossible."""
    target, images = out / "images", images.resolve()
    if target.exists():
        if target.resolve() == images:
            return target
        logger.warning(
            "%s exists and is not %s: pass `s2dloc localize --images %s`", target, images, images
        )
        return None
    try:
        os.symlink(images, target, target_is_directory=True)
    except OSError as err:
        logger.warning(
            "could not link %s -> %s (%s): pass `s2dloc localize --images %s`",
            target,
            images,
            err,
            images,
        )
        return None
    return target


def _write_model(rec, out: Path) -> Path:
    """Write ``rec`` to ``out/sfm`` (binary) via a temporary folder and a rename."""
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".sfm-"))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private
        rec.write_binary(str(tmp))
        shutil.rmtree(out / "sfm", ignore_errors=True)
        os.replace(tmp, out / "sfm")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "sfm"


def finish_map(rec, images: Path, out: Path, extra: dict) -> dict:
    """Write the model, the images link and ``summary.json`` (with ``extra``); the summary."""
    _write_model(rec, out)
    link_images(images, out)
    summary = {**summarize(rec), "image_root": str(images.resolve()), **extra}
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    logger.info(
        "map in %s: %d/%d images registered, %d points, reprojection error %.2f px, "
        "track length %.2f",
        out,
        summary["registered_images"],
        summary["images"],
        summary["points3D"],
        summary["mean_reprojection_error"],
        summary["mean_track_length"],
    )
    return summary
