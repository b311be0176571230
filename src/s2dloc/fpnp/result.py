"""Outputs of the feature-metric PnP solver."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from s2dloc.geometry import Pose


@dataclass
class FPnPResult:
    """Per-query outputs of :class:`~s2dloc.fpnp.FeatureMetricPnP`.

    For a batch of ``B`` queries and ``L`` levels (coarse to fine):

    Attributes:
        pose: refined ``cam_from_world``, batch shape ``(B,)`` (``()`` for a single query).
        success: ``(B,)`` bool (see :mod:`s2dloc.fpnp.decision`); when False, ``pose`` is the
            initial pose.
        iterations: ``(B, L)`` LM iterations run at each level.
        cost_init, cost_final: ``(B,)`` robust cost at the finest level, before and after
            (the same scale for both; ``cost_final == cost_init`` and ``pose`` is the initial
            pose when unsuccessful or when the start already was the optimum).
        num_valid: ``(B,)`` valid points at the final pose (finest level).
        covariance: ``(B, 6, 6)`` pose covariance of the left-perturbation ``(rho, phi)``.
        message: per query, why it failed ("" on success).
        history: per level, a list of per-iteration records (if requested): ``pose``, ``cost``.
        information: ``(B,)`` smallest eigenvalue of the unit-diagonal Hessian (0: a pose
            direction without information).
        match_ratio: ``(B,)`` median residual against the own over another point's reference
            feature (squared; near 1 when the references are unrelated to the map).
    """

    pose: Pose
    success: torch.Tensor
    iterations: torch.Tensor
    cost_init: torch.Tensor
    cost_final: torch.Tensor
    num_valid: torch.Tensor
    covariance: torch.Tensor
    message: list[str] = field(default_factory=list)
    history: list[list[dict]] | None = None
    information: torch.Tensor | None = None
    match_ratio: torch.Tensor | None = None

    def __getitem__(self, i: int) -> FPnPResult:
        """The result of query ``i`` of a batch (unbatched tensors)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "message":
                value = value[i : i + 1]
            elif f.name == "history" and value is not None:
                value = [[{k: v[i] for k, v in rec.items()} for rec in lv] for lv in value]
            elif value is not None:
                value = value[i]
            out[f.name] = value
        return FPnPResult(**out)
