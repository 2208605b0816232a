"""The sliding-window baseline: heat maps to boxes, checked by explicit loops, and its metric."""

from __future__ import annotations

import torch
from torch import nn

from antlers.data.boxset import DetectionSet
from antlers.tasks.detect.loader import DetectionLoader
from antlers.tasks.detect.sliding_baseline import (
    evaluate_sliding,
    heatmap_boxes,
    sliding_window_detect,
)


def _expected(probabilities, window, stride, threshold):
    """Every (class, position) above threshold as its window box, by explicit loops."""
    found = []
    _, k, h, w = probabilities.shape
    for c in range(k):
        for i in range(h):
            for j in range(w):
                if probabilities[0, c, i, j] > threshold:
                    x, y = j * stride[1], i * stride[0]
                    box = (x, y, x + window[1], y + window[0])
                    found.append((box, c, float(probabilities[0, c, i, j])))
    return found


def test_heat_map_windows_become_boxes() -> None:
    probabilities = torch.full((1, 2, 3, 4), 0.05)
    probabilities[0, 0, 1, 2] = 0.9  # class 0 at window (row 1, col 2)
    probabilities[0, 1, 0, 0] = 0.7  # class 1 at the top-left window
    out = heatmap_boxes(probabilities, (8, 6), (4, 2), threshold=0.5, logits=False)[0]
    expected = _expected(probabilities, (8, 6), (4, 2), 0.5)
    got = sorted(
        (tuple(b), k, s)
        for b, k, s in zip(
            out["boxes"].tolist(), out["labels"].tolist(), out["scores"].tolist(), strict=True
        )
    )
    assert [(b, k) for b, k, _ in got] == sorted((b, k) for b, k, _ in expected)
    assert got[0][0] == (0.0, 0.0, 6.0, 8.0)  # top-left window, 6 wide, 8 high
    assert got[1][0] == (4.0, 4.0, 10.0, 12.0)  # x = 2 * 2, y = 1 * 4


def test_overlapping_windows_are_suppressed_per_class() -> None:
    # windows 8x8 at stride 4: neighbours overlap with IoU 32 / 96 = 1/3
    probabilities = torch.zeros(1, 3, 1, 3)
    probabilities[0, 0, 0, 0], probabilities[0, 0, 0, 1] = 0.9, 0.8
    probabilities[0, 1, 0, 1] = 0.6  # another class at the same window: kept
    probabilities[0, 2, 0, 2] = 0.99  # class 2 is "nothing"
    strict = heatmap_boxes(probabilities, (8, 8), (4, 4), 0.5, nms=0.3, logits=False, background=2)
    loose = heatmap_boxes(probabilities, (8, 8), (4, 4), 0.5, nms=0.4, logits=False, background=2)
    assert strict[0]["labels"].tolist() == [0, 1]
    assert strict[0]["scores"].tolist() == [0.8999999761581421, 0.6000000238418579]
    assert sorted(loose[0]["labels"].tolist()) == [0, 0, 1]


class _WindowModel(nn.Module):
    """A stand-in fully convolutional classifier: a 16x16 window, stride 8, two classes
    (class 1 where the window's mean is bright, class 0 where dark)."""

    window, stride = (16, 16), (8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = nn.functional.avg_pool2d(x.mean(1, keepdim=True), 16, 8)
        return torch.cat([-(mean - 0.5) * 40, (mean - 0.5) * 40], dim=1)


def test_sliding_window_detector_is_evaluated_with_the_coco_metric() -> None:
    images = torch.zeros(2, 3, 48, 48, dtype=torch.uint8)
    images[0, :, 8:24, 16:32] = 255  # one bright square, exactly window (1, 2)
    images[1, :, 24:40, 24:40] = 255  # window (3, 3)
    data = DetectionSet(
        images,
        [torch.tensor([[16.0, 8, 32, 24]]), torch.tensor([[24.0, 24, 40, 40]])],
        [torch.tensor([1]), torch.tensor([1])],
        ("dark", "bright"),
        "squares",
    )
    found = sliding_window_detect(_WindowModel(), images.float() / 255, threshold=0.9, background=0)
    assert found[0]["boxes"].tolist() == [[16.0, 8.0, 32.0, 24.0]]
    scores = evaluate_sliding(
        _WindowModel(), DetectionLoader(data, 2), 2, threshold=0.9, background=0
    )
    assert scores.ap50 == 1.0
    assert scores.ap == 1.0


def test_moose_detector_from_explain_detects_like_the_explicit_sliding_classifier() -> None:
    """explain.fully_convolutional feeds the detector: the same boxes as classifying every crop."""
    from antlers.explain import fully_convolutional
    from antlers.nn.lecture import lecture_cnn

    torch.manual_seed(0)
    classifier = lecture_cnn(in_shape=(3, 16, 16), channels=4, classes=("nothing", "a", "b"))
    classifier.eval()
    moose = fully_convolutional(classifier)
    assert moose.window == (16, 16)
    assert moose.exact  # no padding: every position equals the classifier on its crop
    image = torch.rand(1, 3, 40, 48)
    found = sliding_window_detect(
        moose, image, threshold=0.34, nms=1.0, background=0, max_detections=1000
    )[0]

    (sh, sw), rows, cols = moose.stride, *moose.output_size(40, 48)
    crops = torch.stack(
        [
            image[0, :, i * sh : i * sh + 16, j * sw : j * sw + 16]
            for i in range(rows)
            for j in range(cols)
        ]
    )
    with torch.no_grad():
        explicit = classifier(crops).softmax(1).T.reshape(1, 3, rows, cols)
    expected = _expected(explicit[:, 1:], (16, 16), (sh, sw), 0.34)
    assert len(found["boxes"]) == len(expected) > 0
    got = sorted(
        (tuple(b.tolist()), int(k), float(s))
        for b, k, s in zip(found["boxes"], found["labels"], found["scores"], strict=True)
    )
    want = sorted((tuple(float(v) for v in box), c + 1, s) for box, c, s in expected)
    for (gb, gk, gs), (wb, wk, ws) in zip(got, want, strict=True):
        assert (gb, gk) == (wb, wk)
        assert abs(gs - ws) < 1e-5
