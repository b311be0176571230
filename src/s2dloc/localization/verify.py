"""Is a localized pose right? Scale-free checks of the PnP-RANSAC pose and of its F-PnP update.

Statistics are computed once per query (:func:`pnp_stats`, :func:`fpnp_stats`), stored in the
query's log record, and judged against thresholds (:func:`check_pnp`, :func:`check_fpnp`,
:func:`check_pnp_against_fpnp`), so a log can be re-judged with other thresholds without
localizing again. Every threshold is a count, a ratio, pixels relative to the RANSAC threshold,
degrees or a fraction of the scene depth. :func:`judge` gives the verdict: a query succeeds
when its PnP pose passes, F-PnP's pose replaces it when the update passes, and the best
reference's matches, judged by the PnP checks at F-PnP's pose, can vouch for that pose when
the PnP pose failed or the update moved beyond the PnP uncertainty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from s2dloc.geometry import Camera, Pose
from s2dloc.geometry.lie import skew
from s2dloc.localization.evidence import Evidence, FPnPRecord, FPnPStats, PnPStats
from s2dloc.utils.config import Check, from_settings, in_range

# A dense residual at most this times another's fits clearly better: the re-ranking's swap
# (:mod:`s2dloc.localization.rerank`) and the default of ``agree_dense_margin``.
DENSE_MARGIN = 0.9


@dataclass
class VerifyThresholds:
    """Thresholds of the verdict (the ``verify`` section of the localization settings)."""

    enabled: bool = True
    min_inliers: int = 20  # PnP inliers of the best reference
    min_inlier_ratio: float = 0.05  # inliers / matches of the best reference
    min_grid_coverage: float = 0.25  # occupied cells of a 4 x 4 grid over the image
    min_hull_fraction: float = 0.15  # convex hull area of the inliers / image area
    max_residual_ratio: float = 0.45  # median inlier reprojection error / RANSAC threshold ...
    spread_hull_fraction: float = 0.35  # ... or, for inliers spread over this much image area
    max_residual_ratio_spread: float = 0.6  # (or confirmed by the 2nd reference), this ratio
    agree_min_support: float = 0.7  # compare with the 2nd reference if its inliers >= this x best
    agree_max_rotation: float = 5.0  # degrees between the two references' poses
    agree_max_translation: float = 0.1  # camera-centre distance / median inlier depth
    agree_min_cross: float = 0.5  # ... unless the best pose fits this x the 2nd's inliers
    # ... or the 2nd's pose is this far (degrees, or centre distance / depth) and the dense
    # comparison of the two (``verify.rerank``) fits the best's at most this x the 2nd's
    agree_far_rotation: float = 15.0
    agree_far_translation: float = 2.0
    agree_dense_margin: float = DENSE_MARGIN
    fpnp_min_valid: int = 30  # valid points at the refined pose
    fpnp_max_cost_ratio: float = 1.0  # final / initial robust cost
    fpnp_max_rotation_std: float = 2.0  # degrees, largest rotation std of the covariance
    fpnp_max_translation_std: float = 0.05  # largest centre std / median depth
    fpnp_max_move_sigma: float = 100.0  # move in PnP standard deviations (Mahalanobis) ...
    fpnp_strong_cost_ratio: float = 0.7  # ... unless the cost fell below this ratio
    fpnp_max_rotation_change: float = 5.0  # degrees, absolute cap on the move
    fpnp_max_translation_change: float = 0.25  # absolute cap, fraction of the depth
    # every point the references see (fpnp.points=visible), when that refinement was refused:
    # their features must match their references better than this ratio (own / other point's)
    fpnp_max_visible_match_ratio: float = 0.86
    # a trusted refinement on every visible point whose match ratio is at most this vouches
    # for its pose as matches that pass the PnP checks there do
    fpnp_dense_match_ratio: float = 0.75
    fpnp_dense_min_channels: int = 16  # ... for features with at least this many channels

    @classmethod
    def from_conf(cls, conf: dict) -> VerifyThresholds:
        """From a ``verify`` settings dict, strictly (:func:`s2dloc.utils.config.from_settings`:
        unknown keys, values of the wrong type and values outside :data:`THRESHOLD_CHECKS` are
        errors naming the key)."""
        return from_settings(cls, conf, checks=THRESHOLD_CHECKS)


_COUNT, _FRACTION, _POSITIVE = in_range(0), in_range(0, 1), in_range(0, lo_open=True)
# The valid range of every threshold but ``enabled``: counts and unbounded ratios >= 0,
# fractions of the image or of a reference's matches in [0, 1], scales and caps > 0.
THRESHOLD_CHECKS: dict[str, Check] = {
    "min_inliers": _COUNT,
    "min_inlier_ratio": _FRACTION,
    "min_grid_coverage": _FRACTION,
    "min_hull_fraction": _FRACTION,
    "max_residual_ratio": _POSITIVE,
    "spread_hull_fraction": _FRACTION,
    "max_residual_ratio_spread": _POSITIVE,
    "agree_min_support": _COUNT,
    "agree_max_rotation": _COUNT,
    "agree_max_translation": _COUNT,
    "agree_min_cross": _FRACTION,
    "agree_far_rotation": _COUNT,
    "agree_far_translation": _COUNT,
    "agree_dense_margin": _POSITIVE,
    "fpnp_min_valid": _COUNT,
    "fpnp_max_cost_ratio": _POSITIVE,
    "fpnp_max_rotation_std": _POSITIVE,
    "fpnp_max_translation_std": _POSITIVE,
    "fpnp_max_move_sigma": _POSITIVE,
    "fpnp_strong_cost_ratio": _COUNT,
    "fpnp_max_rotation_change": _POSITIVE,
    "fpnp_max_translation_change": _POSITIVE,
    "fpnp_max_visible_match_ratio": _POSITIVE,
    "fpnp_dense_match_ratio": _COUNT,
    "fpnp_dense_min_channels": _COUNT,
}


def grid_coverage(p2d: np.ndarray, size: tuple[float, float], cells: int = 4) -> float:
    """Fraction of ``cells x cells`` image cells holding at least one of the pixels ``(N, 2)``."""
    if len(p2d) == 0:
        return 0.0
    w, h = size
    ij = np.floor(np.asarray(p2d, np.float64) / [w / cells, h / cells]).astype(np.int64)
    ij = np.clip(ij, 0, cells - 1)
    return len(np.unique(ij[:, 0] * cells + ij[:, 1])) / cells**2


@njit(cache=True)
def _half_hull(pts: np.ndarray, out: np.ndarray) -> int:
    """Andrew's monotone chain over ``pts (N, 2)`` (sorted): the chain's vertices in ``out``
    without its last one; returns their number."""
    n = 0
    for i in range(pts.shape[0]):
        px, py = pts[i, 0], pts[i, 1]
        while n >= 2:
            ox, oy, ax, ay = out[n - 2, 0], out[n - 2, 1], out[n - 1, 0], out[n - 1, 1]
            if (ax - ox) * (py - oy) - (ay - oy) * (px - ox) > 0:
                break
            n -= 1
        out[n, 0], out[n, 1] = px, py
        n += 1
    return n - 1


def hull_fraction(p2d: np.ndarray, size: tuple[float, float]) -> float:
    """Area of the convex hull of the pixels ``(N, 2)`` divided by the image area."""
    pts = np.unique(np.asarray(p2d, np.float64), axis=0)
    if len(pts) < 3:
        return 0.0
    pts = np.ascontiguousarray(pts[np.lexsort((pts[:, 1], pts[:, 0]))])
    lower, upper = np.empty_like(pts), np.empty_like(pts)
    hull = np.concatenate(
        [lower[: _half_hull(pts, lower)], upper[: _half_hull(pts[::-1].copy(), upper)]]
    )
    x, y = hull[:, 0], hull[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    return area / float(size[0] * size[1])


def pose_difference(a: Pose, b: Pose, depth: float) -> tuple[float, float]:
    """Rotation angle (deg) and camera-centre distance / ``depth`` between two poses."""
    return float(a.angle_to(b)), float(a.center_distance_to(b)) / max(depth, 1e-12)


def pnp_covariance(p3d: np.ndarray, camera: Camera, pose: Pose, sigma: float) -> torch.Tensor:
    """Covariance ``(6, 6)`` of the left perturbation ``(rho, phi)`` of ``pose`` given world
    points ``(N, 3)`` observed with isotropic pixel noise ``sigma`` (Gauss-Newton)."""
    X = pose.double().transform(torch.from_numpy(np.asarray(p3d, np.float64)))
    _, valid, J_p = camera.double().project_with_jacobian(X)
    eye = torch.eye(3, dtype=X.dtype).expand(len(X), 3, 3)
    J = J_p @ torch.cat([eye, -skew(X)], -1)  # (N, 2, 6): dX/d(rho, phi) = [I, -[X]x]
    J = J[valid].reshape(-1, 6)
    H = J.T @ J + 1e-12 * torch.eye(6, dtype=J.dtype)
    return torch.linalg.pinv(H, hermitian=True) * sigma**2


def pnp_stats(
    p2d: np.ndarray,
    residuals: np.ndarray,
    num_matches: int,
    size: tuple[float, float],
    depth: float,
    max_error: float,
) -> PnPStats:
    """Statistics of the inliers: pixels ``(N, 2)`` and their reprojection errors ``(N,)``,
    found by a RANSAC with inlier threshold ``max_error`` pixels."""
    n = len(p2d)
    res = np.asarray(residuals, np.float64)
    return PnPStats(
        num_matches=int(num_matches),
        num_inliers=n,
        inlier_ratio=n / max(num_matches, 1),
        grid_coverage=grid_coverage(p2d, size),
        hull_fraction=hull_fraction(p2d, size),
        residual_median=float(np.median(res)) if n else math.nan,
        max_error=float(max_error),
        residual_p90=float(np.percentile(res, 90, method="higher")) if n else math.nan,
        depth=float(depth),
    )


def _agrees(s: PnPStats, th: VerifyThresholds) -> bool:
    """The second reference's own PnP pose is close to the best's."""
    return s.second_rotation <= th.agree_max_rotation and (
        s.second_translation <= th.agree_max_translation
    )


def _second_confirms(s: PnPStats, th: VerifyThresholds) -> bool:
    """A second reference with most of the best's support gives the same pose on its own
    matches."""
    return s.second_support >= th.agree_min_support and _agrees(s, th)


def check_pnp(s: PnPStats, th: VerifyThresholds, decided: bool = False) -> str:
    """Why the PnP pose is not trusted ("" if it is, or if verification is disabled).
    ``decided``: the dense comparison of the two references' poses settled their disagreement
    for this one (:func:`rerank_decided`), so it is not a doubt."""
    if not th.enabled:
        return ""
    if s.num_inliers < th.min_inliers:
        return f"PnP: {s.num_inliers} inliers < {th.min_inliers}"
    if s.inlier_ratio < th.min_inlier_ratio:
        return f"PnP: inlier ratio {s.inlier_ratio:.3f} < {th.min_inlier_ratio}"
    if s.grid_coverage < th.min_grid_coverage:
        return f"PnP: inliers cover {s.grid_coverage:.2f} of the image < {th.min_grid_coverage}"
    if s.hull_fraction < th.min_hull_fraction:
        return (
            f"PnP: inlier hull covers {s.hull_fraction:.3f} of the image < {th.min_hull_fraction}"
        )
    rival = s.second_support >= th.agree_min_support
    agree = _agrees(s, th)
    # Inliers spread over the image, or a second reference giving the same pose on its own
    # matches, allow a larger residual (as from a blurred or noisy query).
    confirmed = s.hull_fraction >= th.spread_hull_fraction or (rival and agree)
    ratio = th.max_residual_ratio_spread if confirmed else th.max_residual_ratio
    if not s.residual_median <= ratio * s.max_error:
        return (
            f"PnP: median residual {s.residual_median:.2f} px > {ratio} x "
            f"the RANSAC threshold {s.max_error:g} px"
        )
    if rival and not agree and not decided and not s.second_cross >= th.agree_min_cross:
        return (
            f"PnP: top references disagree ({s.second_rotation:.1f} deg, "
            f"{s.second_translation:.3f} of depth)"
        )
    return ""


def fpnp_stats(
    init: Pose,
    final: Pose,
    covariance: torch.Tensor,
    pnp_cov: torch.Tensor | None,
    depth: float,
    cost_init: float,
    cost_final: float,
    num_points: int,
    num_valid: int,
    success: bool,
    message: str = "",
    match_ratio: float = math.nan,
) -> FPnPStats:
    """Statistics of an F-PnP update ``init -> final`` with its ``covariance (6, 6)`` and the
    PnP covariance ``pnp_cov (6, 6)`` of ``init`` (both of the left perturbation (rho, phi);
    ``pnp_cov`` None when ``init`` is not a PnP pose: no move check)."""
    cov = covariance.double()
    finite = bool(torch.isfinite(cov).all()) and float(cov.diagonal().min()) > 0
    init_d = init.double()
    rot_std = trans_std = math.inf
    if finite:
        rot_var = torch.linalg.eigvalsh(cov[3:, 3:]).max().clamp_min(0)
        # Centre c = -R^T t: under a left perturbation, d c = -R^T (d rho + [t]x d phi).
        A = -init_d.R.T @ torch.cat([torch.eye(3, dtype=cov.dtype), skew(init_d.t)], -1)
        c_var = torch.linalg.eigvalsh(A @ cov @ A.T).max().clamp_min(0)
        rot_std = math.degrees(float(rot_var.sqrt()))
        trans_std = float(c_var.sqrt()) / max(depth, 1e-12)
    move = math.nan
    if pnp_cov is not None:
        delta = (final.double() @ init_d.inv()).log()
        info = torch.linalg.pinv(pnp_cov.double(), hermitian=True)
        move = float((delta @ info @ delta).clamp_min(0).sqrt())
    rot_change, trans_change = pose_difference(init, final, depth)
    return FPnPStats(
        solver_success=bool(success),
        solver_message=message,
        num_points=int(num_points),
        num_valid=int(num_valid),
        cost_ratio=float(cost_final) / float(cost_init) if cost_init > 0 else math.inf,
        rotation_std=rot_std,
        translation_std=trans_std,
        rotation_change=rot_change,
        translation_change=trans_change,
        move_sigma=move,
        match_ratio=float(match_ratio),
    )


def _beyond_caps(s: FPnPStats, th: VerifyThresholds) -> bool:
    """The update exceeds the absolute caps on rotation or translation."""
    return (
        s.rotation_change > th.fpnp_max_rotation_change
        or s.translation_change > th.fpnp_max_translation_change
    )


def _far_move(s: FPnPStats, th: VerifyThresholds) -> bool:
    """The update moves beyond the PnP uncertainty without a strong cost decrease."""
    return s.move_sigma > th.fpnp_max_move_sigma and s.cost_ratio > th.fpnp_strong_cost_ratio


def check_fpnp(s: FPnPStats, th: VerifyThresholds, move: bool = True) -> str:
    """Why the F-PnP update is not trusted ("" if it is). With verification disabled, only the
    solver's own flag and the caps on the move apply; ``move=False`` leaves out the check of
    the move against the PnP uncertainty (see :func:`judge`)."""
    if not s.solver_success:
        return f"F-PnP: {s.solver_message or 'solver failed'}"
    if _beyond_caps(s, th):
        return (
            f"F-PnP: update too large ({s.rotation_change:.2f} deg, "
            f"{s.translation_change:.3f} of depth)"
        )
    if not th.enabled:
        return ""
    if s.num_valid < th.fpnp_min_valid:
        return f"F-PnP: {s.num_valid} valid points < {th.fpnp_min_valid}"
    if not s.cost_ratio <= th.fpnp_max_cost_ratio:
        return f"F-PnP: cost ratio {s.cost_ratio:.3f} > {th.fpnp_max_cost_ratio}"
    if not (
        s.rotation_std <= th.fpnp_max_rotation_std
        and s.translation_std <= th.fpnp_max_translation_std
    ):
        return (
            f"F-PnP: ill-conditioned (std {s.rotation_std:.2f} deg, "
            f"{s.translation_std:.3f} of depth)"
        )
    if move and _far_move(s, th):
        return (
            f"F-PnP: move of {s.move_sigma:.1f} PnP sigmas not supported by the cost "
            f"(ratio {s.cost_ratio:.2f})"
        )
    return ""


def check_pnp_against_fpnp(s: FPnPStats, th: VerifyThresholds) -> str:
    """Why F-PnP contradicts the PnP pose ("" if it does not): the solver lowered the cost by
    moving beyond the caps on the update, or by more than ``fpnp_max_move_sigma`` PnP standard
    deviations without lowering it enough to be trusted (:func:`check_fpnp`), so neither pose
    can be stood behind."""
    if not th.enabled or not s.solver_success or not s.cost_ratio <= th.fpnp_max_cost_ratio:
        return ""
    if _beyond_caps(s, th):
        return (
            f"PnP: F-PnP moved it by {s.rotation_change:.2f} deg, "
            f"{s.translation_change:.3f} of depth (beyond the caps)"
        )
    if _far_move(s, th):
        return (
            f"PnP: F-PnP moved it by {s.move_sigma:.1f} PnP sigmas (cost ratio "
            f"{s.cost_ratio:.2f}): the PnP pose is off by more than its uncertainty"
        )
    return ""


def dense_refinement(record: FPnPRecord | None, th: VerifyThresholds) -> bool:
    """Whether F-PnP's ``record`` is of a refinement on every point the references see, with
    features of at least ``fpnp_dense_min_channels`` channels on every level (with fewer, as
    RGB, features of unrelated points match by chance too often for their agreement to vouch
    for a pose)."""
    return (
        record is not None
        and record.points == "visible"
        and record.channels >= th.fpnp_dense_min_channels
    )


def check_visible(visible: FPnPStats | None, th: VerifyThresholds) -> str:
    """Why the refused refinement on every point the references see (``visible``; None when
    there was none) rules the pose out ("" if it does not): at its end their features matched
    their references hardly better than other points' references do, which a pose of the
    wrong place gives."""
    if not th.enabled or visible is None:
        return ""
    if visible.match_ratio > th.fpnp_max_visible_match_ratio:
        return (
            f"F-PnP: the points the references see do not match at this pose (ratio "
            f"{visible.match_ratio:.2f} > {th.fpnp_max_visible_match_ratio:g})"
        )
    return ""


def judge(
    pnp: PnPStats,
    fpnp: FPnPStats | None,
    final: PnPStats | None,
    th: VerifyThresholds,
    visible: FPnPStats | None = None,
    dense: bool = False,
    decided: bool = False,
) -> tuple[str, bool]:
    """The verdict of a query from its statistics: ``(why it fails or "", whether F-PnP's
    pose is the answer)``. ``final`` are the best reference's matches judged at F-PnP's pose
    (None when F-PnP did not run); ``visible`` the refused refinement on every point the
    references see, which can veto the query (:func:`check_visible`) unless a second
    reference confirms the PnP pose on its own matches. Matches that pass the
    PnP checks at F-PnP's pose are independent evidence for it: they rescue a PnP pose that
    failed its checks, and an update whose only fault is a move beyond the PnP uncertainty
    with a modest cost decrease. So does, for a trusted update, a refinement on every point the
    references see (``dense``) whose features match their references (match ratio at most
    ``fpnp_dense_match_ratio``): thousands of points agree where a few hundred matches were
    too clustered or disputed by the second reference. ``decided``: see :func:`check_pnp`."""
    # Two references' own poses that agree outweigh the features' agreement at the end of
    # the refused refinement: the veto is for poses one reference alone supports.
    veto = "" if _second_confirms(pnp, th) else check_visible(visible, th)
    if veto:
        return veto, False
    reason = check_pnp(pnp, th, decided)
    if fpnp is None:
        return reason, False
    supported = final is not None and not check_pnp(final, th, decided)
    trusted = not check_fpnp(fpnp, th)
    use_fpnp = trusted or (supported and not check_fpnp(fpnp, th, move=False))
    agrees = dense and trusted and fpnp.match_ratio <= th.fpnp_dense_match_ratio
    if use_fpnp:
        return ("" if supported or agrees else reason), True
    return reason or check_pnp_against_fpnp(fpnp, th), False


def rerank_decided(ev: Evidence, th: VerifyThresholds) -> bool:
    """Whether the dense comparison of the top two references' poses (``ev.rerank``) settles
    their disagreement for the best (see :func:`check_pnp`'s ``decided``): it put the best
    first over the one with more inliers, or the rival's pose is far from the best's
    (``agree_far_rotation``, ``agree_far_translation``) and fits the dense features clearly
    worse (the best's median residual at most ``agree_dense_margin`` times the rival's). A near
    rival is a view of a similar stretch of the scene, which the features can confuse; a far
    one is a fit to wrong matches."""
    if ev.rerank is None or ev.pnp is None:
        return False
    if ev.rerank.swapped:
        return True
    fits = ev.rerank.residual_median
    rotation, centre = ev.pnp.second_rotation, ev.pnp.second_translation
    if not all(math.isfinite(v) for v in (*fits, rotation, centre)):
        return False
    far = rotation > th.agree_far_rotation or centre > th.agree_far_translation
    return bool(far and fits[0] <= th.agree_dense_margin * fits[1])


def judge_record(ev: Evidence, record: FPnPRecord | None, th: VerifyThresholds) -> tuple[str, bool]:
    """:func:`judge` on the evidence a query records (``ev.pnp`` must be set) and F-PnP's
    ``record``. The pipeline judges live queries and ``benchmarks/verdict.py`` judges logged
    ones with it, so both reach the same verdict."""
    if ev.pnp is None:
        raise ValueError("judge_record needs the PnP statistics (Evidence.pnp)")
    return judge(
        ev.pnp,
        ev.fpnp,
        ev.final,
        th,
        ev.fpnp_visible,
        dense_refinement(record, th),
        rerank_decided(ev, th),
    )
