"""Robust losses ``rho(s)`` on squared residual norms ``s = ||r||^2``, with IRLS weights.

Each loss has a scale ``c`` (in residual units): residuals much smaller than ``c`` are treated
quadratically, larger ones are down-weighted. ``rho(s) ~ s`` for ``s << c^2`` for every loss, so
costs are comparable across losses. The IRLS weight is ``rho'(s)``.
"""

from __future__ import annotations

import math

import torch

LOSSES = ("squared", "huber", "cauchy", "barron")


class RobustLoss:
    """A robust loss on squared residual norms.

    Args:
        name: one of ``squared``, ``huber``, ``cauchy``, ``barron``.
        scale: the scale ``c`` (``> 0``); ignored by ``squared``.
        alpha: Barron's shape parameter (2: squared, 1: pseudo-Huber/Charbonnier, 0: log /
            Cauchy-like, -2: Geman-McClure, ``-inf``: Welsch).
    """

    def __init__(self, name: str = "cauchy", scale: float = 1.0, alpha: float = 0.0):
        if name not in LOSSES:
            raise ValueError(f"Unknown robust loss {name!r}; expected one of {LOSSES}")
        if not scale > 0:
            raise ValueError(f"Robust loss scale must be positive, got {scale}")
        self.name, self.scale, self.alpha = name, float(scale), float(alpha)

    def __call__(
        self, s: torch.Tensor, scale: torch.Tensor | float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``rho(s)`` and the IRLS weight ``rho'(s)``, both shaped like ``s``.

        ``scale`` overrides the configured scale (it may be a tensor broadcasting with ``s``).
        """
        c2 = (self.scale if scale is None else scale) ** 2
        if self.name == "squared":
            return s, torch.ones_like(s)
        if self.name == "cauchy":
            u = s / c2
            return c2 * torch.log1p(u), 1 / (1 + u)
        if self.name == "huber":
            c = c2**0.5
            root = s.clamp_min(1e-30).sqrt()
            inlier = s <= c2
            rho = torch.where(inlier, s, 2 * c * root - c2)
            return rho, torch.where(inlier, torch.ones_like(s), c / root)
        return self._barron(s, c2)

    def _barron(self, s: torch.Tensor, c2) -> tuple[torch.Tensor, torch.Tensor]:
        a, u = self.alpha, s / c2
        if a == 2:
            return s, torch.ones_like(s)
        if a == 0:
            return 2 * c2 * torch.log1p(u / 2), 1 / (1 + u / 2)
        if math.isinf(a) and a < 0:
            w = torch.exp(-u / 2)
            return 2 * c2 * (1 - w), w
        b = abs(a - 2)
        base = u / b + 1
        rho = 2 * c2 * (b / a) * (base ** (a / 2) - 1)
        return rho, base ** (a / 2 - 1)

    def __repr__(self) -> str:
        extra = f", alpha={self.alpha}" if self.name == "barron" else ""
        return f"RobustLoss({self.name}, scale={self.scale}{extra})"
