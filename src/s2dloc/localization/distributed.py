"""Sharding queries over processes started by ``torchrun`` (``torch.distributed``, gloo on CPU).

Rank ``r`` of ``N`` localizes queries ``r, r + N, ...``, writes its records to a part file
(atomically), and after a barrier rank 0 merges the parts with the records of earlier runs into
one JSON-lines log in the original query order. The reference feature cache is built once, by
rank 0, while the other ranks wait at a barrier and then only read it. Without ``torchrun``
(``WORLD_SIZE`` unset or 1) everything runs in this process and nothing is initialised.

    torchrun --nproc_per_node=4 -m s2dloc localize --map MAP --queries Q.txt --out OUT
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import torch
import torch.distributed as dist

from s2dloc.localization.io import read_log
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


def part_path(log_path: str | Path, ctx: Context) -> Path:
    """Where rank ``ctx.rank`` writes its records before the merge."""
    log_path = Path(log_path)
    return log_path.with_name(f"{log_path.stem}.part{ctx.rank}-of-{ctx.world}{log_path.suffix}")


def write_part(log_path: str | Path, ctx: Context, records: Iterable[dict]) -> Path:
    """Write this rank's records (JSON lines) atomically to its part file."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    return write_text_atomic(part_path(log_path, ctx), text)


def merge_parts(log_path: str | Path, world: int, order: Sequence[str]) -> dict[str, dict]:
    """Merge the log's records and every rank's part into the log (written atomically), in the
    query order ``order`` (records of names not in ``order`` follow), then delete the parts."""
    log_path = Path(log_path)
    records = read_log(log_path)
    parts = [part_path(log_path, Context(r, world)) for r in range(world)]
    for p in parts:
        if not p.exists():
            raise FileNotFoundError(f"part {p} is missing: a rank failed before writing it")
        records.update(read_log(p))
    rank = {n: i for i, n in enumerate(order)}
    names = sorted(records, key=lambda n: rank.get(n, len(rank)))
    write_text_atomic(log_path, "".join(json.dumps(records[n]) + "\n" for n in names))
    for p in parts:
        p.unlink()
    logger.info("merged %d parts into %s (%d records)", world, log_path, len(names))
    return {n: records[n] for n in names}
