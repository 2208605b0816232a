"""Run under torchrun by tests/test_dist_eval.py: evaluate the same models on shards of their
test splits, one shard per rank, and write the pooled metrics (OUT/rank<r>.json).

``eval_worker.py OUT CLASSIFY_RUN SEGMENT_RUN``: ``Run.evaluate`` of each run folder with this
rank and the world size (what ``antlers eval`` does under torchrun), and detection AP of
``PeekingDetect``, whose detections are a seeded function of each test image's ground truth (so
the AP is far from 0 and 1 without training a detector), over the sharded test split. Run with
one process (no torchrun) it gives the world-size-1 figures.
"""

import json
import os
import sys
from pathlib import Path

import torch

from antlers.data.detection import load_detection
from antlers.engine import dist
from antlers.run import Run
from antlers.tasks.detect.loader import DetectionLoader
from antlers.tasks.detect.task import DetectTask

DETECT_SIZE = 64


class PeekingDetect(DetectTask):
    """Detections from the ground truth of the image shown: each box jittered, a fifth of the
    labels wrong, two false positives, all scores drawn from a generator seeded by the image's
    row, so an image gets the same detections in any batch on any rank."""

    def __init__(self, data) -> None:
        rows = {img.numpy().tobytes(): i for i, img in enumerate(data.images)}
        object.__setattr__(self, "data", data)  # DetectTask is a frozen dataclass
        object.__setattr__(self, "rows", rows)

    def detections(self, model, images):
        found = []
        for image in images:
            row = self.rows[(image * 255).round().to(torch.uint8).numpy().tobytes()]
            g = torch.Generator().manual_seed(row)
            truth, labels = self.data.boxes[row], self.data.labels[row].clone()
            boxes = truth + torch.randn(truth.shape, generator=g) * 3
            k = len(self.data.classes)
            wrong = torch.rand(len(labels), generator=g) < 0.2
            labels[wrong] = torch.randint(0, k, (int(wrong.sum()),), generator=g)
            corner = torch.rand(2, 2, generator=g) * DETECT_SIZE / 2
            false = torch.cat([corner, corner + DETECT_SIZE / 4], dim=1)
            found.append({
                "boxes": torch.cat([boxes, false]).clamp(0, DETECT_SIZE),
                "labels": torch.cat([labels, torch.randint(0, k, (2,), generator=g)]),
                "scores": torch.cat([0.3 + 0.7 * torch.rand(len(labels), generator=g),
                                     0.6 * torch.rand(2, generator=g)]),
            })  # fmt: skip
        return found


def main() -> None:
    out, classify, segment = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    torch.set_num_threads(1)
    info = dist.setup(torch.device("cpu"))
    shard = {"rank": info.rank, "world_size": info.world_size}
    result = {
        "world_size": info.world_size,
        "classify": Run.load(classify).evaluate(**shard),
        "segment": Run.load(segment).evaluate(**shard),
    }
    scenes = load_detection("scenes", "test", image_size=DETECT_SIZE, n=60)
    loader = DetectionLoader(scenes, 7, **shard)
    result["detect"] = PeekingDetect(scenes).evaluate(torch.nn.Linear(1, 1), loader)
    dist.cleanup(info)
    (out / f"rank{info.rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
