"""Image retrieval: top-k references by cosine similarity of global descriptors, or from an
external hloc pairs file (``query ref`` per line)."""

from __future__ import annotations

from pathlib import Path

import torch

from s2dloc.datasets.colmap_io import read_pairs


class Retrieval:
    """Nearest references by global descriptor (``db (R, G)`` L2-normalised rows)."""

    def __init__(self, names: list[str], db: torch.Tensor):
        if len(names) != len(db):
            raise ValueError(f"{len(names)} names for {len(db)} descriptors")
        self.names = list(names)
        self.db = db.float()

    def __call__(self, query_desc: torch.Tensor, k: int) -> list[tuple[str, float]]:
        """Top-``k`` ``(name, cosine similarity)`` for a descriptor ``(G,)``, best first."""
        sim = self.db @ query_desc.float()
        top = torch.topk(sim, min(k, len(self.names)))
        return [(self.names[i], float(s)) for s, i in zip(top.values, top.indices.tolist())]


def pairs_from_file(path: str | Path, map_names: set[str] | None = None) -> dict[str, list[str]]:
    """``{query: [ref, ...]}`` in file order; references not in the map raise ``ValueError``."""
    out: dict[str, list[str]] = {}
    for q, r in read_pairs(path):
        if map_names is not None and r not in map_names:
            raise ValueError(f"{path}: reference {r!r} (for {q!r}) is not in the map")
        out.setdefault(q, [])
        if r not in out[q]:
            out[q].append(r)
    return out
