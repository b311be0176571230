"""``s2dloc map`` as a library call: build a map by SfM, triangulate one with known poses, or
import a COLMAP model (:func:`map_command`), refusing options the chosen mode would ignore."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from s2dloc.utils.config import from_namespace, parse_overrides

from .known_poses import known_poses_config, triangulate_known_poses
from .map_folder import summarize
from .sfm import SfMConfig, build_map, import_model, sfm_config

# Options used by SfM only (by field name), each with the reason it has no use with
# known poses.
NOT_WITH_KNOWN_POSES = {
    "camera_model": "the cameras come from the model",
    "camera": "the cameras come from the model",
    "single_camera": "the cameras come from the model",
    "overlap": "it sets the sequential matcher, which --known-poses does not use",
}
# Options with no use when a model is imported (no features, matching or SfM run).
NOT_WITH_IMPORT = (
    "camera_model",
    "camera",
    "single_camera",
    "max_size",
    "max_features",
    "matcher",
    "overlap",
    "threads",
)


@dataclass
class MapRequest:
    """One ``s2dloc map`` run: the fields are its options (None: not given)."""

    images: str | Path
    out: str | Path
    import_model: str | Path | None = None
    known_poses: str | Path | None = None
    camera_model: str | None = None
    camera: str | None = None
    single_camera: bool | None = None
    max_size: int | None = None
    max_features: int | None = None
    matcher: str | None = None
    overlap: int | None = None
    threads: int | None = None
    conf: list[str] = field(default_factory=list)  # KEY=VAL overrides (they win)
    overwrite: bool = False

    @classmethod
    def from_args(cls, args) -> MapRequest:
        """From an ``argparse.Namespace`` (attributes of the same names; others ignored)."""
        return from_namespace(cls, args)

    def settings(self, keys: tuple[str, ...]) -> dict:
        """The settings among ``keys`` given as options, updated with ``conf`` (which wins)."""
        flags = {k: getattr(self, k) for k in keys if k != "num_threads"}
        if "num_threads" in keys:
            flags["num_threads"] = self.threads
        flags = {k: v for k, v in flags.items() if v is not None}
        return {**flags, **parse_overrides(self.conf or [])}


def _option(key: str) -> str:
    """The command-line option of field ``key`` (``camera_model`` -> ``--camera-model``)."""
    return "--" + key.replace("_", "-")


def check_mode_options(req: MapRequest) -> None:
    """Refuse options that the chosen mode would ignore (the error names the option and why)."""
    if req.import_model and req.known_poses:
        raise ValueError("use either --import-model or --known-poses, not both")
    if req.import_model:
        for key in NOT_WITH_IMPORT:
            if getattr(req, key) is not None:
                raise ValueError(
                    f"{_option(key)} has no use with --import-model: the model is imported as it is"
                )
        if req.conf:
            raise ValueError("--conf has no settings to change with --import-model")
    elif req.known_poses:
        for key, why in NOT_WITH_KNOWN_POSES.items():
            if getattr(req, key) is not None:
                raise ValueError(f"{_option(key)} has no use with --known-poses: {why}")
        if req.matcher == "sequential":
            raise ValueError("with --known-poses use --matcher exhaustive or poses")
    elif req.matcher == "poses":
        raise ValueError("--matcher poses needs --known-poses")


def check_sfm_options(req: MapRequest, conf: SfMConfig) -> None:
    """Refuse SfM options that ``conf`` (after ``req.conf``) leaves without effect."""
    if req.overlap is not None and conf.matcher != "sequential":
        raise ValueError(
            f"--overlap has no use with --matcher {conf.matcher}: it sets the sequential matcher"
        )
    if req.camera_model is not None and conf.camera:
        raise ValueError("--camera-model has no use with --camera: its MODEL is used")


def map_command(req: MapRequest) -> dict:
    """Build, triangulate or import the map of ``req`` into ``req.out``; returns its summary
    (:func:`~s2dloc.mapping.map_folder.summarize`) and prints it with the next step."""
    check_mode_options(req)
    if req.import_model:
        summary = import_model(req.import_model, req.images, req.out, req.overwrite)
    elif req.known_poses:
        conf = known_poses_config(req.settings(("max_size", "max_features", "num_threads")))
        rec = triangulate_known_poses(
            req.images,
            req.known_poses,
            req.out,
            matching=req.matcher or "exhaustive",
            overwrite=req.overwrite,
            conf=conf,
        )
        summary = summarize(rec)
    else:
        keys = ("camera_model", "camera", "single_camera", "max_size", "max_features")
        conf = sfm_config(req.settings((*keys, "matcher", "overlap", "num_threads")))
        check_sfm_options(req, conf)
        summary = build_map(req.images, req.out, conf, req.overwrite)
    print(
        f"map {req.out}: {summary['registered_images']}/{summary['images']} images registered, "
        f"{summary['points3D']} points, mean reprojection error "
        f"{summary['mean_reprojection_error']:.2f} px, mean track length "
        f"{summary['mean_track_length']:.2f}\n"
        f"next: s2dloc localize --map {req.out} --queries QUERIES --out RESULTS"
    )
    return summary
