"""Own-data mapping: build a COLMAP map from a folder of images (pycolmap SfM), triangulate one
with known poses, or import one; and camera intrinsics for query images (COLMAP model, query
list, EXIF or a default)."""

from .intrinsics import exif_focal, query_camera
from .known_poses import KnownPosesConfig, triangulate_known_poses
from .pose_pairs import pairs_from_poses
from .sfm import SfMConfig, build_map, import_model, list_images, summarize

__all__ = [
    "KnownPosesConfig",
    "SfMConfig",
    "build_map",
    "exif_focal",
    "import_model",
    "list_images",
    "pairs_from_poses",
    "query_camera",
    "summarize",
    "triangulate_known_poses",
]
