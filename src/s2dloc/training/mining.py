"""Negative mining for the contrastive loss: progressive hard negatives or random negatives.

Candidates are pixel centres of image b's feature map at one level (all of them, or a random
subset). Hard mining sorts them by feature distance to each anchor ``f_a(u_a)`` and draws the
negatives at random among the ``M`` closest, with ``M`` shrinking as training goes on
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
    num_candidates: int | None = 4096,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Negative locations in image b for anchors ``f_a`` ``(B, K, C)`` matched at ``u_b``.

    ``F_b`` ``(B, C, H, W)`` is image b's map at the anchors' level, ``u_b`` ``(B, K, 2)`` the
    true matches in its pixel coordinates. ``mode="hard"`` samples ``num_negatives`` distinct
    candidates among the ``pool_size`` closest in feature space (default
    ``hard_negative_pool_size(step)``); ``mode="random"`` samples among all candidates.
    ``num_candidates=None`` uses every pixel of the map. Returns pixel centres ``(B, K, N, 2)``
    and a validity mask ``(B, K, N)`` (False where fewer admissible candidates exist).
    No gradient flows through the mining.
    """
    if mode not in ("hard", "random"):
        raise ValueError(f"mode must be 'hard' or 'random', got {mode!r}")
    B, C, H, W = F_b.shape
    K = f_a.shape[1]
    with torch.no_grad():
        idx = _candidates(B, H, W, num_candidates, generator, F_b.device)  # (B, P)
        xy = torch.stack([idx % W, idx // W], -1).to(u_b.dtype) + 0.5  # (B, P, 2)
        excluded = torch.cdist(u_b, xy) < exclude_radius  # (B, K, P)
        if mode == "hard":
            feats = F_b.flatten(2).gather(2, idx[:, None].expand(-1, C, -1)).transpose(1, 2)
            score = torch.cdist(f_a.detach().to(feats.dtype), feats)
            pool = hard_negative_pool_size(step) if pool_size is None else pool_size
        else:
            score = _rand(excluded.shape, generator, F_b.device)
            pool = idx.shape[1]
        score = score.masked_fill(excluded, float("inf"))
        pool = max(min(pool, idx.shape[1]), 1)
        closest = score.topk(pool, dim=-1, largest=False)  # (B, K, M), ascending
        # num_negatives distinct draws among the pool's M members, admissible ones first
        # (excluded candidates only enter the pool when fewer than M are admissible).
        shuffle = _rand((B, K, pool), generator, F_b.device)
        shuffle = shuffle.masked_fill(closest.values.isinf(), -1.0)
        n = min(num_negatives, pool)
        pick = shuffle.topk(n, dim=-1).indices
        chosen = closest.indices.gather(-1, pick)  # indices into the candidates
        valid = closest.values.gather(-1, pick).isfinite()
        u_neg = xy[:, None].expand(-1, K, -1, -1).gather(2, chosen[..., None].expand(-1, -1, -1, 2))
        if n < num_negatives:  # pad with invalid entries
            pad = num_negatives - n
            u_neg = torch.cat([u_neg, u_neg[..., :1, :].expand(-1, -1, pad, -1)], 2)
            valid = torch.cat([valid, valid.new_zeros(B, K, pad)], 2)
    return u_neg, valid
