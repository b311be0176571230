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
    ``idx (K,)`` into the reference's observations, cosine ``similarity (K,)`` and
    ``ratio (K,)``."""

    p2d: np.ndarray
    idx: np.ndarray
    similarity: np.ndarray
    ratio: np.ndarray

    def __len__(self) -> int:
        return len(self.idx)


@dataclass
class RefMatches:
    """2D-3D matches of a query with one reference image.

    ``p2d (K, 2)`` float64 query pixels (COLMAP convention), ``obs (K,)`` int64 indices into the
    reference's observations (its keypoints / ``point3D_ids``), ``point3D_ids (K,)`` int64,
    world points ``points3d (K, 3)`` float64, ``scores (K,)`` cosine similarities, ``ratio (K,)``
    distinctiveness ratios (NaN when unknown) and the PnP ``inliers (K,)`` bool mask (all False
    until PnP ran on them, or when it failed).
    """

    p2d: np.ndarray
    obs: np.ndarray
    point3D_ids: np.ndarray
    points3d: np.ndarray
    scores: np.ndarray
    ratio: np.ndarray
    inliers: np.ndarray | None = None

    def __post_init__(self):
        self.p2d = np.asarray(self.p2d, np.float64).reshape(-1, 2)
        k = len(self.p2d)
        self.points3d = np.asarray(self.points3d, np.float64).reshape(-1, 3)
        if self.inliers is None:
            self.inliers = np.zeros(k, bool)
        shapes = {
            "obs": np.shape(self.obs),
            "point3D_ids": np.shape(self.point3D_ids),
            "points3d": (len(self.points3d),),
            "scores": np.shape(self.scores),
            "ratio": np.shape(self.ratio),
            "inliers": np.shape(self.inliers),
        }
        bad = {n: s for n, s in shapes.items() if s != (k,)}
        if bad:
            raise ValueError(f"RefMatches with {k} query pixels: expected ({k},) for {bad}")

    def __len__(self) -> int:
        return len(self.p2d)


def _parabola(lo: torch.Tensor, mid: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Sub-sample offset in [-0.5, 0.5] of the peak of a parabola through 3 samples."""
    den = lo - 2 * mid + hi
    off = torch.where(den < -1e-9, 0.5 * (lo - hi) / den.clamp(max=-1e-9), torch.zeros_like(den))
    return off.clamp(-0.5, 0.5)


