"""Tests of negative mining (s2dloc.training.mining).

Each test that mines runs on every ``device``; draws come from seeded CPU generators, so the
same seed gives the same negatives on every device.
"""

from __future__ import annotations

import math

import pytest
import torch

from s2dloc.training.mining import hard_negative_pool_size, mine_negatives

torch.set_num_threads(1)

H, W = 8, 32


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _column_map(device: torch.device) -> torch.Tensor:
    """A 1-channel map ``(1, 1, H, W)`` whose feature is the column index: distances are
    ``|j - f|``."""
    return torch.arange(W, dtype=torch.float32, device=device).expand(1, 1, H, W).clone()


def test_pool_size_schedule():
    assert hard_negative_pool_size(0) == 300
    assert hard_negative_pool_size(10_000) == round(300 * math.exp(-0.6)) == 165
    assert hard_negative_pool_size(50_000) == round(300 * math.exp(-3.0)) == 15
    assert hard_negative_pool_size(10**6) == 5
    sizes = [hard_negative_pool_size(k) for k in range(0, 200_000, 1000)]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) == 5


def test_hard_negatives_are_among_the_closest_in_feature_space(device):
    # Anchor feature 20: columns 19-21 (24 pixels) are the 24 closest candidates.
    f_a = torch.full((1, 2, 1), 20.0, device=device)
    u_b = torch.tensor([[[5.5, 4.5], [2.5, 1.5]]], device=device)
    u_neg, valid = mine_negatives(
        f_a, _column_map(device), u_b, 10, pool_size=24, num_candidates=None, generator=_gen(0)
    )
    assert u_neg.shape == (1, 2, 10, 2) and valid.all()
    cols = u_neg[..., 0] - 0.5
    assert ((cols - 20).abs() <= 1).all()
    assert ((u_neg - 0.5) % 1 == 0).all()  # pixel centres
    for k in range(2):  # distinct negatives per anchor
        assert len({tuple(p) for p in u_neg[0, k].tolist()}) == 10
    # Seeded: same draw again; another seed gives another subset of the pool.
    again, _ = mine_negatives(
        f_a, _column_map(device), u_b, 10, pool_size=24, num_candidates=None, generator=_gen(0)
    )
    other, _ = mine_negatives(
        f_a, _column_map(device), u_b, 10, pool_size=24, num_candidates=None, generator=_gen(1)
    )
    assert torch.equal(u_neg, again) and not torch.equal(u_neg, other)


@pytest.mark.parametrize("mode", ["hard", "random"])
@pytest.mark.parametrize("num_candidates", [None, 100])
def test_excluded_radius_is_respected(mode, num_candidates, device):
    # The true match sits where the features are closest: hard mining must look around it.
    f_a = torch.tensor([[[20.0], [3.0]]], device=device)
    u_b = torch.tensor([[[20.5, 4.5], [3.2, 2.0]]], device=device)
    radius = 2.5
    u_neg, valid = mine_negatives(
        f_a,
        _column_map(device),
        u_b,
        16,
        pool_size=40,
        mode=mode,
        exclude_radius=radius,
        num_candidates=num_candidates,
        generator=_gen(2),
    )
    assert valid.all()
    dist = (u_neg - u_b[:, :, None]).norm(dim=-1)
    assert (dist >= radius).all()
    if mode == "hard" and num_candidates is None:
        # The 40 closest admissible candidates lie within 4 columns of the anchor's feature.
        assert ((u_neg[0, 0, :, 0] - 0.5 - 20).abs() <= 4).all()


def test_random_mining_spreads_over_the_image(device):
    f_a = torch.full((1, 1, 1), 20.0, device=device)
    u_b = torch.tensor([[[20.5, 4.5]]], device=device)
    u_neg, valid = mine_negatives(
        f_a, _column_map(device), u_b, 64, mode="random", num_candidates=None, generator=_gen(3)
    )
    cols = u_neg[0, 0, :, 0] - 0.5
    assert valid.all() and (cols < 10).any() and (cols > 28).any()


