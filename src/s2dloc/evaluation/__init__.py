"""Evaluation: convergence-basin sweeps of pose refiners against known ground truth."""

from s2dloc.evaluation.convergence import (
    BasinProblem,
    BasinRow,
    SuccessCriterion,
    convergence_sweep,
    fpnp_solver,
    perturbation_translation,
)

__all__ = [
    "BasinProblem",
    "BasinRow",
    "SuccessCriterion",
    "convergence_sweep",
    "fpnp_solver",
    "perturbation_translation",
]
