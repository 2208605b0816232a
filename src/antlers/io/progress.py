"""Progress: a tqdm bar on a terminal, plain lines otherwise (CI logs, pipes, notebooks' files).

Only rank 0 reports. The bar shows it/s, ETA, the loss and the last validation metrics.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Per-epoch progress over ``total`` steps; ``update`` after each step, ``close`` at the end."""

    def __init__(self, total: int, desc: str, enabled: bool = True, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
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

    def update(self, **values: float) -> None:
        self.count += 1
        if not self.enabled:
            return
        text = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.total and self.count / self.total >= self.next_line and self.count < self.total:
            rate = self.count / max(time.perf_counter() - self.start, 1e-9)
            print(
                f"{self.desc}: {self.count}/{self.total} steps, {rate:.1f} it/s, {text}",
                file=self.stream,
                flush=True,
            )
            self.next_line += 0.25

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
