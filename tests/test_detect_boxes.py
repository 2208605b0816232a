"""Box arithmetic of the detector: anchors, the box code, matching, sampling and NMS edges."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.functional.detection import intersection_over_union
from torchvision.ops import batched_nms, box_iou

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


def test_batched_nms_at_the_iou_edge_and_per_class() -> None:
    # two 10x10 boxes shifted by d overlap with IoU (10 - d) / (10 + d); d = 10/3 gives 0.5.
    d = 10 / 3
    pair = torch.tensor([[0.0, 0.0, 10.0, 10.0], [d, 0.0, 10.0 + d, 10.0]])
    iou = float(box_iou(pair[:1], pair[1:]))
    assert abs(iou - float(intersection_over_union(pair[:1], pair[1:]))) < 1e-6  # torchmetrics
    scores = torch.tensor([0.9, 0.8])
    same = torch.tensor([0, 0])
    assert batched_nms(pair, scores, same, iou + 1e-4).tolist() == [0, 1]  # IoU not above: kept
    assert batched_nms(pair, scores, same, iou - 1e-4).tolist() == [0]  # above: suppressed
    assert batched_nms(pair, scores, torch.tensor([0, 1]), 0.1).tolist() == [0, 1]  # per class
