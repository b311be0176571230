"""Feature-metric PnP: Levenberg-Marquardt on SE(3) over dense query feature maps.

Minimizes ``sum_i w_i rho(||F_q(pi(T X_i)) - f_i||^2)`` over ``T = cam_from_world``,
coarse to fine, for a batch of queries at once. Pose updates are left perturbations
``T <- exp(delta) T`` with ``delta = (rho, phi)``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from s2dloc.fpnp import fast
from s2dloc.fpnp.config import SOLVER_CHECKS, FPnPConfig
from s2dloc.fpnp.decision import Outcome, finish
from s2dloc.fpnp.levels import Level, level_weights, prepare_levels
from s2dloc.fpnp.linalg import damped_solve, se3_exp_matrix
from s2dloc.fpnp.losses import RobustLoss
from s2dloc.fpnp.result import FPnPResult, IterationRecord
from s2dloc.fpnp.system import Evaluation, evaluate_residuals
from s2dloc.geometry import Camera, Pose
from s2dloc.utils.config import from_settings

logger = logging.getLogger(__name__)


@dataclass
class LevelOutcome:
    """The end of the LM iterations at one level, for a batch of ``B`` queries.

    Attributes:
        M: ``(B, 4, 4)`` final ``cam_from_world`` matrices.
        iterations: ``(B,)`` iterations run (CPU).
        ok: ``(B,)`` enough valid points at the level's start.
        final: the evaluation (with normal equations) at ``M``.
        scale: the loss scale used, a float or ``(B, 1)``.
        history: per-iteration :class:`IterationRecord` s if requested, else None.
    """

    M: torch.Tensor
    iterations: torch.Tensor
    ok: torch.Tensor
    final: Evaluation
    scale: torch.Tensor | float
    history: list[IterationRecord] | None = None


class FeatureMetricPnP:
    """Feature-metric PnP refiner.

    Example::

        solver = FeatureMetricPnP(loss="cauchy", max_iterations=50)
        result = solver.refine(points3d, ref_features, query_features, camera, init_pose)
    """

    def __init__(self, **kwargs):
        """Keyword arguments: the fields of :class:`FPnPConfig`. Unknown names, values of
        another type and values out of range raise :class:`~s2dloc.utils.config.ConfigError`
        (a ``ValueError``) naming the setting and the valid names or values."""
        self.conf = from_settings(FPnPConfig, kwargs, checks=SOLVER_CHECKS)
        scale = 1.0 if self.conf.loss_scale is None else self.conf.loss_scale
        self.loss = RobustLoss(self.conf.loss, scale, self.conf.barron_alpha)

    # ------------------------------------------------------------------ public API
    def refine(
        self,
        points3d: torch.Tensor,
        ref_features: list[torch.Tensor],
        query_features: list[torch.Tensor],
        camera: Camera,
        init_pose: Pose,
        weights: torch.Tensor | None = None,
        return_history: bool = False,
    ) -> FPnPResult:
        """Refine one query.

        Args:
            points3d: ``(N, 3)`` world points.
            ref_features: per level ``(N, C_l)`` reference features of the points.
            query_features: per level ``(C_l, H_l, W_l)`` dense query maps, any order of sizes.
            camera: the full-resolution query camera (unbatched).
            init_pose: initial ``cam_from_world`` (unbatched).
            weights: optional ``(N,)`` per-point weights or confidences.
        """
        result = self.refine_batch(
            points3d[None],
            [f[None] for f in ref_features],
            [f[None] for f in query_features],
            Camera(camera.model, camera.size[None], camera.params[None]),
            init_pose[None],
            None if weights is None else weights[None],
            return_history=return_history,
        )
        return result[0]

    def refine_batch(
        self,
        points3d: torch.Tensor,
        ref_features: list[torch.Tensor],
        query_features: list[torch.Tensor],
        camera: Camera,
        init_pose: Pose,
        weights: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        return_history: bool = False,
    ) -> FPnPResult:
        """Refine a batch of ``B`` queries with ``N`` (padded) points each.

        Args:
            points3d: ``(B, N, 3)``; ref_features: per level ``(B, N, C_l)``;
            query_features: per level ``(B, C_l, H_l, W_l)``; camera: batch ``(B,)``;
            init_pose: batch ``(B,)``; weights: ``(B, N)``; mask: ``(B, N)`` bool, False for
            padding.
        """
        grad = self.conf.differentiable or (
            torch.is_grad_enabled()
            and any(
                t.requires_grad for t in [points3d, *ref_features, *query_features, init_pose.R]
            )
        )
        device = query_features[0].device if query_features else points3d.device
        fast = self._use_fast(grad or return_history, device)
        levels, point_weights = prepare_levels(
            points3d,
            ref_features,
            query_features,
            camera,
            init_pose,
            weights,
            mask,
            channels_last=not fast,
        )
        weights_per_level = level_weights(point_weights, len(levels), self.conf.coarse_max_points)
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        with ctx:
            if fast:
                return self._solve_fast(levels, points3d, weights_per_level, init_pose)
            return self._solve(levels, points3d, weights_per_level, init_pose, return_history)

    def _use_fast(self, needs_torch: bool, device: torch.device) -> bool:
        backend = self.conf.backend
        if backend == "numba" and (needs_torch or device.type != "cpu"):
            raise ValueError("backend='numba' runs on CPU without gradients or history")
        return backend == "numba" or (
            backend == "auto" and not needs_torch and device.type == "cpu"
        )

    # ------------------------------------------------------------------ internals
    def _solve(self, levels, points3d, weights_per_level, init_pose, return_history) -> FPnPResult:
        """The torch path; ``weights_per_level`` as :func:`~s2dloc.fpnp.levels.level_weights`."""
        point_weights = weights_per_level[-1]  # the finest level's: every point
        dtype = levels[0].maps.dtype
        # Non-finite points already have zero weight; zero them so they cannot put NaN into H.
        points = points3d.to(dtype).nan_to_num(0.0, 0.0, 0.0)
        M0 = init_pose.matrix().to(dtype)
        M = M0
        iterations = torch.zeros(M.shape[0], len(levels), dtype=torch.long)
        history = [] if return_history else None
        ok = torch.ones(M.shape[0], dtype=torch.bool, device=M.device)
        for li, (level, w) in enumerate(zip(levels, weights_per_level)):
            lo = self._solve_level(level, points, w, M, return_history)
            M = lo.M
            iterations[:, li] = lo.iterations
            ok = ok & lo.ok
            if history is not None:
                history.append(lo.history)
        finest, margin, min_depth, ev = levels[-1], self.conf.margin, self.conf.min_depth, lo.final
        init_ev = self._evaluate(finest, points, point_weights, M0, lo.scale, system=False)
        match = finest.match_residuals(points, M, point_weights, margin, min_depth)
        out = Outcome(
            M0=M0,
            M=M,
            ok=ok,
            iterations=iterations,
            cost_init=init_ev.cost,
            cost=ev.cost,
            depth=init_ev.depth,
            num_valid=ev.num_valid,
            H=ev.H,
            res_var=ev.res_var,
            num_res=ev.num_res,
            sq_match=match.sq_match,
            sq_null=match.sq_null,
            sq_grad=match.sq_grad,
        )
        return finish(out, init_pose, self.conf, history)

    def _solve_fast(self, levels, points3d, weights_per_level, init_pose) -> FPnPResult:
        """The compiled CPU path (:mod:`s2dloc.fpnp.fast`), same algorithm and decision."""
        points = points3d.nan_to_num(0.0, 0.0, 0.0)
        out = fast.solve(
            levels, points, weights_per_level, init_pose.matrix(), self.conf, self._fixed_scale
        )
        return finish(out, init_pose, self.conf)

    def _solve_level(
        self, level: Level, points, point_weights, M, return_history=False
    ) -> LevelOutcome:
        """LM iterations at one level from poses ``M (B, 4, 4)``."""
        conf = self.conf
        B = M.shape[0]
        res = level.residuals(points, M, conf.margin, conf.min_depth)
        scale = self._scale(res.sq, point_weights * res.valid)
        ev = evaluate_residuals(res, point_weights, self.loss, scale)
        active = ev.num_valid >= conf.min_points
        ok = active.clone()
        lam = torch.full((B,), conf.lambda_init, dtype=M.dtype, device=M.device)
        iters = torch.zeros(B, dtype=torch.long)
        rejections = torch.zeros(B, dtype=torch.long, device=M.device)
        depth = ev.depth.clamp_min(1e-9)
        hist = [_record(M, ev)] if return_history else None
        for _ in range(conf.max_iterations):
            if not bool(active.any()):
                break
            delta = damped_solve(ev.H, ev.g, lam)
            delta = torch.where(active[:, None], delta, torch.zeros_like(delta))
            M_new = se3_exp_matrix(delta) @ M
            new = self._evaluate(level, points, point_weights, M_new, scale)
            accept = active & (new.cost < ev.cost) & (new.num_valid >= conf.min_points)
            # Stop when the achieved (if accepted) or model-predicted (if rejected) decrease of
            # the cost is negligible: the IRLS model predicts (2 g.d + d^T H d) / sum(w).
            Hd = (ev.H @ delta[..., None])[..., 0]
            predicted = -(2 * ev.g + Hd).mul(delta).sum(-1) / ev.wsum
            gain = torch.where(accept, ev.cost - new.cost, predicted)
            stalled = gain <= conf.cost_tol * ev.cost
            M = torch.where(accept[:, None, None], M_new, M)
            ev = new.where(accept, ev)
            lam = torch.where(accept, lam * conf.lambda_down, lam * conf.lambda_up)
            lam = lam.clamp(conf.lambda_min, conf.lambda_max)
            iters += active.long().cpu()
            small_step = (delta[:, 3:].norm(dim=-1) < conf.rotation_tol) & (
                delta[:, :3].norm(dim=-1) < conf.translation_tol * depth
            )
            small_grad = ev.g.abs().amax(-1) <= conf.gradient_tol * ev.cost.clamp_min(1e-30)
            # Near the optimum the central-difference gradient and the bilinear cost disagree
            # slightly, so steps stop being accepted: give up after a few rejections in a row.
            rejections = torch.where(accept, torch.zeros_like(rejections), rejections + 1)
            stuck = rejections >= conf.max_rejections
            active = active & ~(small_step | small_grad | stalled | stuck) & (lam < conf.lambda_max)
            if hist is not None:
                hist.append(_record(M, ev))
        return LevelOutcome(M, iters, ok, ev, scale, hist)

    @property
    def _fixed_scale(self) -> float | None:
        """The configured loss scale, or None when it is set per level from the residuals."""
        fixed = self.conf.loss_scale is not None or self.conf.loss == "squared"
        return self.loss.scale if fixed else None

    def _scale(self, sq: torch.Tensor, w: torch.Tensor) -> torch.Tensor | float:
        """Loss scale: the configured one, or 1.4826 x the median valid residual norm."""
        if self._fixed_scale is not None:
            return self._fixed_scale
        if sq.shape[-1] == 0:  # no points: median undefined (the result is flagged unsuccessful)
            return torch.ones_like(sq[:, :1])
        med = sq.masked_fill(w <= 0, float("nan")).nanmedian(dim=-1).values.sqrt()
        return (1.4826 * med.nan_to_num(1.0)).clamp_min(1e-6)[:, None]

    def _evaluate(
        self, level: Level, points, point_weights, M, scale, system: bool = True
    ) -> Evaluation:
        """Cost (and normal equations) at poses ``M (B, 4, 4)``."""
        res = level.residuals(points, M, self.conf.margin, self.conf.min_depth)
        return evaluate_residuals(res, point_weights, self.loss, scale, system)


def _record(M: torch.Tensor, ev: Evaluation) -> IterationRecord:
    return IterationRecord(Pose.from_matrix(M.detach().clone()), ev.cost.detach().clone())
