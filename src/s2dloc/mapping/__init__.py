"""Own-data mapping: build a COLMAP map from a folder of images (pycolmap SfM), triangulate one
with known poses, or import one; and camera intrinsics for query images (COLMAP model, query
list, EXIF or a default)."""

from .images import list_images
from .intrinsics import exif_focal, query_camera
from .known_poses import KnownPosesConfig, known_poses_config, triangulate_known_poses
from .map_folder import summarize
from .pose_pairs import pairs_from_poses
from .sfm import SfMConfig, build_map, import_model, sfm_config

__all__ = [
    "KnownPosesConfig",
    "SfMConfig",
    "build_map",
    "exif_focal",
    "import_model",
    "known_poses_config",
    "list_images",
    "pairs_from_poses",
    "query_camera",
    "sfm_config",
    "summarize",
    "triangulate_known_poses",
]
