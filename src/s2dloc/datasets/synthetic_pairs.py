"""Training pairs from the synthetic multi-condition world: a database view vs a query view."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .cscd_pairs import CSCDPairs
from .pairs import PairDataset
from .synthetic.export import dense_correspondences, nearest_database


class SyntheticPairs(PairDataset):
    """Database (reference) view vs query view under another condition.

    ``world`` is a :class:`~s2dloc.datasets.synthetic.world.World`: each query is paired with
    its ``num_ref`` nearest database views, correspondences from
    :func:`~s2dloc.datasets.synthetic.export.dense_correspondences` (grid ``stride``). Or the
    folder written by :func:`~s2dloc.datasets.synthetic.write.write_world`: its
    ``correspondences/*.mat`` with images under ``images/`` and conditions from ``world.json``.
    """

    def __init__(self, world: Any, num_ref: int = 1, stride: int = 4, **kw):
        super().__init__(**kw)
        self.stride = stride
        if isinstance(world, str | Path):
            root = Path(world)
            if not (root / "world.json").is_file():
                raise FileNotFoundError(f"{root} has no world.json: not a folder from write_world")
            meta = json.loads((root / "world.json").read_text())
            conds = {v["name"]: v["condition"] for v in meta["images"]}
            self.cscd = CSCDPairs(root, "correspondences/*.mat", root / "images", conds, **kw)
            self.world, self.pairs = None, []
        else:
            self.cscd, self.world = None, world
            self.pairs = [
                (world.database[i], q)
                for q in world.queries
                for i in nearest_database(world, q, num_ref)
            ]

    def __len__(self) -> int:
        return len(self.cscd) if self.cscd is not None else len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.cscd is not None:
            self.cscd.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.cscd is not None:
            return self.cscd[index]
        return super().__getitem__(index)

    def load(self, index, rng):
        ref, q = self.pairs[index]
        seed = int(rng.integers(2**31))
        c = dense_correspondences(ref, q, self.stride, seed, len(self.world.scene.primitives))
        return ref.rgb, q.rgb, c.pt_i, c.pt_j, ref.name, q.name, q.condition
