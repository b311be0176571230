"""Keep numba's on-disk cache of the F-PnP kernels consistent with their sources.

Numba keys each cached function on its own source file only, but the machine code of a
function embeds the functions it calls from other files (``solve_level`` in
``lm_kernels.py`` holds ``evaluate`` from ``kernels.py``). After an edit of one kernel file,
the cached callers in the other files would run the old code. :func:`drop_stale_kernels`
removes this package's cached kernels whenever any kernel source changed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
KERNEL_SOURCES = ("kernel_model.py", "kernels.py", "lm_kernels.py")
STAMP = "s2dloc-kernels.sha256"


def kernel_digest(package: Path = PACKAGE) -> str:
    """SHA-256 over the kernel sources."""
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        h.update((package / name).read_bytes())
    return h.hexdigest()


def drop_stale_kernels(package: Path = PACKAGE) -> bool:
    """Delete the cached kernels in ``package/__pycache__`` if the sources changed since they
    were stamped, and stamp the current sources. Returns whether anything was dropped.

    A read-only install (numba then caches elsewhere, and nothing here can change) is left
    as it is.
    """
    cache, digest = package / "__pycache__", kernel_digest(package)
    stamp = cache / STAMP
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    stems = {Path(name).stem for name in KERNEL_SOURCES}
    try:
        stale = [f for f in cache.glob("*.nb[ci]") if f.name.split(".", 1)[0] in stems]
        for f in stale:
            f.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        tmp = cache / f"{STAMP}.{os.getpid()}.tmp"
        tmp.write_text(digest)
        tmp.replace(stamp)
    except OSError:
        return False
    return bool(stale)
