"""Worker threads kept for the life of the thread that asks for them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_local = threading.local()


def worker_pool() -> ThreadPoolExecutor:
    """The calling thread's pool of ``torch.get_num_threads()`` workers, created on first use
    (and again when that number changes). Created by the caller, the workers share its
    scheduling priority (a background extraction's stay in the background), and no call pays
    for starting threads (a few milliseconds each on a busy machine)."""
    n = max(1, torch.get_num_threads())
    pool = getattr(_local, "pool", None)
    if pool is None or getattr(_local, "workers", 0) != n:
        if pool is not None:
            pool.shutdown(wait=False)
        pool = _local.pool = ThreadPoolExecutor(n)
        _local.workers = n
    return pool
