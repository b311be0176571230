"""Own-data mapping: build a COLMAP map from a folder of images (pycolmap SfM) or import one, and
camera intrinsics for query images (COLMAP model, query list, EXIF or a default)."""

from .intrinsics import exif_focal, query_camera
from .sfm import SfMConfig, build_map, import_model, list_images, summarize

__all__ = [
    "SfMConfig",
    "build_map",
    "exif_focal",
    "import_model",
    "list_images",
    "query_camera",
    "summarize",
]
