"""What the machine has free: the one place that reads it, for every layer that must refuse work
that would not fit (a training step, a data set resized in memory); and where antlers keeps the
files it can always make again (downloads, decoded caches)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["available_ram", "cache_root", "cpu_name", "gib"]


def cache_root() -> Path:
    """``$ANTLERS_CACHE``, else ``~/.cache/antlers``: downloads (``<name>/``) and decoded
    caches (``decoded/``)."""
    configured = os.environ.get("ANTLERS_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "antlers"


def available_ram() -> int | None:
    """Bytes of memory the kernel can give without swapping (``MemAvailable`` in /proc/meminfo),
    or None where it cannot be read (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def gib(n: float) -> str:
    """Bytes as GiB for a message: ``gib(3 * 2**30) == "3.0 GiB"``."""
    return f"{n / 2**30:.1f} GiB"


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
