"""argparse types for numbers with a range: a value outside it is a usage error (exit 2) whose
one line names the flag, the value and the allowed range."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["float_at_least", "int_in"]


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high] (high None: no upper bound)."""
    allowed = f">= {low}" if high is None else f"in {low}..{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{value} is out of range (allowed: {allowed})")
        return value

    return parse


def float_at_least(low: float) -> Callable[[str], float]:
    """An argparse type: a finite number >= low."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"{text} is out of range (allowed: >= {low:g})")
        return value

    return parse
