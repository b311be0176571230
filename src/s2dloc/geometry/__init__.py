"""Geometry: batched poses (SE(3)), COLMAP cameras, and feature-map interpolation."""

from s2dloc.geometry.camera import MODELS, Camera
from s2dloc.geometry.interpolation import (
    feature_gradients,
    sample,
    sample_with_gradients,
    stack_with_gradients,
)
from s2dloc.geometry.lie import se3_exp, se3_log, skew, so3_exp, so3_log
from s2dloc.geometry.pose import Pose
from s2dloc.geometry.rotation import matrix_to_quat, quat_to_matrix

__all__ = [
    "MODELS",
    "Camera",
    "Pose",
    "feature_gradients",
    "matrix_to_quat",
    "quat_to_matrix",
    "sample",
    "sample_with_gradients",
    "se3_exp",
    "se3_log",
    "skew",
    "so3_exp",
    "so3_log",
    "stack_with_gradients",
]
