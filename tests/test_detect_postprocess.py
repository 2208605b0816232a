"""The detector's last stage, RoIHead.suppress, against brute-force Python loops of its rules.

The rules (Fast R-CNN's inference, as the RoI head's docstring states them): every (proposal,
class >= 1) pair is a candidate with that class's probability; candidates scored above
``score_threshold`` on boxes at least 1 pixel wide and high survive; greedy NMS runs per class
(a candidate is dropped when its IoU with a kept, better one of its class is above ``nms``); the
``max_detections`` best remain, best first. Ties in score: the earlier proposal goes first, up to
1000 candidates; above that torchvision's batched_nms switches to a per-class loop whose final
sort is not stable, so tied candidates come in another order (and a cut through a tie may keep
another of them): ``test_suppress_of_many_candidates_equals_the_rules_up_to_ties``.
Boxes have integer corners and the scores are multiples of 1/20 held in float64, so every IoU
and every comparison with a threshold is exact on both sides (ties and edges included).
"""

from __future__ import annotations

import pytest
import torch

from antlers.tasks.detect.roi_heads import Classified, RoIHead

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes, from the definition."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def brute_force(
    boxes: list[Box], probabilities: list[list[float]], threshold: float, nms: float, top: int
) -> list[tuple[int, int, float]]:
    """(proposal, class - 1, score) of the detections, best first, by explicit loops."""
    candidates = []
    for r, (box, row) in enumerate(zip(boxes, probabilities, strict=True)):
        for c, score in enumerate(row[1:]):  # column 0 is "nothing"
            big_enough = box[2] - box[0] >= 1 and box[3] - box[1] >= 1
            if score > threshold and big_enough:
                candidates.append((r, c, score))
    candidates.sort(key=lambda rcs: (-rcs[2], rcs[0]))  # best first; ties: earlier proposal
    kept: list[tuple[int, int, float]] = []
    for r, c, score in candidates:
        if all(c != c2 or iou(boxes[r], boxes[r2]) <= nms for r2, c2, _ in kept):
            kept.append((r, c, score))
    return kept[:top]


def random_case(seed: int, proposals: int = 40, classes: int = 3) -> Classified:
    """Integer boxes in a 32 x 32 image (some thinner than a pixel, some repeated) and scores in
    steps of 1/20 (many ties, some exactly at the 0.05 threshold)."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.randint(0, 24, (proposals, 2), generator=g)
    size = torch.randint(0, 12, (proposals, 2), generator=g)
    boxes = torch.cat([corner, corner + size], dim=1).double()
    scores = torch.randint(0, 21, (proposals, classes + 1), generator=g).double() / 20
    repeat = proposals // 4  # the last quarter repeats the first: ties of score at IoU 1
    boxes[-repeat:], scores[-repeat:] = boxes[:repeat], scores[:repeat]
    labels = scores.argmax(1) - 1
    return Classified(boxes, scores, labels, scores.max(1).values)


def head(classes: int, threshold: float = 0.05, nms: float = 0.5, top: int = 50) -> RoIHead:
    return RoIHead(
        4, classes, stride=8, hidden=8, score_threshold=threshold, nms=nms, max_detections=top
    )


def as_rows(detections: dict[str, torch.Tensor]) -> list[tuple[Box, int, float]]:
    return [
        (tuple(b), int(c), float(s))
        for b, c, s in zip(
            detections["boxes"].tolist(),
            detections["labels"].tolist(),
            detections["scores"].tolist(),
            strict=True,
        )
    ]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("nms", "top"), [(0.5, 100), (0.3, 12), (0.7, 5)])
def test_suppress_equals_the_brute_force_rules(seed: int, nms: float, top: int) -> None:
    case = random_case(seed)
    got = as_rows(head(3, nms=nms, top=top).suppress(case))
    boxes = [tuple(b) for b in case.boxes.tolist()]
    want = brute_force(boxes, case.probabilities.tolist(), 0.05, nms, top)
    assert got == [(boxes[r], c, s) for r, c, s in want]


def test_suppress_of_many_candidates_equals_the_rules_up_to_ties() -> None:
    """Over 1000 candidates (torchvision's other batched_nms path): the same detections, and
    the same scores best first, with tied candidates in some order."""
    case = random_case(0, proposals=300, classes=6)
    boxes, probabilities = [tuple(b) for b in case.boxes.tolist()], case.probabilities.tolist()
    assert len(brute_force(boxes, probabilities, 0.05, 1.0, 10_000)) > 1000  # into batched_nms
    want = [(boxes[r], c, s) for r, c, s in brute_force(boxes, probabilities, 0.05, 0.5, 10_000)]
    got = as_rows(head(6, top=10_000).suppress(case))
    assert sorted(got) == sorted(want)
    assert [s for _, _, s in got] == [s for _, _, s in want]
    top = as_rows(head(6, top=100).suppress(case))
    assert [s for _, _, s in top] == [s for _, _, s in want[:100]]
    assert set(top) <= set(want)


def test_brute_force_cases_exercise_every_rule() -> None:
    """The random cases are not vacuous: each rule removes candidates somewhere."""
    at_threshold = small = suppressed = cut = 0
    for seed in range(8):
        case = random_case(seed)
        boxes = [tuple(b) for b in case.boxes.tolist()]
        probabilities = case.probabilities.tolist()
        at_threshold += sum(s == 0.05 for row in probabilities for s in row[1:])
        small += sum(b[2] - b[0] < 1 or b[3] - b[1] < 1 for b in boxes)
        everything = brute_force(boxes, probabilities, 0.05, 1.0, 10_000)  # NMS keeps all
        after_nms = brute_force(boxes, probabilities, 0.05, 0.5, 10_000)
        suppressed += len(everything) - len(after_nms)
        cut += len(after_nms) > 12
    assert at_threshold > 0
    assert small > 0
    assert suppressed > 0
    assert cut > 0


def test_suppress_at_the_iou_edge_per_class_and_threshold() -> None:
    """Hand-made: IoU exactly 0.5 stays, just above goes; classes never suppress each other;
    a score equal to the threshold is out."""
    # 12 x 10 boxes shifted by 4: IoU = 8 / 16 = 0.5 exactly; shifted by 3: 9 / 15 = 0.6
    boxes = torch.tensor(
        [[0, 0, 12, 10], [4, 0, 16, 10], [20, 0, 32, 10], [23, 0, 35, 10]], dtype=torch.float64
    )
    probabilities = torch.tensor(
        [
            [0.0, 0.9, 0.8],  # class 0 at 0.9, class 1 at 0.8
            [0.0, 0.7, 0.05],  # IoU 0.5 with box 0: class 0 kept; class 1 at the threshold
            [0.0, 0.6, 0.0],
            [0.0, 0.0, 0.5],  # IoU 0.6 with box 2, but another class: kept
        ],
        dtype=torch.float64,
    )
    classified = Classified(boxes, probabilities, torch.zeros(4), torch.zeros(4))
    got = head(2, nms=0.5).suppress(classified)
    assert got["labels"].tolist() == [0, 1, 0, 0, 1]
    assert got["scores"].tolist() == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert got["boxes"].tolist() == boxes[[0, 0, 1, 2, 3]].tolist()
    probabilities[3] = torch.tensor([0.0, 0.5, 0.0])  # now the same class as box 2: suppressed
    got = head(2, nms=0.5).suppress(classified)
    assert got["labels"].tolist() == [0, 1, 0, 0]
    assert head(2, nms=0.5, top=2).suppress(classified)["scores"].tolist() == [0.9, 0.8]
