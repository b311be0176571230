"""GN-Net training losses on one feature level: the Gauss-Newton loss and contrastive losses.

Points are continuous pixel coordinates of the level's maps (COLMAP convention: the centre of
the top-left pixel is at (0.5, 0.5)); scale full-resolution points by ``1 / stride``.
Shapes: maps ``(B, C, H, W)``, points ``(B, K, 2)``, masks ``(B, K)``.
"""

from __future__ import annotations

import math

import torch

from s2dloc.geometry.interpolation import sample, sample_with_gradients

LOG_2PI = math.log(2 * math.pi)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ``mask`` (0 with a graph when nothing is valid); NaN-safe."""
    x = torch.where(mask, x, torch.zeros_like(x))
    return x.sum() / mask.sum().clamp_min(1)


def start_points(
    u_b: torch.Tensor, vicinity: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``u_b + offset``, offsets uniform in ``[-vicinity, vicinity]^2`` pixels, ``(B, K, 2)``."""
    device = u_b.device if generator is None else generator.device  # a CPU generator on GPU
    r = torch.rand(u_b.shape, generator=generator, dtype=u_b.dtype, device=device).to(u_b.device)
    return u_b + (2 * r - 1) * vicinity


def gauss_newton_terms(
    F_a: torch.Tensor,
    F_b: torch.Tensor,
    u_a: torch.Tensor,
    u_b: torch.Tensor,
    x_s: torch.Tensor,
    eps: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """Per-match terms of the GN loss (the seed's Algorithm 1), each ``(B, K)``.

    ``f = F_a(u_a)``; ``r = F_b(x_s) - f``; ``J = dF_b/dx(x_s)`` (central differences sampled
    bilinearly, ``(B, K, C, 2)``); ``H = J^T J + eps I``; ``mu = x_s - H^-1 J^T r``;
    ``e1 = 1/2 (u_b - mu)^T H (u_b - mu)``; ``e2 = log(2 pi) - 1/2 log|H|``.
    Returns ``e1``, ``e2``, ``valid`` (all samples inside the maps), ``feature_norm``
    (``|f|``) and ``mu`` ``(B, K, 2)``.
    """
    f, valid_a = sample(F_a, u_a)
    f_s, J, valid_s = sample_with_gradients(F_b, x_s)
    _, valid_b = sample(F_b, u_b)
    r = f_s - f
    Jt = J.transpose(-1, -2)  # (B, K, 2, C)
    H = Jt @ J + eps * torch.eye(2, dtype=J.dtype, device=J.device)
    g = (Jt @ r[..., None])[..., 0]  # b = J^T r, (B, K, 2)
    a, c, d = H[..., 0, 0], H[..., 0, 1], H[..., 1, 1]
    det = a * d - c * c
    # H^-1 g in closed form (H is 2x2 symmetric positive definite).
    step = (
        torch.stack([d * g[..., 0] - c * g[..., 1], a * g[..., 1] - c * g[..., 0]], -1)
        / det[..., None]
    )
    mu = x_s - step
    delta = u_b - mu
    e1 = 0.5 * (delta[..., None, :] @ H @ delta[..., :, None])[..., 0, 0]
    e2 = LOG_2PI - 0.5 * torch.log(det)
    valid = valid_a & valid_s & valid_b
    return {"e1": e1, "e2": e2, "valid": valid, "feature_norm": f.norm(dim=-1), "mu": mu}


def gauss_newton_loss(
    F_a: torch.Tensor,
    F_b: torch.Tensor,
    u_a: torch.Tensor,
    u_b: torch.Tensor,
    valid: torch.Tensor | None = None,
    *,
    vicinity: float = 1.0,
    eps: float = 1e-4,
    w1: float = 1.0,
    w2: float = 1.0,
    both_directions: bool = False,
    generator: torch.Generator | None = None,
    x_s: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The Gauss-Newton loss of GN-Net on one level, averaged over valid matches.

    Start points ``x_s = u_b + U(-vicinity, vicinity)^2`` are drawn from ``generator`` unless
    given (``x_s`` then only serves the a->b direction). With ``both_directions`` the b->a loss
    (start points around ``u_a``) is averaged in. Returns scalars ``total = w1 e1 + w2 e2``,
    ``e1``, ``e2``, ``feature_norm`` (mean norm of the target features, detached) and
    ``num_valid``.
    """
    directions = [(F_a, F_b, u_a, u_b, x_s)]
    if both_directions:
        directions.append((F_b, F_a, u_b, u_a, None))
    out: dict[str, torch.Tensor] = {}
    for fa, fb, ua, ub, xs in directions:
        if xs is None:
            xs = start_points(ub, vicinity, generator)
        t = gauss_newton_terms(fa, fb, ua, ub, xs, eps)
        mask = t["valid"] if valid is None else t["valid"] & valid
        e1, e2 = _masked_mean(t["e1"], mask), _masked_mean(t["e2"], mask)
        terms = {
            "total": w1 * e1 + w2 * e2,
            "e1": e1,
            "e2": e2,
            "feature_norm": _masked_mean(t["feature_norm"].detach(), mask),
            "num_valid": mask.sum().to(e1.dtype),
        }
        for k, v in terms.items():
            out[k] = out[k] + v / len(directions) if k in out else v / len(directions)
    return out


def _safe_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the last axis with a finite gradient at 0."""
    return (x * x).sum(-1).clamp_min(1e-12).sqrt()


def contrastive_loss(
    F_a: torch.Tensor,
    F_b: torch.Tensor,
    u_a: torch.Tensor,
    u_b: torch.Tensor,
    u_neg: torch.Tensor,
    valid: torch.Tensor | None = None,
    valid_neg: torch.Tensor | None = None,
    *,
    margin: float | tuple[float, float] = 1.0,
) -> dict[str, torch.Tensor]:
    """Contrastive loss on L2 distances between features at ``u_a`` and in image b.

    ``u_neg`` ``(B, K, N, 2)`` are N negative locations in image b per anchor (e.g. from
    :func:`s2dloc.training.mining.mine_negatives`), ``valid_neg`` ``(B, K, N)`` their mask.
    A float ``margin`` m is the single-margin loss ``d_pos^2 + max(0, m - d_neg)^2``; a pair
    ``(M_pos, M_neg)`` the double-margin loss ``max(0, d_pos - M_pos)^2 + max(0, M_neg -
    d_neg)^2``. Each term is averaged over its valid pairs. Returns scalars ``total``,
    ``positive``, ``negative``, ``d_pos``, ``d_neg`` (mean distances, detached) and
    ``active_neg`` (the fraction of negatives closer than the negative margin).
    """
    pos_margin, neg_margin = (0.0, margin) if isinstance(margin, int | float) else margin
    B, K, N, _ = u_neg.shape
    f_a, valid_a = sample(F_a, u_a)
    f_b, valid_b = sample(F_b, u_b)
    f_n, valid_n = sample(F_b, u_neg.reshape(B, K * N, 2))
    f_n, valid_n = f_n.reshape(B, K, N, -1), valid_n.reshape(B, K, N)
    mask = valid_a & valid_b if valid is None else valid_a & valid_b & valid
    mask_n = valid_n & (valid_a if valid is None else valid_a & valid)[..., None]
    if valid_neg is not None:
        mask_n = mask_n & valid_neg
    if pos_margin == 0:
        d_pos = None
        pos = ((f_a - f_b) ** 2).sum(-1)  # d^2 without a square root (smooth at 0)
    else:
        d_pos = _safe_norm(f_a - f_b)
        pos = (d_pos - pos_margin).clamp_min(0) ** 2
    d_neg = _safe_norm(f_a[:, :, None] - f_n)
    neg = (neg_margin - d_neg).clamp_min(0) ** 2
    positive, negative = _masked_mean(pos, mask), _masked_mean(neg, mask_n)
    with torch.no_grad():
        d_pos = _safe_norm(f_a - f_b) if d_pos is None else d_pos
        stats = {
            "d_pos": _masked_mean(d_pos, mask),
            "d_neg": _masked_mean(d_neg, mask_n),
            "active_neg": _masked_mean((d_neg < neg_margin).to(d_neg.dtype), mask_n),
        }
    return {"total": positive + negative, "positive": positive, "negative": negative, **stats}
