"""``torchrun --nproc_per_node=2 -m s2dloc localize`` gives the same results as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np

from s2dloc.datasets.colmap_io import read_poses
from s2dloc.localization.distributed import Context, merge_parts, write_part


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _localize(world_dir, out, nproc: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           f"--master_port={_free_port()}", "-m", "s2dloc", "localize", "--map", str(world_dir),
           "--queries", str(world_dir / "queries_with_intrinsics.txt"), "--out", str(out),
           "--conf", "s2d.match_stride=4", "retrieval.num_refs=3"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_two_processes_match_one(world_dir, tmp_path):
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        proc = _localize(world_dir, out, n)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[n] = out
    one, two = (read_poses(runs[n] / "results.txt") for n in (1, 2))
    assert list(one) == list(two) and len(one) == 5  # same names, same (query) order
    for name, (q, t) in one.items():
        np.testing.assert_allclose(two[name][0], q, atol=1e-6)
        np.testing.assert_allclose(two[name][1], t, atol=1e-6)
    names = [json.loads(line)["name"] for line in (runs[2] / "log.jsonl").read_text().splitlines()]
    assert names == list(one)
    assert not list(runs[2].glob("log.part*"))  # parts merged and removed
    assert len(list(runs[2].glob("cache-*.h5"))) == 1


def test_merge_parts_keeps_query_order(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"name": "c"}) + "\n")  # from an earlier run
    write_part(log, Context(0, 2), [{"name": "a"}, {"name": "d"}])
    write_part(log, Context(1, 2), [{"name": "b"}])
    merged = merge_parts(log, 2, ["a", "b", "c", "d"])
    assert list(merged) == ["a", "b", "c", "d"]
    assert [json.loads(x)["name"] for x in log.read_text().splitlines()] == list(merged)
    assert not list(tmp_path.glob("log.part*"))
    assert Context(1, 3).shard(list(range(8))) == [1, 4, 7]
