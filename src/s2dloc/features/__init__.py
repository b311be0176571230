"""Dense feature extractors: photometric pyramids (classical direct alignment) and learned nets."""

from s2dloc.features.photometric import image_to_tensor, photometric_pyramid

__all__ = ["image_to_tensor", "photometric_pyramid"]
