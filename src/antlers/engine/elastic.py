"""torchrun's restarts (``--max-restarts N``): a restarted worker finds its run and resumes.

When a worker dies, torchrun stops the others and starts them all again with the same command
and ``TORCHELASTIC_RESTART_COUNT`` one higher. A restart must not open a new run folder: on the
first start, when restarts are allowed, rank 0 writes a marker,
``OUT/TASK/.torchrun-<TORCHELASTIC_RUN_ID>``, naming the run folder it created; a restart reads
it and resumes that folder from ``state/last.pt`` (saved at each epoch's end and every
``--save-every`` steps), as ``--resume`` would. The marker lives beside the run folders, so every
node must see the same ``--out`` (shared storage). Without torchrun, or on a first start,
nothing here changes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from antlers.io.files import atomic_write

__all__ = ["remember_run", "restart_count", "restarted_run"]


def restart_count() -> int:
    """How many times torchrun has restarted this worker group (0: the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def _marker(out: str, task: str) -> Path | None:
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    return Path(out) / task / f".torchrun-{run_id}" if run_id else None


def remember_run(out: str, task: str, run_dir: Path) -> None:
    """On a first start under torchrun with restarts allowed (``--max-restarts`` > 0; rank 0):
    note ``run_dir`` for the restarts."""
    marker = _marker(out, task)
    restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
    if marker is not None and restarts > 0 and restart_count() == 0:
        atomic_write(marker, str(Path(run_dir).resolve()) + "\n")


def restarted_run(out: str, task: str) -> Path | None:
    """On a restart: the run folder the first start created, if it noted one."""
    marker = _marker(out, task)
    if marker is None or restart_count() == 0 or not marker.is_file():
        return None
    return Path(marker.read_text().strip())
