"""When a refinement counts as successful: one decision for both solver backends.

Both backends end with the same per-query statistics (an :class:`Outcome`), from which
:func:`decide` sets ``success`` and a short reason. A query succeeds only if all hold:

1. enough valid points (``min_points``) at the start of every level and at the final pose;
2. a finite pose and cost;
3. texture: the median squared feature gradient (per pixel) at the valid points is at least
   ``min_texture`` times the median squared residual against other points' references (the
   typical feature difference), so zero or constant maps fail even through round-off;
4. information along every pose direction: the smallest eigenvalue of the Gauss-Newton
   Hessian ``J^T W J`` at the final pose, after scaling it to unit diagonal, is at least
   ``min_information`` (zero or constant maps give a zero Hessian; identical or collinear
   points a rank-deficient one);
5. features that match their references: the median squared residual of the valid points is
   at most ``max_match_ratio`` times the median squared residual of the same points against
   other points' references (reference features unrelated to the map give a ratio near 1).
   Against unrelated references an optimizer still lowers the ratio, by about
   ``k / sqrt(C N)`` for ``C`` channels and ``N`` points (k = 5-7 measured), so the limit is
   also at most ``1 - null_margin / sqrt(C N)``, but never below 0.25 (only binding for small
   problems);
6. a lower cost than at the initial pose, both evaluated at the finest level with the same
   robust scale (a refinement that moved away from a better start fails) - unless the pose
   moved by less than the step tolerances (``rotation_tol`` radians, ``translation_tol`` times
   the mean point depth): then the start already was the optimum, and its pose and cost are
   returned (so round-off at a converged start cannot decide the flag).

A failed query returns its initial pose bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from s2dloc.fpnp.result import FPnPResult
from s2dloc.geometry import Pose


@dataclass
class Outcome:
    """Per-query statistics at the end of a refinement, for a batch of ``B`` queries.

    Attributes:
        M0, M: ``(B, 4, 4)`` initial and final ``cam_from_world`` matrices.
        ok: ``(B,)`` enough valid points at the start of every level.
        iterations: ``(B, L)`` LM iterations per level.
        cost_init, cost: ``(B,)`` robust cost at the initial and final pose (finest level,
            final scale).
        depth: ``(B,)`` mean depth of the valid points at the initial pose (finest level).
        num_valid: ``(B,)`` valid points at the final pose.
        H: ``(B, 6, 6)`` Gauss-Newton Hessian at the final pose.
        res_var, num_res: ``(B,)`` weighted residual sum and residual count (covariance).
        sq_match, sq_null: ``(B, N)`` squared residuals of valid points against their own and
            another point's reference feature (NaN where invalid).
        sq_grad: ``(B, N)`` squared norms of the feature gradients ``dF/d(u, v)`` there.
    """

    M0: torch.Tensor
    M: torch.Tensor
    ok: torch.Tensor
    iterations: torch.Tensor
    cost_init: torch.Tensor
    cost: torch.Tensor
    depth: torch.Tensor
    num_valid: torch.Tensor
    H: torch.Tensor
    res_var: torch.Tensor
    num_res: torch.Tensor
    sq_match: torch.Tensor
    sq_null: torch.Tensor
    sq_grad: torch.Tensor


def _median(x: torch.Tensor) -> torch.Tensor:
    """Lower median over the last axis ignoring NaN ``(B,)``; NaN for no values."""
    if x.shape[-1] == 0:
        return torch.full(x.shape[:-1], float("nan"), dtype=torch.float64, device=x.device)
    return x.double().nanmedian(-1).values


def information(H: torch.Tensor) -> torch.Tensor:
    """Smallest eigenvalue of ``H (B, 6, 6)`` scaled to unit diagonal, in ``[0, 1]`` (0: none)."""
    H = H.detach().double()
    d = H.diagonal(dim1=-2, dim2=-1)
    good = (d > 0).all(-1) & torch.isfinite(H).flatten(1).all(1)
    s = torch.where(good[:, None], d, torch.ones_like(d)).rsqrt()
    Hn = H.nan_to_num(0.0, 0.0, 0.0) * s[:, :, None] * s[:, None, :]
    return torch.where(
        good, torch.linalg.eigvalsh(Hn)[:, 0].clamp_min(0), torch.zeros_like(d[:, 0])
    )


def match_limit(num_res: torch.Tensor, conf) -> torch.Tensor:
    """Largest accepted match ratio ``(B,)`` for ``num_res = C N`` residuals (module doc, 5)."""
    fitted = 1.0 - conf.null_margin / num_res.double().clamp_min(1.0).sqrt()
    return fitted.clamp(min(0.25, conf.max_match_ratio), conf.max_match_ratio)


def match_ratio(sq_match: torch.Tensor, sq_null: torch.Tensor) -> torch.Tensor:
    """Median own / median other-reference squared residual ``(B,)`` (NaN without points)."""
    return _median(sq_match) / _median(sq_null)


def texture(sq_grad: torch.Tensor, sq_null: torch.Tensor) -> torch.Tensor:
    """Median squared feature gradient over median other-reference squared residual ``(B,)``."""
    return _median(sq_grad) / _median(sq_null)


def moved(out: Outcome, conf) -> torch.Tensor:
    """Whether the final pose differs from the initial one by at least the step tolerances."""
    rel = out.M.double() @ torch.linalg.inv(out.M0.double())
    R = rel[:, :3, :3]
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    skew = R - R.transpose(1, 2)
    sin = torch.stack([skew[:, 2, 1], skew[:, 0, 2], skew[:, 1, 0]], -1).norm(dim=-1) / 2
    shift = rel[:, :3, 3].norm(dim=-1)
    return (torch.atan2(sin, cos) >= conf.rotation_tol) | (
        shift >= conf.translation_tol * out.depth.double().abs()
    )


@dataclass
class Decision:
    """Per-query verdicts ``(B,)``: success, reasons, and the statistics behind them."""

    success: torch.Tensor
    messages: list[str]
    moved: torch.Tensor
    information: torch.Tensor
    match_ratio: torch.Tensor


def decide(out: Outcome, conf) -> Decision:
    """Success flags and one reason per query ("" on success); see the module doc."""
    info = information(out.H)
    ratio = match_ratio(out.sq_match, out.sq_null)
    tex = texture(out.sq_grad, out.sq_null)
    motion = moved(out, conf)
    finite = torch.isfinite(out.M).flatten(1).all(1) & torch.isfinite(out.cost)
    checks = [
        (out.ok, f"fewer than {conf.min_points} valid points at the initial pose"),
        (out.num_valid >= conf.min_points, f"fewer than {conf.min_points} valid points at the end"),
        (finite, "non-finite pose or cost"),
        (tex >= conf.min_texture, "feature maps have no gradient at the points"),
        (info >= conf.min_information, "no information along some pose direction"),
        (ratio <= match_limit(out.num_res, conf), "features do not match their references"),
        (~motion | (out.cost < out.cost_init), "cost not lower than at the start"),
    ]
    success = torch.ones(out.ok.shape, dtype=torch.bool)
    messages = [""] * len(success)
    for passed, reason in checks:
        passed = passed.cpu()
        for b in torch.nonzero(success & ~passed)[:, 0].tolist():
            messages[b] = reason
        success = success & passed
    return Decision(success.to(out.ok.device), messages, motion, info, ratio)


def finish(out: Outcome, init_pose: Pose, conf, history=None) -> FPnPResult:
    """The :class:`FPnPResult` of a refinement: decision, outputs and covariance."""
    verdict = decide(out, conf)
    keep = (verdict.success & verdict.moved).to(out.M.device)
    M = torch.where(keep[:, None, None], out.M.to(init_pose.dtype), init_pose.matrix())
    return FPnPResult(
        pose=Pose.from_matrix(M),
        success=verdict.success,
        iterations=out.iterations,
        cost_init=out.cost_init,
        cost_final=torch.where(keep, out.cost, out.cost_init),
        num_valid=out.num_valid,
        covariance=covariance(out.H, out.res_var, out.num_res),
        message=verdict.messages,
        history=history,
        information=verdict.information,
        match_ratio=verdict.match_ratio,
    )


def covariance(H: torch.Tensor, res_var: torch.Tensor, num_res: torch.Tensor) -> torch.Tensor:
    """``sigma^2 H^-1`` with ``sigma^2`` the weighted residual variance per channel."""
    dof = (num_res - 6).clamp_min(1).to(H.dtype)
    sigma2 = res_var / dof
    H = H.detach()
    eye = torch.eye(6, dtype=H.dtype, device=H.device)
    jitter = 1e-12 * H.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp_min(1e-30)
    cov = torch.linalg.pinv(H + jitter[:, None, None] * eye, hermitian=True)
    return (cov * sigma2.detach()[:, None, None]).nan_to_num(0.0)
