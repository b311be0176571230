"""Outputs of the feature-metric PnP solver."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch

from s2dloc.geometry import Pose


@dataclass
class IterationRecord:
    """One LM iteration of a level, as :class:`FPnPResult.history` keeps it: the pose after
    the iteration (batch ``(B,)``, ``()`` for one query) and its robust cost ``(B,)``."""

    pose: Pose
    cost: torch.Tensor

    def __getitem__(self, i: int) -> IterationRecord:
        """Query ``i``'s record of a batch."""
        return IterationRecord(self.pose[i], self.cost[i])


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
        history: per level, the :class:`IterationRecord` of each iteration (if requested).
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
    history: list[list[IterationRecord]] | None = None
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
                value = [[rec[i] for rec in lv] for lv in value]
            elif value is not None:
                value = value[i]
            out[f.name] = value
        return FPnPResult(**out)

    @staticmethod
    def pick(results: list[FPnPResult], index: torch.Tensor) -> FPnPResult:
        """Per query ``b``, the outputs of ``results[index[b]]``: ``K`` results of the same
        batch ``(B,)``, ``index (B,)`` in ``[0, K)``; ``history`` is dropped."""
        index = index.cpu()
        rows = torch.arange(len(index))

        def take(values: list[torch.Tensor]) -> torch.Tensor:
            stacked = torch.stack(values)  # (K, B, ...)
            return stacked[index.to(stacked.device), rows.to(stacked.device)]

        out = {}
        for f in fields(FPnPResult):
            values = [getattr(r, f.name) for r in results]
            if f.name == "history" or any(v is None for v in values):
                out[f.name] = None
            elif f.name == "message":
                out[f.name] = [values[k][b] for b, k in enumerate(index.tolist())]
            elif f.name == "pose":
                out[f.name] = Pose(take([p.R for p in values]), take([p.t for p in values]))
            else:
                out[f.name] = take(values)
        return FPnPResult(**out)
