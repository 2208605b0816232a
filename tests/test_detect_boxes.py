"""Box arithmetic of the detector: anchors, the box code (against R-CNN's formulas box by box),
matching and sampling. NMS and the score threshold: test_detect_postprocess.py."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from antlers.tasks.detect.boxes import (
    BACKGROUND,
    IGNORE,
    decode,
    encode,
    grid_anchors,
    match,
    sample_fg_bg,
)

sizes = st.lists(st.floats(4, 96), min_size=1, max_size=3, unique=True)
ratios = st.lists(st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0]), min_size=1, max_size=3, unique=True)


@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(1, 4), w=st.integers(1, 4), stride=st.sampled_from([4, 8, 16]), s=sizes, r=ratios
)
def test_anchors_are_centred_on_cells_with_the_asked_area_and_ratio(h, w, stride, s, r) -> None:
    anchors = grid_anchors(h, w, stride, tuple(s), tuple(r))
    a = len(s) * len(r)
    assert anchors.shape == (h * w * a, 4)
    for i in range(h):  # explicit loops: the layout the RPN's permute/reshape relies on
        for j in range(w):
            for si, size in enumerate(s):
                for ri, ratio in enumerate(r):
                    box = anchors[(i * w + j) * a + si * len(r) + ri]
                    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                    bw, bh = box[2] - box[0], box[3] - box[1]
                    assert torch.allclose(cx, torch.tensor((j + 0.5) * stride), atol=1e-3)
                    assert torch.allclose(cy, torch.tensor((i + 0.5) * stride), atol=1e-3)
                    assert torch.allclose(bw * bh, torch.tensor(size * size), rtol=1e-4)
                    assert torch.allclose(bh / bw, torch.tensor(ratio), rtol=1e-4)


boxes = st.tuples(st.floats(-50, 200), st.floats(-50, 200), st.floats(1, 60), st.floats(1, 60)).map(
    lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]]
)
weights = st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])


@settings(max_examples=60, deadline=None)
@given(target=st.lists(boxes, min_size=1, max_size=5), weight=weights, data=st.data())
def test_decode_inverts_encode(target, weight, data) -> None:
    refs = data.draw(st.lists(boxes, min_size=len(target), max_size=len(target)))
    t, r = torch.tensor(target, dtype=torch.float64), torch.tensor(refs, dtype=torch.float64)
    deltas = encode(t, r, weight)
    assert torch.allclose(decode(deltas, r, weight), t, atol=1e-6)
    assert torch.allclose(encode(r, r, weight), torch.zeros_like(r))  # a box on itself: zero


def test_encode_follows_faster_rcnn_equation_2() -> None:
    box = torch.tensor([[10.0, 20.0, 50.0, 40.0]])  # centre (30, 30), 40 x 20
    ref = torch.tensor([[0.0, 0.0, 20.0, 40.0]])  # centre (10, 20), 20 x 40
    expected = torch.tensor(
        [[20 / 20, 10 / 40, torch.log(torch.tensor(2.0)), -torch.log(torch.tensor(2.0))]]
    )
    assert torch.allclose(encode(box, ref), expected)


def _centre_size(box: list[float]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


ODD_WEIGHTS = (1.0, 2.0, 3.0, 4.0)  # all different: a swapped or misplaced weight shows


def _random_boxes(g: torch.Generator, n: int) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * 200 - 50
    return torch.cat([corner, corner + 1 + 60 * torch.rand(n, 2, generator=g).double()], dim=1)


def test_encode_is_the_rcnn_parametrisation_box_by_box() -> None:
    """R-CNN appendix C / Faster R-CNN eq. 2, one box at a time in plain float64 Python:
    t = (w_x (x - x_a) / w_a, w_y (y - y_a) / h_a, w_w log(w / w_a), w_h log(h / h_a))."""
    g = torch.Generator().manual_seed(0)
    target, reference = _random_boxes(g, 50), _random_boxes(g, 50)
    got = encode(target, reference, ODD_WEIGHTS).tolist()
    wx, wy, ww, wh = ODD_WEIGHTS
    for box, ref, t in zip(target.tolist(), reference.tolist(), got, strict=True):
        (x, y, w, h), (xa, ya, wa, ha) = _centre_size(box), _centre_size(ref)
        expected = [
            wx * (x - xa) / wa,
            wy * (y - ya) / ha,
            ww * math.log(w / wa),
            wh * math.log(h / ha),
        ]
        assert t == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_decode_is_the_rcnn_parametrisation_box_by_box() -> None:
    """The inverse, from the deltas: x = x_a + w_a t_x / w_x, w = w_a exp(t_w / w_w), with the
    log-scale change capped at log(1000 / 16) (some deltas here go beyond it)."""
    g = torch.Generator().manual_seed(1)
    reference = _random_boxes(g, 50)
    deltas = (torch.rand(50, 4, generator=g, dtype=torch.float64) * 2 - 1) * 20
    got = decode(deltas, reference, ODD_WEIGHTS).tolist()
    wx, wy, ww, wh = ODD_WEIGHTS
    capped = 0
    for ref, (tx, ty, tw, th), box in zip(reference.tolist(), deltas.tolist(), got, strict=True):
        xa, ya, wa, ha = _centre_size(ref)
        x, y = xa + wa * tx / wx, ya + ha * ty / wy
        w = wa * math.exp(min(tw / ww, math.log(1000 / 16)))
        h = ha * math.exp(min(th / wh, math.log(1000 / 16)))
        capped += tw / ww > math.log(1000 / 16) or th / wh > math.log(1000 / 16)
        expected = [x - w / 2, y - h / 2, x + w / 2, y + h / 2]
        assert box == pytest.approx(expected, rel=1e-12, abs=1e-9)
    assert capped > 0


def test_match_thresholds_and_best_anchor() -> None:
    truth = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0]])
    refs = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # IoU 1 with truth 0
            [0.0, 0.0, 10.0, 20.0],  # IoU 0.5: between low 0.3 and high 0.7 -> ignored
            [50.0, 50.0, 60.0, 60.0],  # IoU 0 -> background
            [100.0, 100.0, 110.0, 125.0],  # IoU 0.4 with truth 1, its best -> foreground
        ]
    )
    plain = match(refs, truth, high=0.7, low=0.3, best=False)
    assert plain.tolist() == [0, IGNORE, BACKGROUND, IGNORE]
    assert match(refs, truth, high=0.7, low=0.3, best=True).tolist() == [0, IGNORE, BACKGROUND, 1]
    assert (match(refs, truth[:0], 0.7, 0.3, True) == BACKGROUND).all()


@settings(max_examples=40, deadline=None)
@given(n_fg=st.integers(0, 300), n_bg=st.integers(0, 300), count=st.integers(1, 256))
def test_sampling_ratio(n_fg, n_bg, count) -> None:
    matches = torch.cat(
        [
            torch.zeros(n_fg, dtype=torch.long),
            torch.full((n_bg,), BACKGROUND),
            torch.full((7,), IGNORE),
        ]
    )
    matches = matches[torch.randperm(len(matches), generator=torch.Generator().manual_seed(0))]
    fg, bg = sample_fg_bg(matches, count, 0.25, torch.Generator().manual_seed(1))
    assert len(fg) == min(int(count * 0.25), n_fg)  # at most a quarter foreground
    assert len(bg) == min(count - len(fg), n_bg)  # background fills the rest
    assert (matches[fg] >= 0).all()
    assert (matches[bg] == BACKGROUND).all()
    assert len(set(fg.tolist()) | set(bg.tolist())) == len(fg) + len(bg)  # no repeats
