"""An exclusive lock on an output folder, so two runs never write into the same one at once.

:class:`RunLock` holds an OS file lock (``fcntl.flock``) on ``OUT/.lock`` for the duration of a
run. The operating system releases it when the process exits or is killed, so a crashed run
never leaves a stale lock behind; the file itself stays (removing it would let two runs lock
two different files of the same name).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunLockedError(ValueError):
    """Another process holds the lock of the output folder."""


class RunLock:
    """``with RunLock(out): ...`` -- raises :class:`RunLockedError` if another run holds it."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunLockedError(
                f"{self.folder} is in use by another run (process {holder} holds {self.path}); "
                "wait for it to finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
