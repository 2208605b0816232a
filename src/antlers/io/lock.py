"""An exclusive lock on a file, held for a block, between processes (``flock``).

    with locked(folder / "lock", "waiting for another process building the cache"):
        ...  # one process at a time

The lock is the kernel's, on the open file: a process that dies holding it releases it.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["locked"]


@contextlib.contextmanager
def locked(path: Path, waiting: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); print ``waiting`` on
    stderr when another process holds it first."""
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
