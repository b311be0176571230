"""Sharding queries over processes started by ``torchrun`` (``torch.distributed``, gloo on CPU).

Rank ``r`` of ``N`` localizes queries ``r, r + N, ...`` and appends each record, as soon as its
query is done, to its own log ``log.rank<r>.jsonl``. After a barrier rank 0 merges the rank logs
into the run's log (``log.jsonl``, in the original query order) and deletes them. Rank 0 also
merges leftover rank logs when a run starts, so a distributed run that was interrupted keeps
every rank's finished queries (whatever the number of processes of the next run). The reference
feature cache is built once, by rank 0, while the other ranks wait at a barrier and then only
read it. Without ``torchrun``
(``WORLD_SIZE`` unset or 1) everything runs in this process and nothing is initialised.

    torchrun --nproc_per_node=4 -m s2dloc localize --map MAP --queries Q.txt --out OUT
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from s2dloc.localization.io import read_log, record_line
from s2dloc.utils.io import write_text_atomic

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """This process's ``rank`` among ``world`` processes (``0`` of ``1`` when not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every process (a no-op in a single process)."""
        if self.active:
            dist.barrier()

    def agree(self, ok: bool) -> bool:
        """True when every process passes ``ok=True`` (so one failure stops all of them)."""
        if not self.active:
            return ok
        flag = torch.tensor([int(ok)])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def shard(self, items: Sequence[T]) -> list[T]:
        """Items ``rank, rank + world, ...`` of ``items``."""
        return list(items[self.rank :: self.world])


def init(timeout_min: float = 60.0) -> Context:
    """Join the process group set up by ``torchrun`` (gloo), or a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context()
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(minutes=timeout_min))
    ctx = Context(dist.get_rank(), dist.get_world_size())
    logger.info("rank %d of %d", ctx.rank, ctx.world)
    return ctx


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_log_path(log_path: str | Path, rank: int) -> Path:
    """Where rank ``rank`` appends its records: ``log.rank<rank>.jsonl`` beside the log."""
    log_path = Path(log_path)
    return log_path.with_name(f"{log_path.stem}.rank{rank}{log_path.suffix}")


def rank_logs(log_path: str | Path) -> list[Path]:
    """The rank logs beside ``log_path`` (of any earlier run), by rank."""
    log_path = Path(log_path)
    found = log_path.parent.glob(f"{log_path.stem}.rank*{log_path.suffix}")
    ranks = {}
    for p in found:
        r = p.name[len(log_path.stem) + 5 : len(p.name) - len(log_path.suffix)]
        if r.isdigit():
            ranks[int(r)] = p
    return [ranks[r] for r in sorted(ranks)]


def merge_rank_logs(log_path: str | Path, order: Sequence[str] = ()) -> dict[str, dict]:
    """Merge every rank log into the log (written atomically, records in the query order
    ``order``, others after them), then delete the rank logs; returns the merged records.

    A query already in the log keeps its record (one record per query, never two). A log out
    of that order (a run resumed after an interrupted distributed one appends the queries
    the ranks had not finished) is put in it even without rank logs.
    """
    log_path = Path(log_path)
    parts = rank_logs(log_path)
    records = read_log(log_path)
    for p in parts:
        for name, rec in read_log(p).items():
            records.setdefault(name, rec)
    rank = {n: i for i, n in enumerate(order)}
    names = sorted(records, key=lambda n: rank.get(n, len(rank)))
    if not parts and names == list(records):
        return records
    write_text_atomic(log_path, "".join(record_line(records[n]) for n in names))
    for p in parts:
        p.unlink()
    logger.info("merged %d rank logs into %s (%d records)", len(parts), log_path, len(names))
    return {n: records[n] for n in names}
