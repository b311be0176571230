"""Queries per second of the localization pipeline at 640x480 with top-5 references (cached
map features), and the time split by stage.

    .venv/bin/python benchmarks/localize.py [--num-db 10] [--num-query 4] [--extractor NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from s2dloc.datasets.synthetic.world import PRESETS, generate_world
from s2dloc.datasets.synthetic.write import write_world
from s2dloc.localization import Localizer, Map
from s2dloc.localization.io import read_queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-db", type=int, default=10)
    parser.add_argument("--num-query", type=int, default=4)
    parser.add_argument("--extractor", default="photometric")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(PRESETS["demo"], num_db=args.num_db, num_query=args.num_query,
                              width=640, height=480, query_conditions=("reference",))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_world(generate_world(cfg, progress=False), root, progress=False)
        map_ = Map.load(root)
        queries = read_queries(root / "queries_with_intrinsics.txt", root / "images")
        conf = {"extractor": args.extractor, "retrieval": {"num_refs": 5}}
        t = time.perf_counter()
        loc = Localizer(map_, conf, cache=root / "cache.h5", progress=False)
        t_map = time.perf_counter() - t
        loc.localize(queries[0])  # warm-up (numba compilation, allocations)
        t = time.perf_counter()
        results = [loc.localize(q) for q in queries]
        total = time.perf_counter() - t
    stages = ["extract", "retrieve", "match", "pnp", "fpnp"]
    split = {s: np.mean([r.timings.get(s, 0.0) for r in results]) for s in stages}
    print(f"map features: {len(map_)} images in {t_map:.2f} s (cached once)")
    print(f"{len(results)} queries at 640x480, top-5: {len(results) / total:.2f} queries/s "
          f"({1000 * total / len(results):.0f} ms/query, {args.threads} threads)")  # fmt: skip
    print(
        "per-query stage times (ms): " + ", ".join(f"{s} {1000 * v:.0f}" for s, v in split.items())
    )


if __name__ == "__main__":
    main()
