"""What every benchmark shares: the machine's description and recording a section of the docs."""

from __future__ import annotations

import platform
from pathlib import Path

from antlers.io.files import atomic_write

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or what platform knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_section(section: list[str], path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section whose first line is ``section[0]`` (a '## ' heading)."""
    heading = section[0]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        lines[start:end] = [*section, ""] if end < len(lines) else section  # keep the gap
    else:
        lines += ["", *section]
    atomic_write(path, "\n".join(lines).rstrip("\n") + "\n")
