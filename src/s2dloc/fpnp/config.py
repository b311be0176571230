"""Settings of the feature-metric PnP solver."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2dloc.fpnp.losses import LOSSES
from s2dloc.utils.config import Check, in_range, one_of

BACKENDS = ("auto", "torch", "numba")


@dataclass
class FPnPConfig:
    """Solver settings (all keyword arguments of :class:`FeatureMetricPnP`, each of its
    default's type and within :data:`SOLVER_CHECKS`)."""

    loss: str = "cauchy"
    loss_scale: float | None = None  # None: 1.4826 x median residual norm at each level's start
    barron_alpha: float = 0.0
    max_iterations: int = 50  # per level
    # Levels coarser than the finest use at most this many of the points, evenly spaced in
    # their order (0: all): a coarse map has few pixels, and each point costs the same there.
    coarse_max_points: int = 0
    lambda_init: float = 1e-3
    lambda_up: float = 10.0
    lambda_down: float = 0.1
    lambda_min: float = 1e-6
    lambda_max: float = 1e4
    rotation_tol: float = 1e-5  # radians, on the step
    translation_tol: float = 1e-5  # relative to the mean point depth, on the step
    gradient_tol: float = 1e-12  # on max |g| relative to the cost
    cost_tol: float = 1e-5  # on the relative cost decrease of an accepted step
    max_rejections: int = 4  # consecutive rejected steps before a level stops
    min_points: int = 10
    # Success tests (see s2dloc.fpnp.decision): median squared feature gradient (per pixel)
    # over median other-reference squared residual, smallest eigenvalue of the unit-diagonal
    # Hessian, and median own / other-reference squared residual.
    min_texture: float = 1e-6
    min_information: float = 1e-5
    max_match_ratio: float = 0.75
    null_margin: float = 8.0  # the limit is also <= 1 - null_margin / sqrt(channels x points)
    margin: float = 1.0  # pixels of the feature map kept clear of the border
    min_depth: float = 1e-3
    differentiable: bool = False
    # "auto": the compiled CPU path when no gradient or history is needed, else torch.
    backend: str = "auto"


def _scale(value: Any) -> str | None:
    ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    return None if ok and (value is None or value > 0) else "must be a number > 0 or null (auto)"


_POSITIVE, _NON_NEGATIVE = in_range(0, lo_open=True), in_range(0)
# The valid values of the solver settings (types come from the defaults).
SOLVER_CHECKS: dict[str, Check] = {
    "loss": one_of(*LOSSES),
    "backend": one_of(*BACKENDS),
    "loss_scale": _scale,
    "max_iterations": _NON_NEGATIVE,
    "coarse_max_points": _NON_NEGATIVE,
    **{k: _POSITIVE for k in ("lambda_init", "lambda_up", "lambda_min", "lambda_max")},
    "lambda_down": in_range(0, 1, lo_open=True),
    # cost_tol may be negative: never stop on the cost (fixed-iteration benchmarks)
    **{k: _NON_NEGATIVE for k in ("rotation_tol", "translation_tol", "gradient_tol")},
    "max_rejections": in_range(1),
    "min_points": in_range(1),
    "min_texture": _NON_NEGATIVE,
    "min_information": _NON_NEGATIVE,
    "max_match_ratio": _POSITIVE,
    "null_margin": _NON_NEGATIVE,
    "margin": _NON_NEGATIVE,
    "min_depth": _POSITIVE,
}
