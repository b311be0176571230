"""Negative mining for the contrastive loss: progressive hard negatives or random negatives.

Candidates are pixel centres of image b's feature map at one level (all of them by default,
or a random subset). Hard mining sorts them by feature distance to each anchor ``f_a(u_a)`` and
draws the negatives at random among the ``M`` closest, with ``M`` shrinking as training goes on
(:func:`hard_negative_pool_size`); candidates within ``exclude_radius`` pixels of the true
match are never chosen.
"""

from __future__ import annotations

import math

import torch


def hard_negative_pool_size(
    step: int, start: int = 300, minimum: int = 5, rate: float = 0.6, scale: float = 10000.0
) -> int:
    """``M = max(5, 300 exp(-0.6 k / 10000))`` (rounded) for global step ``k``."""
    return max(minimum, round(start * math.exp(-rate * step / scale)))


def _rand(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """Uniform ``[0, 1)`` draws from ``generator`` (on its own device), moved to ``device``."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _candidates(
    B: int, H: int, W: int, num: int | None, generator: torch.Generator | None, device
) -> torch.Tensor:
    """Flat pixel indices ``(B, P)``: all pixels, or ``num`` distinct random ones per image."""
    if num is None or num >= H * W:
        return torch.arange(H * W, device=device).expand(B, -1)
    scores = _rand((B, H * W), generator, device)
    return scores.topk(num, dim=1).indices


def _exclude_near(
    score: torch.Tensor, u_b: torch.Tensor, H: int, W: int, radius: float
) -> torch.Tensor:
    """``score`` ``(B, k, H W)`` over all pixels, set to inf at pixel centres closer than
    ``radius`` to ``u_b`` ``(B, k, 2)``: only the window around each match is visited."""
    R = max(math.ceil(radius), 0)
    d = torch.arange(-R, R + 1, device=u_b.device)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    base = torch.floor(u_b).long()  # (B, k, 2)
    px = base[..., None, 0] + dx.reshape(-1)  # (B, k, (2R+1)^2)
    py = base[..., None, 1] + dy.reshape(-1)
    dist2 = (px + 0.5 - u_b[..., None, 0]) ** 2 + (py + 0.5 - u_b[..., None, 1]) ** 2
    hit = (dist2 < radius**2) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    b, k, j = hit.nonzero(as_tuple=True)
    score[b, k, py[b, k, j] * W + px[b, k, j]] = float("inf")
    return score


def mine_negatives(
    f_a: torch.Tensor,
    F_b: torch.Tensor,
    u_b: torch.Tensor,
    num_negatives: int,
    *,
    step: int = 0,
    pool_size: int | None = None,
    mode: str = "hard",
    exclude_radius: float = 3.0,
    num_candidates: int | None = None,
    generator: torch.Generator | None = None,
    chunk_elements: int = 2**24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative locations in image b for anchors ``f_a`` ``(B, K, C)`` matched at ``u_b``.

    ``F_b`` ``(B, C, H, W)`` is image b's map at the anchors' level, ``u_b`` ``(B, K, 2)`` the
    true matches in its pixel coordinates. ``mode="hard"`` samples ``num_negatives`` distinct
    candidates among the ``pool_size`` closest in feature space (default
    ``hard_negative_pool_size(step)``); ``mode="random"`` samples among all candidates.
    Candidates: every pixel of the map (``num_candidates`` None or 0, the default), or that
    many random pixels. Distances are computed for chunks of anchors of at most
    ``chunk_elements`` (anchor, candidate) pairs, so memory stays bounded at any map size; the
    result does not depend on the chunking. Returns pixel centres ``(B, K, N, 2)`` and a
    validity mask ``(B, K, N)`` (False where fewer admissible candidates exist).
    No gradient flows through the mining.
    """
    if mode not in ("hard", "random"):
        raise ValueError(f"mode must be 'hard' or 'random', got {mode!r}")
    B, C, H, W = F_b.shape
    K = f_a.shape[1]
    with torch.no_grad():
        idx = _candidates(B, H, W, num_candidates or None, generator, F_b.device)  # (B, P)
        P = idx.shape[1]
        xy = torch.stack([idx % W, idx // W], -1).to(u_b.dtype) + 0.5  # (B, P, 2)
        feats = None
        if mode == "hard":
            feats = F_b.flatten(2).gather(2, idx[:, None].expand(-1, C, -1)).transpose(1, 2)
            pool = hard_negative_pool_size(step) if pool_size is None else pool_size
        else:
            pool = P
        pool = max(min(pool, P), 1)
        random_scores = None if mode == "hard" else _rand((B, K, P), generator, F_b.device)
        shuffle = _rand((B, K, pool), generator, F_b.device)
        n = min(num_negatives, pool)
        step_k = max(1, chunk_elements // max(B * P, 1))
        chosen, valid = [], []
        for k0 in range(0, K, step_k):
            sl = slice(k0, k0 + step_k)
            if feats is not None:
                score = torch.cdist(f_a[:, sl].detach().to(feats.dtype), feats)
            else:
                score = random_scores[:, sl].clone()
            score = _exclude(score, u_b[:, sl].detach(), xy, H, W, exclude_radius)
            c, v = _draw(score, shuffle[:, sl], pool, n)
            chosen.append(c)
            valid.append(v)
        chosen, valid = torch.cat(chosen, 1), torch.cat(valid, 1)
        u_neg = xy[:, None].expand(-1, K, -1, -1).gather(2, chosen[..., None].expand(-1, -1, -1, 2))
        return _pad_invalid(u_neg, valid, num_negatives)


def _pad_invalid(
    u_neg: torch.Tensor, valid: torch.Tensor, num: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad negatives ``u_neg (B, K, n, 2)`` and ``valid (B, K, n)`` to ``num`` entries with
    invalid ones (copies of the first location)."""
    pad = num - u_neg.shape[2]
    if pad <= 0:
        return u_neg, valid
    u_neg = torch.cat([u_neg, u_neg[..., :1, :].expand(-1, -1, pad, -1)], 2)
    return u_neg, torch.cat([valid, valid.new_zeros(*valid.shape[:2], pad)], 2)


def _exclude(score, u_b, xy, H: int, W: int, radius: float) -> torch.Tensor:
    """``score (B, k, P)`` set to inf for candidates within ``radius`` of the true matches."""
    if xy.shape[1] == H * W:  # all pixels, in order: visit the window around each match
        return _exclude_near(score, u_b, H, W, radius)
    excluded = torch.cdist(u_b, xy) < radius  # (B, k, P)
    return score.masked_fill(excluded, float("inf"))


def _draw(score, shuffle, pool: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` distinct draws (random order ``shuffle (B, k, pool)``) among the ``pool`` lowest
    scores: candidate indices ``(B, k, n)`` and their validity (finite score)."""
    closest = score.topk(pool, dim=-1, largest=False)  # (B, k, M), ascending
    # Admissible members first (excluded candidates only enter the pool when fewer than M are
    # admissible).
    shuf = shuffle.masked_fill(closest.values.isinf(), -1.0)
    pick = shuf.topk(n, dim=-1).indices
    return closest.indices.gather(-1, pick), closest.values.gather(-1, pick).isfinite()
