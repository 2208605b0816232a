"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one.

Every output antlers writes (figures, HTML, JSON, CSV, checkpoints) goes through here: the data is
written to a temporary file in the same folder, flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_with"]


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then atomically move it to ``path``.

    Parent folders are created. On any exception the temporary file is removed and the previous
    content of ``path`` (if any) is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Atomically write ``data`` (bytes, or str encoded as UTF-8) to ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_with(path, lambda f: f.write(payload))
