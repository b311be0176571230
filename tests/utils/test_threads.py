import threading

import torch

from s2dloc.utils.threads import worker_pool


def test_worker_pool_is_kept_per_calling_thread_and_sized_by_torch():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        pool = worker_pool()
        assert worker_pool() is pool and pool._max_workers == 2
        names = set(pool.map(lambda _: threading.current_thread().name, range(8)))
        assert 1 <= len(names) <= 2 and threading.current_thread().name not in names
        other = []
        thread = threading.Thread(target=lambda: other.append(worker_pool()))
        thread.start()
        thread.join()
        assert other[0] is not pool
        torch.set_num_threads(1)
        assert worker_pool() is not pool and worker_pool()._max_workers == 1
    finally:
        torch.set_num_threads(before)
