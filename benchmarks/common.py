"""What every benchmark shares: the machine's description, recording a section of the docs and
the warning when the machine is busy."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from antlers.io.files import atomic_write
from antlers.io.system import cpu_name as cpu_model  # noqa: F401 - the machine line, for every script

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = REPO / "docs" / "benchmarks.md"
RECORDED = "<!-- recorded by the benchmark script; each run rewrites down to the end mark -->"
END_RECORDED = "<!-- end of the recorded lines -->"


def matmul_peak(dtype: object = None, n: int = 2048, repeats: int = 10) -> float:
    """This machine's achievable GFLOP/s now: the fastest of ``repeats`` n x n matmuls (2 n^3
    FLOPs each) in ``dtype`` (float32 by default) at torch's current thread count: the reference
    for a training benchmark's FLOP utilisation, measured in the same run."""
    import time

    import torch

    dtype = dtype or torch.float32
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def publish(section: list[str], record: bool) -> None:
    """Print a benchmark's section and, with ``record``, write it into docs/benchmarks.md."""
    print("\n".join(section))
    if record:
        record_section(section)
        print("recorded in docs/benchmarks.md")


def record_section(section: list[str], path: Path = BENCHMARKS_MD) -> None:
    """Write a benchmark's recorded lines into its section of ``docs/benchmarks.md``.

    ``section[0]`` is the section's '## ' heading; the rest is what the run recorded (the machine,
    the table, the targets). In the docs those lines sit between the ``RECORDED`` and
    ``END_RECORDED`` comment lines, and only they are replaced: the command, the target and the
    reading written by hand around them stay (reread them against the new figures). A section
    without the markers is replaced whole, and a missing one is appended, both with the markers.
    """
    heading, body = section[0], list(section[1:])
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    recorded = [RECORDED, "", *body, "", END_RECORDED]
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").splitlines()
    if heading in lines:
        start = lines.index(heading)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        inside = lines[start:end]
        if RECORDED in inside and END_RECORDED in inside[inside.index(RECORDED) :]:
            first = start + inside.index(RECORDED)
            last = first + lines[first:end].index(END_RECORDED)
            lines[first : last + 1] = recorded
        else:
            new = [heading, "", *recorded]
            lines[start:end] = [*new, ""] if end < len(lines) else new  # keep the gap
    else:
        lines += ["", heading, "", *recorded]
    atomic_write(path, "\n".join(lines).rstrip("\n") + "\n")


def warn_if_busy() -> None:
    """Say so when other processes already load the cores: spinning OpenMP threads then slow
    every model down several times (docs/experiments/openmp-threads.md)."""
    load = os.getloadavg()[0]
    if load > 0.5 and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print(
            f"warning: 1-min load average {load:.1f} before the first run: if other processes "
            f"still use the cores, the timings will be slow; record on an idle machine, or run "
            f"with OMP_WAIT_POLICY=PASSIVE (or --threads 1) to share the cores",
            file=sys.stderr,
            flush=True,
        )
