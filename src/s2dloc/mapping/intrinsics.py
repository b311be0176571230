"""Camera intrinsics of a query image, from the best source available.

In order: the map's COLMAP model (the image itself, or the model's only camera of the same
size), a query list (``name MODEL W H params``), the EXIF focal length, or a default focal of
``default_focal_factor * max(W, H)``. EXIF and default cameras are SIMPLE_RADIAL with the
principal point at the image centre (COLMAP convention: ``(W / 2, H / 2)``) and ``k = 0``.
A warning names the source used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from s2dloc.datasets.colmap_io import read_query_list
from s2dloc.geometry import Camera

logger = logging.getLogger(__name__)

EXIF_IFD = 0x8769
FOCAL_LENGTH = 0x920A
FOCAL_35MM = 0xA405
FOCAL_PLANE_X_RES = 0xA20E
FOCAL_PLANE_UNIT = 0xA210
EXIF_WIDTH, EXIF_HEIGHT = 0xA002, 0xA003
ORIENTATION = 0x0112
UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}  # FocalPlaneResolutionUnit -> millimetres


def parse_camera(text: str) -> Camera:
    """``"MODEL W H p1 p2 ..."`` -> Camera (clear error if malformed)."""
    f = text.split()
    try:
        return Camera.from_colmap(f[0], int(f[1]), int(f[2]), [float(x) for x in f[3:]])
    except (IndexError, ValueError) as err:
        raise ValueError(f"bad camera {text!r} (expected 'MODEL W H params...'): {err}") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(W, H)`` of the image as decoded (EXIF rotations by 90 degrees swap them)."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        if im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8):
            w, h = h, w
    return w, h


def exif_focal(path: str | Path) -> float | None:
    """Focal length in pixels from EXIF, or None: ``FocalLengthIn35mmFilm`` (36 mm wide frame
    along the long side), else ``FocalLength`` with ``FocalPlaneXResolution``/``Unit``."""
    from PIL import Image

    with Image.open(path) as im:
        exif = im.getexif()
        w, h = im.size
    tags = {**exif, **exif.get_ifd(EXIF_IFD)}
    try:
        f35 = float(tags.get(FOCAL_35MM, 0) or 0)
        if f35 > 0:
            return f35 / 36.0 * max(w, h)
        f_mm = float(tags.get(FOCAL_LENGTH, 0) or 0)
        x_res = float(tags.get(FOCAL_PLANE_X_RES, 0) or 0)
        unit = UNIT_MM.get(int(tags.get(FOCAL_PLANE_UNIT, 2)))
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if f_mm <= 0 or x_res <= 0 or unit is None:
        return None
    # FocalPlaneXResolution counts pixels of the original (EXIF) width; rescale to this image.
    exif_w = float(tags.get(EXIF_WIDTH, 0) or 0)
    scale = w / exif_w if exif_w > 0 else 1.0
    return f_mm * x_res / unit * scale


def _from_model(model, name: str, size: tuple[int, int]) -> Camera | None:
    """The camera of image ``name`` in a ``Map`` or ``pycolmap.Reconstruction``, else the only
    camera of the same size."""
    import pycolmap

    if isinstance(model, pycolmap.Reconstruction):
        image = model.find_image_with_name(name)
        if image is not None:
            return Camera.from_colmap(model.cameras[image.camera_id])
        cams = [Camera.from_colmap(c) for c in model.cameras.values()]
    else:  # an s2dloc Map
        if name in model:
            return model[name].camera
        cams = [im.camera for im in model.images]
    same = {
        (c.model, tuple(c.params.tolist())): c
        for c in cams
        if tuple(int(round(s)) for s in c.size.tolist()) == size
    }
    return next(iter(same.values())) if len(same) == 1 else None


# The focal length of a query camera known from nothing else: this times max(W, H) (COLMAP's
# own guess without EXIF).
DEFAULT_FOCAL_FACTOR = 1.2


def query_camera(
    image_path: str | Path,
    model=None,
    default_focal_factor: float = DEFAULT_FOCAL_FACTOR,
    query_list: str | Path | dict | None = None,
    name: str | None = None,
) -> tuple[Camera, str]:
    """The camera of a query image and its source (``model``, ``query_list``, ``exif`` or
    ``default``).

    Args:
        image_path: the image file.
        model: a ``Map`` or ``pycolmap.Reconstruction`` that may hold the same camera.
        query_list: hloc query list file, or its parsed dict (``read_query_list``).
        name: the image's name in the model / query list (default: the file name).
    """
    path = Path(image_path)
    if not path.is_file():
        raise FileNotFoundError(f"query image {path} does not exist")
    name = name or path.name
    size = image_size(path)
    if model is not None:
        cam = _from_model(model, name, size)
        if cam is not None:
            logger.warning("%s: intrinsics from the map's COLMAP model: %r", name, cam)
            return cam, "model"
    if query_list is not None:
        entries = query_list if isinstance(query_list, dict) else read_query_list(query_list)
        if name in entries:
            cam = Camera.from_colmap(*entries[name])
            logger.warning("%s: intrinsics from the query list: %r", name, cam)
            return cam, "query_list"
    w, h = size
    focal = exif_focal(path)
    source = "exif"
    if focal is None:
        focal, source = default_focal_factor * max(w, h), "default"
        logger.warning(
            "%s: no intrinsics in the model, query list or EXIF: using a default "
            "focal of %.3g * max(W, H) = %.1f px (SIMPLE_RADIAL)",
            name,
            default_focal_factor,
            focal,
        )
    else:
        logger.warning("%s: focal length %.1f px from EXIF (SIMPLE_RADIAL)", name, focal)
    return Camera.from_colmap("SIMPLE_RADIAL", w, h, [focal, w / 2, h / 2, 0.0]), source