def _window(radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(du, dv)`` offsets ``(n,)`` of a ``(2 radius + 1)^2`` window, rows (dv) outer."""
    r = torch.arange(-radius, radius + 1)
    dv, du = torch.meshgrid(r, r, indexing="ij")
    return du.flatten(), dv.flatten()


def _row_max(sim: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``sim.max(-1)`` of ``sim (m, n)``, ``n`` a multiple of ``block``: the maxima and the
    index of each one's first occurrence. Through the maxima of blocks of ``block`` columns
    and one block per row, which reads ``sim`` once vectorised where torch's maximum with
    indices does not vectorise on the CPU."""
    m, n = sim.shape
    blocks = sim.view(m, n // block, block)
    best, b = blocks.amax(-1).max(-1)  # the first block holding each row's maximum
    within = blocks.gather(1, b[:, None, None].expand(m, 1, block))[:, 0]
    return best, b * block + within.argmax(-1)


def coarse_match(
    desc: torch.Tensor, dense: torch.Tensor, radius: int, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Best position ``(M, 2)`` (matching-level pixels, sub-pixel), best and second-best
    (outside ``radius``) similarities ``(M,)`` of descriptors ``(M, D)`` in a map ``(D, H, W)``.

    Per chunk of rows: one float32 matrix product into a buffer reused by every chunk (a fresh
    ``chunk x HW`` tensor per chunk costs its page faults each time), the row maxima, the 4
    neighbours of each maximum (parabolic sub-pixel peak), then the ``(2 radius + 1)^2`` window
    around the maximum is overwritten with -2 in place (a scatter of ``M x window`` entries
    rather than an ``M x HW`` mask) and the maxima of what is left are the second-best scores.
    """
    Dd, H, W = dense.shape
    flat = dense.reshape(Dd, H * W).float().contiguous()
    wu, wv = _window(radius)
    nu = torch.tensor([-1, 1, 0, 0])
    nv = torch.tensor([0, 0, -1, 1])
    pos, s1s, s2s = [], [], []
    buffer = torch.empty(min(chunk, len(desc)), H * W)
    for i in range(0, len(desc), chunk):
        rows = desc[i : i + chunk].float()
        sim = torch.mm(rows, flat, out=buffer[: len(rows)])  # (m, HW)
        s1, idx = _row_max(sim, W)
        u1, v1 = idx % W, idx // W
        # Sub-pixel peak of the correlation along u and v (neighbours clamped at the border).
        nb = (v1[:, None] + nv).clamp(0, H - 1) * W + (u1[:, None] + nu).clamp(0, W - 1)
        g = sim.gather(1, nb)  # (m, 4): u-1, u+1, v-1, v+1
        du = _parabola(g[:, 0], s1, g[:, 1]) * ((u1 > 0) & (u1 < W - 1))
        dv = _parabola(g[:, 2], s1, g[:, 3]) * ((v1 > 0) & (v1 < H - 1))
        # Clamping keeps window cells inside the image and inside the window.
        win = (v1[:, None] + wv).clamp(0, H - 1) * W + (u1[:, None] + wu).clamp(0, W - 1)
        s2 = sim.scatter_(1, win, -2.0).amax(-1)
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
    ``(K, C)`` in a ``(2 radius + 1)^2`` window of ``fmap (C, H_l, W_l)`` (+ parabolic peak).

    Only the ``K x window`` gathered features are normalised (not the whole map)."""
    C, H, W = fmap.shape
    s = p.new_tensor([W / size[0], H / size[1]])
    c = torch.floor(p * s).long()  # pixel index containing the point
    k = 2 * radius + 1
    wu, wv = _window(radius)
    u = (c[:, :1] + wu[None]).clamp(0, W - 1)  # (K, k*k)
    v = (c[:, 1:] + wv[None]).clamp(0, H - 1)
    # (H W, C) rows: a view of channels-last maps, one copy otherwise.
    rows_hw = fmap.permute(1, 2, 0).reshape(H * W, C)
    feats = F.normalize(rows_hw[v * W + u].float(), dim=-1)  # (K, k*k, C)
    ref_n = F.normalize(ref.float(), dim=-1)
    sim = torch.bmm(feats, ref_n[:, :, None])[..., 0].reshape(-1, k, k)
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


def match_batch(
    descs: list[torch.Tensor],
    dense: torch.Tensor,
    query_maps: list[torch.Tensor],
    ref_features: list[list[torch.Tensor]],
    size,
    conf: dict,
) -> list[Matches]:
    """Match the points of several references (hypercolumns ``descs[r] (M_r, D)``, per-level
    features ``ref_features[r][l] (M_r, C_l)``) in one query (dense hypercolumn
    ``(D, H_m, W_m)``, levels ``(C_l, H_l, W_l)``, image ``size``): one :class:`Matches` per
    reference. Their points are stacked so the correlation, ratio test and refinement run once
    for all (same results as one by one)."""
    counts = [len(d) for d in descs]
    if not descs or sum(counts) == 0:
        e = np.zeros(0)
        return [Matches(np.zeros((0, 2)), np.zeros(0, np.int64), e, e) for _ in descs]
    desc = torch.cat([d.float() for d in descs])
    pos, s1, s2 = coarse_match(desc, dense, int(conf["radius"]))
    d1 = (2 - 2 * s1).clamp_min(0).sqrt()
    d2 = (2 - 2 * s2).clamp_min(0).sqrt()
    ratio = d1 / d2.clamp_min(1e-9)
    keep = (ratio < conf["ratio"]) & (s1 >= conf["min_similarity"])
    idx = torch.nonzero(keep)[:, 0]
    Hm, Wm = dense.shape[-2:]
    p = pos[idx].double() * torch.tensor([size[0] / Wm, size[1] / Hm], dtype=torch.float64)
    if conf["refine"] and len(idx):
        finer = [
            i
            for i, m in enumerate(query_maps)
            if m.shape[-1] > Wm and m.shape[0] >= conf["refine_min_channels"]
        ]
        for li in sorted(finer, key=lambda i: query_maps[i].shape[-1]):
            ref = torch.cat([f[li].float() for f in ref_features])[idx]
            p = refine_on_level(p, ref, query_maps[li], size, int(conf["refine_radius"])).double()
    bounds = np.cumsum([0, *counts])
    idx_np, p_np = idx.numpy(), p.numpy()
    s1_np, ratio_np = s1[idx].numpy(), ratio[idx].numpy()
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo, hi = np.searchsorted(idx_np, [a, b])
        out.append(Matches(p_np[lo:hi], idx_np[lo:hi] - a, s1_np[lo:hi], ratio_np[lo:hi]))
    return out
