"""Coarse sparse-to-dense matching against a direct computation of its definition."""

from __future__ import annotations

import torch

from s2dloc.localization.s2d import _row_max, coarse_match


def _reference(desc: torch.Tensor, dense: torch.Tensor, radius: int):
    """Best pixel index, best score and best score outside the (2 radius + 1)^2 window, one
    descriptor at a time."""
    D, H, W = dense.shape
    v, u = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    idx, s1, s2 = [], [], []
    for d in desc:
        sim = torch.einsum("c,chw->hw", d, dense)
        best = int(torch.argmax(sim.flatten()))  # first occurrence
        bu, bv = best % W, best // W
        outside = ((u - bu).abs() > radius) | ((v - bv).abs() > radius)
        idx.append(best)
        s1.append(sim.flatten()[best])
        s2.append(sim[outside].max() if outside.any() else torch.tensor(-2.0))
    return torch.tensor(idx), torch.stack(s1), torch.stack(s2)


def test_row_max_is_torch_max_including_ties():
    g = torch.Generator().manual_seed(0)
    sim = torch.round(torch.randn(64, 12 * 20, generator=g) * 3) / 3  # many ties
    sim[5, 7] = sim[5, 200] = 50.0  # equal maxima in different blocks: the first one
    sim[6, 41] = sim[6, 42] = 50.0  # ... in one block
    best, idx = _row_max(sim, 20)
    expected = sim.max(-1)
    assert torch.equal(best, expected.values) and torch.equal(idx, expected.indices)
    assert int(idx[5]) == 7 and int(idx[6]) == 41


def test_coarse_match_finds_the_best_and_second_best_outside_the_window():
    g = torch.Generator().manual_seed(1)
    D, H, W, radius = 16, 9, 13, 2
    dense = torch.nn.functional.normalize(torch.randn(D, H, W, generator=g), dim=0)
    # Descriptors near map pixels (some at the border), plus random ones.
    picks = torch.tensor([0, W - 1, (H - 1) * W, H * W - 1, 5 * W + 6, 3])
    near = dense.reshape(D, -1)[:, picks].T + 0.05 * torch.randn(len(picks), D, generator=g)
    desc = torch.nn.functional.normalize(torch.cat([near, torch.randn(40, D, generator=g)]), dim=-1)
    idx, s1, s2 = _reference(desc, dense, radius)
    for chunk in (7, 512):  # several chunks and one: the same answer
        pos, best, second = coarse_match(desc, dense, radius, chunk=chunk)
        assert torch.allclose(best, s1, atol=1e-6) and torch.allclose(second, s2, atol=1e-6)
        # The sub-pixel peak stays within half a pixel of the best pixel's centre.
        assert torch.all((pos - (torch.stack([idx % W, idx // W], -1) + 0.5)).abs() <= 0.5)
    assert torch.equal(idx[: len(picks)], picks)  # each near descriptor finds its pixel


def test_coarse_match_on_a_map_smaller_than_the_window():
    dense = torch.nn.functional.normalize(torch.randn(8, 2, 3), dim=0)
    desc = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    _, best, second = coarse_match(desc, dense, radius=2)
    assert torch.all(second == -2.0) and torch.all(best > -1.0001)
