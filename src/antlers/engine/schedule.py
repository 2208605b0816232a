"""Learning-rate schedules as pure functions of training progress in [0, 1].

Progress is ``step / total_steps``, or ``elapsed / budget`` when training for a time budget
(``--time``), so the same schedule fits either plan.

* ``onecycle`` (Smith & Topin 2019): linear warm-up from ``peak/25`` to ``peak`` over the first
  ``warmup`` fraction, then linear decay to 0 — the shape used by the fast-training records.
* ``cosine``: a short linear warm-up, then half a cosine from ``peak`` to 0.
* ``constant``: ``peak`` throughout.
"""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(schedule: str, progress: float, peak: float, warmup: float = 0.2) -> float:
    """The learning rate at ``progress`` (clamped to [0, 1]) of the named schedule."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return peak
    if schedule == "onecycle":
        start = peak / 25
        if p < warmup:
            return start + (peak - start) * p / warmup
        return peak * (1 - p) / (1 - warmup)
    if schedule == "cosine":
        ramp = min(warmup, 0.05)
        if p < ramp:
            return peak * p / ramp
        return 0.5 * peak * (1 + math.cos(math.pi * (p - ramp) / (1 - ramp)))
    raise ValueError(f"unknown schedule {schedule!r}; known: onecycle, cosine, constant")
