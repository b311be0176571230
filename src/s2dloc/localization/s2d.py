"""Sparse-to-dense matching: each reference point's hypercolumn is correlated with the query's
dense hypercolumn map; the best match must pass a distinctiveness (ratio) test against the best
score outside a radius, then is refined to sub-pixel accuracy on the finer levels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Matches:
    """``K`` 2D-3D matches of one reference: query pixels ``p2d (K, 2)`` float64, indices
    ``idx (K,)`` into the reference's observations, cosine ``similarity (K,)`` and ``ratio (K,)``."""

    p2d: np.ndarray
    idx: np.ndarray
    similarity: np.ndarray
    ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)


def _parabola(lo: torch.Tensor, mid: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Sub-sample offset in [-0.5, 0.5] of the peak of a parabola through 3 samples."""
    den = lo - 2 * mid + hi
    off = torch.where(den < -1e-9, 0.5 * (lo - hi) / den.clamp(max=-1e-9), torch.zeros_like(den))
    return off.clamp(-0.5, 0.5)


def coarse_match(
    desc: torch.Tensor, dense: torch.Tensor, radius: int, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best position ``(M, 2)`` (matching-level pixels, sub-pixel), best and second-best
    (outside ``radius``) similarities ``(M,)`` of descriptors ``(M, D)`` in a map ``(D, H, W)``."""
    Dd, H, W = dense.shape
    flat = dense.reshape(Dd, H * W)
    uu = torch.arange(W).repeat(H)
    vv = torch.arange(H).repeat_interleave(W)
    pos, s1s, s2s = [], [], []
    for i in range(0, len(desc), chunk):
        sim = desc[i : i + chunk] @ flat  # (m, HW)
        s1, idx = sim.max(-1)
        u1, v1 = idx % W, idx // W
        near = ((uu[None] - u1[:, None]).abs() <= radius) & (
            (vv[None] - v1[:, None]).abs() <= radius
        )
        s2 = sim.masked_fill(near, -2.0).max(-1).values

        # Sub-pixel peak of the correlation along u and v.
        def g(du, dv, sim=sim, u1=u1, v1=v1):
            i = (v1 + dv).clamp(0, H - 1) * W + (u1 + du).clamp(0, W - 1)
            return sim.gather(1, i[:, None])[:, 0]

        du = _parabola(g(-1, 0), s1, g(1, 0)) * ((u1 > 0) & (u1 < W - 1))
        dv = _parabola(g(0, -1), s1, g(0, 1)) * ((v1 > 0) & (v1 < H - 1))
        pos.append(torch.stack([u1 + 0.5 + du, v1 + 0.5 + dv], -1))
        s1s.append(s1)
        s2s.append(s2)
    if not pos:
        z = torch.zeros(0)
        return torch.zeros(0, 2), z, z
    return torch.cat(pos), torch.cat(s1s), torch.cat(s2s)


def refine_on_level(
    p: torch.Tensor, ref: torch.Tensor, fmap: torch.Tensor, size, radius: int
) -> torch.Tensor:
    """Refine full-resolution pixels ``(K, 2)`` by the best cosine match of reference features
    ``(K, C)`` in a ``(2 radius + 1)^2`` window of ``fmap (C, H_l, W_l)`` (+ parabolic peak)."""
    C, H, W = fmap.shape
    s = p.new_tensor([W / size[0], H / size[1]])
    c = torch.floor(p * s).long()  # pixel index containing the point
    r = torch.arange(-radius, radius + 1)
    k = len(r)
    dv, du = torch.meshgrid(r, r, indexing="ij")
    u = (c[:, :1] + du.flatten()[None]).clamp(0, W - 1)  # (K, k*k)
    v = (c[:, 1:] + dv.flatten()[None]).clamp(0, H - 1)
    feats = F.normalize(fmap.float().reshape(C, H * W), dim=0)[:, v * W + u]  # (C, K, k*k)
    sim = torch.einsum("ckn,kc->kn", feats, F.normalize(ref.float(), dim=-1)).reshape(-1, k, k)
    best = sim.flatten(1).argmax(-1)
    bi, bj = best // k, best % k
    rows = torch.arange(len(p))

    def at(i, j):
        return sim[rows, i.clamp(0, k - 1), j.clamp(0, k - 1)]

    mid = at(bi, bj)
    ou = _parabola(at(bi, bj - 1), mid, at(bi, bj + 1)) * ((bj > 0) & (bj < k - 1))
    ov = _parabola(at(bi - 1, bj), mid, at(bi + 1, bj)) * ((bi > 0) & (bi < k - 1))
    q = torch.stack([u[rows, best] + 0.5 + ou, v[rows, best] + 0.5 + ov], -1)
    return q / s


def match_s2d(
    desc: torch.Tensor,
    dense: torch.Tensor,
    query_maps: list[torch.Tensor],
    ref_features: list[torch.Tensor],
    size,
    match_level: int,
    conf: dict,
) -> Matches:
    """Match reference points (hypercolumns ``desc (M, D)``, per-level features ``(M, C_l)``) in
    the query (dense hypercolumn ``(D, H_m, W_m)``, levels ``(C_l, H_l, W_l)``, image ``size``)."""
    pos, s1, s2 = coarse_match(desc, dense, int(conf["radius"]))
    d1 = (2 - 2 * s1).clamp_min(0).sqrt()
    d2 = (2 - 2 * s2).clamp_min(0).sqrt()
    ratio = d1 / d2.clamp_min(1e-9)
    keep = (ratio < conf["ratio"]) & (s1 >= conf["min_similarity"])
    idx = torch.nonzero(keep)[:, 0]
    Hm, Wm = dense.shape[-2:]
    p = pos[idx].double() * torch.tensor([size[0] / Wm, size[1] / Hm], dtype=torch.float64)
    if conf["refine"] and len(idx):
        finer = [i for i, m in enumerate(query_maps)
                 if m.shape[-1] > Wm and m.shape[0] >= conf["refine_min_channels"]]  # fmt: skip
        for li in sorted(finer, key=lambda i: query_maps[i].shape[-1]):
            p = refine_on_level(p, ref_features[li][idx], query_maps[li], size,
                                int(conf["refine_radius"])).double()  # fmt: skip
    return Matches(p.numpy(), idx.numpy(), s1[idx].numpy(), ratio[idx].numpy())
