"""Progress: a tqdm bar on a terminal, plain lines otherwise (CI logs, pipes, notebooks' files).

Used by training (only rank 0 reports; the bar shows it/s, ETA, the loss and the last validation
metrics) and by the parallel image decoder (``data/decode.py``). ``unit`` names what is counted.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Per-epoch progress over ``total`` steps; ``update`` after each step, ``close`` at the end."""

    def __init__(
        self,
        total: int,
        desc: str,
        enabled: bool = True,
        stream: TextIO | None = None,
        unit: str = "steps",
    ):
        self.stream = stream or sys.stderr
        self.unit = unit
        self.enabled = enabled
        self.total, self.desc = total, desc
        self.tty = enabled and self.stream.isatty()
        self.bar = None
        self.start = time.perf_counter()
        self.count = 0
        self.next_line = 0.25
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=desc, file=self.stream, leave=False, dynamic_ncols=True
            )

    def update(self, count: int = 1, **values: float) -> None:
        self.count += count
        if not self.enabled:
            return
        text = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self.bar is not None:
            self.bar.update(count)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.total and self.count / self.total >= self.next_line and self.count < self.total:
            rate = self.count / max(time.perf_counter() - self.start, 1e-9)
            eta = (self.total - self.count) / max(rate, 1e-9)
            print(
                f"{self.desc}: {self.count}/{self.total} {self.unit}, {rate:.1f} it/s, "
                f"ETA {eta:.0f} s" + (f", {text}" if text else ""),
                file=self.stream,
                flush=True,
            )
            while self.count / self.total >= self.next_line:
                self.next_line += 0.25

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
