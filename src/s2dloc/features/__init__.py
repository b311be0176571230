"""Dense feature extractors: photometric pyramids (classical direct alignment) and learned nets."""

from s2dloc.features.photometric import image_to_tensor, photometric_pyramid
from s2dloc.features.registry import load_extractor
from s2dloc.features.selection import lift_textured_points, select_textured_pixels

__all__ = [
    "image_to_tensor",
    "load_extractor",
    "photometric_pyramid",
    "lift_textured_points",
    "select_textured_pixels",
]
