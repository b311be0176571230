"""GN-Net training: Gauss-Newton and contrastive losses, negative mining."""

from s2dloc.training.losses import (
    contrastive_loss,
    gauss_newton_loss,
    gauss_newton_terms,
    start_points,
)
from s2dloc.training.mining import hard_negative_pool_size, mine_negatives

__all__ = [
    "contrastive_loss",
    "gauss_newton_loss",
    "gauss_newton_terms",
    "hard_negative_pool_size",
    "mine_negatives",
    "start_points",
]
