"""Distributed runs: ``torchrun --nproc_per_node=2`` gives the results of one process; every
rank appends to its own log as queries finish, and those logs are merged at the end or, after an
interruption, when the next run starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np

from s2dloc.cli import main
from s2dloc.datasets.colmap_io import read_poses
from s2dloc.localization.distributed import (
    Context,
    merge_rank_logs,
    rank_log_path,
    rank_logs,
)

CONF = ["--conf", "s2d.match_stride=4", "retrieval.num_refs=3", "output.write_failed=true"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _localize(world_dir, out, nproc: int, script=None) -> subprocess.CompletedProcess:
    """``s2dloc localize`` under torchrun with ``nproc`` ranks (``script``: run that file,
    which takes the same arguments, in place of ``-m s2dloc``)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--master_port={_free_port()}",
        *(["-m", "s2dloc"] if script is None else [str(script)]),
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(world_dir / "queries_with_intrinsics.txt"),
        "--out",
        str(out),
        *CONF,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)


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
    assert not rank_logs(runs[2] / "log.jsonl")  # merged and removed
    assert len(list(runs[2].glob("cache-*.h5"))) == 1


def test_merge_rank_logs_keeps_query_order_and_one_record_per_query(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"name": "c", "v": "log"}) + "\n")  # from an earlier run
    r0, r1 = rank_log_path(log, 0), rank_log_path(log, 1)
    assert r1.name == "log.rank1.jsonl"
    r0.write_text(json.dumps({"name": "a"}) + "\n" + json.dumps({"name": "d"}) + '\n{"na')
    r1.write_text(json.dumps({"name": "b"}) + "\n" + json.dumps({"name": "c", "v": "rank"}) + "\n")
    rank_log_path(log, 12).write_text(json.dumps({"name": "e"}) + "\n")  # another world size
    assert [p.name for p in rank_logs(log)] == [r0.name, r1.name, "log.rank12.jsonl"]
    merged = merge_rank_logs(log, ["a", "b", "c", "d"])
    assert list(merged) == ["a", "b", "c", "d", "e"] and merged["c"]["v"] == "log"
    assert [json.loads(x)["name"] for x in log.read_text().splitlines()] == list(merged)
    assert not rank_logs(log)
    assert merge_rank_logs(log, ["e"]) == merged  # nothing to merge: the log is unchanged
    assert Context(1, 3).shard(list(range(8))) == [1, 4, 7]


def test_interrupted_distributed_run_keeps_every_ranks_records(world_dir, tmp_path, caplog):
    args = [
        "localize",
        "--map",
        str(world_dir),
        "--queries",
        str(world_dir / "queries_with_intrinsics.txt"),
        "--extractor",
        "photometric",
        *CONF,
    ]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    lines = (full / "log.jsonl").read_text().splitlines(keepends=True)
    # A 2-process run killed after rank 0 finished queries 0, 2 and rank 1 query 1 (and half of 3).
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text((full / "config.json").read_text())
    (out / "cache-photometric.h5").write_bytes((full / "cache-photometric.h5").read_bytes())
    rank_log_path(out / "log.jsonl", 0).write_text(lines[0] + lines[2])
    rank_log_path(out / "log.jsonl", 1).write_text(lines[1] + lines[3][:40])
    caplog.set_level("INFO")
    assert main([*args, "--out", str(out)]) == 0
    assert "5 queries, 3 already done" in caplog.text
    after = (out / "log.jsonl").read_text().splitlines(keepends=True)
    assert after[:3] == [lines[0], lines[1], lines[2]]  # kept byte for byte, in query order
    assert [json.loads(x)["name"] for x in after] == [json.loads(x)["name"] for x in lines]
    assert not rank_logs(out / "log.jsonl")


# Rank 1 dies at once (no buffer flushed, no handler run) when it starts its second query.
DIES = """
import os, sys
from s2dloc.cli import main
from s2dloc.localization.pipeline import Localizer

calls, localize = [], Localizer.localize

def dying(self, query, features=None):
    calls.append(query.name)
    if os.environ["RANK"] == "1" and len(calls) == 2:
        os._exit(3)
    return localize(self, query, features)

Localizer.localize = dying
sys.exit(main(sys.argv[1:]))
"""


def test_a_rank_killed_mid_run_has_written_each_finished_query(world_dir, tmp_path, caplog):
    """Every rank appends a record as its query finishes: a rank killed without flushing
    anything keeps the query it finished, and the next run only does the rest."""
    script = tmp_path / "dies.py"
    script.write_text(DIES)
    out = tmp_path / "out"
    proc = _localize(world_dir, out, 2, script)
    assert proc.returncode != 0
    ranks = {p.name: p.read_text().splitlines() for p in rank_logs(out / "log.jsonl")}
    rank1 = [json.loads(line) for line in ranks.pop("log.rank1.jsonl")]
    queries = [line.split()[0] for line in (world_dir / "queries_with_intrinsics.txt").open()]
    assert [r["name"] for r in rank1] == [queries[1]]  # its shard: queries 1, 3
    done = len(rank1) + sum(len(lines) for lines in ranks.values())
    caplog.set_level("INFO")
    args = ["localize", "--map", str(world_dir), "--queries"]
    args += [str(world_dir / "queries_with_intrinsics.txt"), "--out", str(out), *CONF]
    assert main(args) == 0
    assert f"5 queries, {done} already done" in caplog.text
    names = [json.loads(x)["name"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert names == queries and not rank_logs(out / "log.jsonl")  # query order, as one run
    written = list(read_poses(out / "results.txt"))
    assert written == [n for n in queries if n in written] and len(written) == 5
