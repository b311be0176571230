"""The image files of a map: listing a folder (with clear errors) and checking image sizes."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff")


def list_images(folder: str | Path) -> list[str]:
    """Names (relative, sorted) of the image files under ``folder``; clear errors if there are
    none or some cannot be read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    bad = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.verify()
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            bad.append(f"{p} ({err})")
    if bad:
        raise ValueError(f"{len(bad)} unreadable image(s) in {folder}: {'; '.join(bad[:3])}")
    return [p.relative_to(folder).as_posix() for p in files]


def check_sizes(rec, images: Path, names: list[str]) -> None:
    """Raise if an image's size differs from its camera's ``width x height`` in the
    ``pycolmap.Reconstruction`` ``rec``."""
    for name in names:
        image = rec.find_image_with_name(name)
        cam = rec.cameras[image.camera_id]
        with Image.open(images / name) as im:
            w, h = im.size
        if (w, h) != (cam.width, cam.height):
            raise ValueError(
                f"image {images / name} is {w}x{h} but its camera "
                f"{image.camera_id} in the model is {cam.width}x{cam.height}"
            )
