"""Outputs of the feature-metric PnP solver."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from s2dloc.geometry import Pose


@dataclass
class FPnPResult:
    """Per-query outputs of :class:`~s2dloc.fpnp.FeatureMetricPnP`.

    For a batch of ``B`` queries and ``L`` levels (coarse to fine):

    Attributes:
        pose: refined ``cam_from_world``, batch shape ``(B,)`` (``()`` for a single query).
        success: ``(B,)`` bool; when False, ``pose`` is the initial pose.
        iterations: ``(B, L)`` LM iterations run at each level.
        cost_init, cost_final: ``(B,)`` robust cost at the finest level, before and after.
        num_valid: ``(B,)`` valid points at the final pose (finest level).
        covariance: ``(B, 6, 6)`` pose covariance of the left-perturbation ``(rho, phi)``.
        history: per level, a list of per-iteration records (if requested): ``pose``, ``cost``.
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

    def __getitem__(self, i: int) -> FPnPResult:
        """The result of query ``i`` of a batch (unbatched tensors)."""
        hist = None
        if self.history is not None:
            hist = [[{k: v[i] for k, v in rec.items()} for rec in level] for level in self.history]
        return FPnPResult(
            self.pose[i], self.success[i], self.iterations[i], self.cost_init[i],
            self.cost_final[i], self.num_valid[i], self.covariance[i],
            self.message[i : i + 1], hist,
        )  # fmt: skip
