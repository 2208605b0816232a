"""TrainConfig refuses every number outside its documented range, NaN included."""

from __future__ import annotations

import pytest

from antlers.config import RANGES, TrainConfig

# For each ranged field: a value inside the range and one just outside it.
INSIDE_OUTSIDE = {
    "time": (0.5, 0.0),
    "lr": (0.0, -1e-9),
    "momentum": (0.0, 1.0),
    "weight_decay": (0.0, -1e-9),
    "warmup": (0.0, 1.0),
    "label_smoothing": (0.1, 1.0),
    "clip_grad": (1.0, 0.0),
    "ema": (0.0, 1.0),
    "patience": (1, 0),
    "crop": (0, -1),
    "image_size": (1, 0),
    "max_steps": (1, 0),
    "save_every": (1, 0),
}


def test_every_ranged_field_is_tried_here() -> None:
    assert set(INSIDE_OUTSIDE) == set(RANGES)


@pytest.mark.parametrize("name", sorted(INSIDE_OUTSIDE))
def test_a_value_outside_the_range_or_nan_is_refused_by_name(name: str) -> None:
    inside, outside = INSIDE_OUTSIDE[name]
    TrainConfig(**{name: inside})
    for bad in (outside, float("nan")):
        with pytest.raises(ValueError, match=rf"^{name} must be .*, got "):
            TrainConfig(**{name: bad})
