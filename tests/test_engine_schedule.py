"""Learning-rate schedules against their closed forms at sampled progress values.

The closed forms, written here independently of ``antlers.engine.schedule``:

* onecycle (Smith & Topin 2019): the piecewise-linear curve through (0, peak / 25),
  (warmup, peak) and (1, 0);
* cosine: a linear ramp from 0 to peak over r = min(warmup, 0.05), then
  peak (1 + cos(pi (p - r) / (1 - r))) / 2 (Loshchilov & Hutter 2017, SGDR eq. 5 without
  restarts, eta_min = 0);
* constant: peak.

Progress outside [0, 1] is clamped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from antlers.engine.schedule import learning_rate

PEAK = 0.3
WARMUPS = [0.02, 0.1, 0.2, 0.45]  # 0.02: below cosine's 0.05 cap of its ramp


def progress_values(warmup: float) -> list[float]:
    """Random points, the ends, and both sides of the warm-up boundaries."""
    rng = np.random.default_rng(0)
    edges = [0.0, 1.0, warmup, min(warmup, 0.05)]
    near = [e + d for e in edges for d in (-1e-9, 1e-9) if 0 <= e + d <= 1]
    return sorted([*rng.uniform(0, 1, 200).tolist(), *edges, *near])


def onecycle(p: float, warmup: float) -> float:
    return float(np.interp(p, [0.0, warmup, 1.0], [PEAK / 25, PEAK, 0.0]))


def cosine(p: float, warmup: float) -> float:
    r = min(warmup, 0.05)
    if p <= r:
        return float(np.interp(p, [0.0, r], [0.0, PEAK]))
    return PEAK * (1 + math.cos(math.pi * (p - r) / (1 - r))) / 2


@pytest.mark.parametrize("warmup", WARMUPS)
def test_onecycle_is_linear_through_its_three_knots(warmup: float) -> None:
    for p in progress_values(warmup):
        # float64 arithmetic along two routes to the same line: agreement to rounding
        assert learning_rate("onecycle", p, PEAK, warmup) == pytest.approx(
            onecycle(p, warmup), rel=1e-9, abs=1e-12
        )


@pytest.mark.parametrize("warmup", WARMUPS)
def test_cosine_is_a_short_ramp_then_half_a_cosine(warmup: float) -> None:
    for p in progress_values(warmup):
        assert learning_rate("cosine", p, PEAK, warmup) == pytest.approx(
            cosine(p, warmup), rel=1e-9, abs=1e-12
        )


def test_constant_is_the_peak_everywhere() -> None:
    for p in [-1.0, *progress_values(0.2), 2.0]:
        assert learning_rate("constant", p, PEAK, 0.2) == PEAK


@pytest.mark.parametrize("warmup", WARMUPS)
def test_warmup_ends_at_the_peak_without_a_jump(warmup: float) -> None:
    """The boundaries themselves: start, the peak at the end of the warm-up, 0 at the end."""
    lr = lambda name, p: learning_rate(name, p, PEAK, warmup)  # noqa: E731
    assert lr("onecycle", 0.0) == pytest.approx(PEAK / 25)
    assert lr("onecycle", warmup) == pytest.approx(PEAK)
    assert lr("onecycle", warmup - 1e-9) == pytest.approx(PEAK, rel=1e-6)  # left limit
    ramp = min(warmup, 0.05)
    assert lr("cosine", 0.0) == 0.0
    assert lr("cosine", ramp) == pytest.approx(PEAK)
    assert lr("cosine", ramp - 1e-9) == pytest.approx(PEAK, rel=1e-6)
    assert lr("onecycle", 1.0) == pytest.approx(0.0, abs=1e-15)
    assert lr("cosine", 1.0) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("name", ["onecycle", "cosine", "constant"])
def test_progress_outside_the_unit_interval_is_clamped(name: str) -> None:
    assert learning_rate(name, -0.5, PEAK) == learning_rate(name, 0.0, PEAK)
    assert learning_rate(name, 1.5, PEAK) == learning_rate(name, 1.0, PEAK)


def test_unknown_schedule_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="onecycle, cosine, constant"):
        learning_rate("step", 0.5, PEAK)