def test_too_few_admissible_candidates_are_marked_invalid(device):
    F_b = torch.rand(1, 4, 3, 3, generator=_gen(4)).to(device)
    f_a = torch.rand(1, 1, 4, generator=_gen(5)).to(device)
    u_b = torch.tensor([[[1.5, 1.5]]], device=device)
    # Radius 1.2 excludes the centre and its 4 neighbours: 4 corners remain.
    u_neg, valid = mine_negatives(
        f_a, F_b, u_b, 6, pool_size=300, exclude_radius=1.2, generator=_gen(6)
    )
    assert u_neg.shape == (1, 1, 6, 2)
    assert valid.sum() == 4
    corners = {(0.5, 0.5), (2.5, 0.5), (0.5, 2.5), (2.5, 2.5)}
    assert {tuple(p) for p in u_neg[0, 0][valid[0, 0]].tolist()} == corners
    with pytest.raises(ValueError, match="mode"):
        mine_negatives(f_a, F_b, u_b, 2, mode="semi-hard")


def test_default_step_schedule_and_no_gradient(device):
    F_b = torch.rand(2, 8, 16, 16, generator=_gen(7)).to(device).requires_grad_()
    f_a = torch.rand(2, 5, 8, generator=_gen(8)).to(device).requires_grad_()
    u_b = torch.rand(2, 5, 2, generator=_gen(9)).to(device) * 16
    u_neg, valid = mine_negatives(f_a, F_b, u_b, 8, step=0, generator=_gen(10))
    assert u_neg.shape == (2, 5, 8, 2) and valid.all() and not u_neg.requires_grad
    # At step 1e6 the pool holds the 5 closest: 5 valid negatives, 3 padded invalid ones.
    u_neg, valid = mine_negatives(f_a, F_b, u_b, 8, step=10**6, generator=_gen(10))
    assert u_neg.shape == (2, 5, 8, 2) and (valid.sum(-1) == 5).all()


@pytest.mark.parametrize("mode", ["hard", "random"])
def test_whole_level_by_default_and_chunking_does_not_change_the_result(mode, device):
    F_b = torch.rand(2, 8, 24, 32, generator=_gen(11)).to(device)
    f_a = torch.rand(2, 7, 8, generator=_gen(12)).to(device)
    u_b = (torch.rand(2, 7, 2, generator=_gen(13)) * torch.tensor([32.0, 24.0])).to(device)
    kw = dict(pool_size=20, mode=mode, exclude_radius=2.0)
    default = mine_negatives(f_a, F_b, u_b, 6, generator=_gen(14), **kw)
    whole = mine_negatives(f_a, F_b, u_b, 6, num_candidates=0, generator=_gen(14), **kw)
    tiny_chunks = mine_negatives(f_a, F_b, u_b, 6, generator=_gen(14), chunk_elements=1, **kw)
    for a, b, c in zip(default, whole, tiny_chunks):
        assert torch.equal(a, b) and torch.equal(a, c)
    if mode == "hard":  # exact: each negative is among the 20 closest admissible pixels
        feats = F_b.flatten(2).transpose(1, 2)  # (B, P, C)
        ys, xs = torch.meshgrid(
            torch.arange(24, device=device), torch.arange(32, device=device), indexing="ij"
        )
        xy = torch.stack([xs, ys], -1).reshape(-1, 2) + 0.5
        d = torch.cdist(f_a, feats)
        d = d.masked_fill(torch.cdist(u_b, xy.expand(2, -1, -1)) < 2.0, float("inf"))
        kth = d.topk(20, dim=-1, largest=False).values[..., -1:]  # (B, K, 1)
        u_neg = default[0]
        idx = ((u_neg[..., 1] - 0.5) * 32 + (u_neg[..., 0] - 0.5)).long()
        assert (d.gather(-1, idx) <= kth).all()
