"""Atomic file writes: a reader never sees a half-written file, a crash never truncates one.

Every output antlers writes (figures, HTML, JSON, CSV, checkpoints) goes through here: the data is
written to a temporary file ``.<name>.<random>.tmp`` in the same folder, flushed and fsync'ed,
renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is
fsync'ed so that the rename itself survives a power cut. A process killed mid-write leaves its
temporary file behind and the target untouched; :func:`remove_temporaries` clears such leftovers
(``fit`` does when it resumes a run), and nothing ever reads them.

A failed write (disk full, read-only file system, ...) raises ``OSError`` with its ``errno``, the
cause and the *target* path, e.g. ``[Errno 28] No space left on device: 'runs/x/state/last.pt'``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["TEMPORARY_GLOB", "atomic_write", "atomic_write_with", "remove_temporaries"]

TEMPORARY_GLOB = ".*.tmp"  # what a write interrupted by a kill leaves beside its target


def atomic_write_with(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(f)`` on a temporary binary file, then atomically move it to ``path``.

    Parent folders are created. On any exception the temporary file is removed and the previous
    content of ``path`` (if any) is left untouched; an ``OSError`` is raised again naming ``path``.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_folder(path.parent)
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Atomically write ``data`` (bytes, or str encoded as UTF-8) to ``path``."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_with(path, lambda f: f.write(payload))


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that interrupted writes left in ``folder`` and its subfolders;
    returns them. Call it only where no other process is writing."""
    leftovers = sorted(Path(folder).rglob(TEMPORARY_GLOB))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)
    return leftovers


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
