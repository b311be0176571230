"""Feature-metric PnP (F-PnP): robust, batched, coarse-to-fine LM pose refinement."""

from s2dloc.fpnp.losses import LOSSES, RobustLoss
from s2dloc.fpnp.result import FPnPResult, IterationRecord
from s2dloc.fpnp.solver import FeatureMetricPnP, FPnPConfig

__all__ = [
    "LOSSES",
    "FPnPConfig",
    "FPnPResult",
    "FeatureMetricPnP",
    "IterationRecord",
    "RobustLoss",
]
