"""Benchmark: antlers' two-stage detector against torchvision's Faster R-CNN (MobileNetV3-Large
320 FPN, no pretrained weights), on the built-in ``scenes`` set, on the CPU, in one invocation.

    .venv/bin/python benchmarks/detect.py                 # records the '## detect' section
    .venv/bin/python benchmarks/detect.py --no-record --budgets 60 --repeats 1

For each budget T (default 10 minutes) and seed (``--repeats``, default 3: seeds 0, 1, 2) each
model trains for T seconds of wall time on the same images: the scenes train split less the
validation split that antlers holds out with that seed (random left-right flips for both), with
a learning-rate schedule planned for T; evaluation time is not counted. Then both are scored on
the scenes test split, once, with the same pycocotools evaluation (AP@[.5:.95], AP50), and their
inference speed is measured (images/s, batches of 32, after one warm-up batch). Ours is scored
with the epoch chosen on the validation split (the run's best weights); the baseline, which has
no validation loop, with its weights at the end of training. A row is the median over the seeds.

Ours: ``antlers.train("detect", time=T)`` with the task's defaults. The baseline:
``torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None,
weights_backbone=None, num_classes=K + 1, min_size=S, max_size=S, box_score_thresh=...)``:
working at the images' own size S (shipped, it resizes inputs to 320 pixels, which left it at
AP 0.000 here) and keeping detections down to the score ours keeps (its default: 0.05), AdamW
(lr 1e-3, weight decay 1e-4, the one-cycle schedule of ours), batch 16, gradient clipping 10.

OpenMP's wait policy is left as ``antlers train`` leaves it (unset: libgomp's threads spin a
little before they sleep) unless OMP_WAIT_POLICY is set, and the section records which: on an
idle machine spinning makes the steps faster than OMP_WAIT_POLICY=PASSIVE, on a shared one
several times slower (docs/experiments/openmp-threads.md). Record on an idle machine (a
warning is printed when it is busy); run with OMP_WAIT_POLICY=PASSIVE on a shared one.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
from torch import nn

from antlers.data.object_scenes import load_object_scenes
from antlers.engine.schedule import learning_rate
from antlers.run import Run, train
from antlers.tasks.detect.loader import DetectionLoader
from antlers.tasks.detect.metrics import coco_evaluate, coco_ground_truth, coco_results
from antlers.tasks.detect.model import DetectorConfig
from antlers.tasks.splits import validation_split
from common import cpu_model, record_section, warn_if_busy

BATCH = 16


def baseline_model(num_classes: int, size: int) -> nn.Module:
    """torchvision's detector, untrained, working at the images' own ``size``: its default
    resizes them to 320 pixels first, which cost it dearly here (docs/benchmarks.md, detect).
    It keeps detections down to the score ours keeps (its default is 0.05)."""
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn

    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes + 1,
        min_size=size,
        max_size=size,
        box_score_thresh=DetectorConfig.score_threshold,
    )


def train_baseline(
    train_set: Any, seconds: float, seed: int = 0, batch: int = BATCH, flip: bool = True
) -> nn.Module:
    """Train torchvision's detector for ``seconds`` of wall time (labels shifted: 0 = nothing)."""
    torch.manual_seed(seed)
    model = baseline_model(len(train_set.classes), train_set.image_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = DetectionLoader(train_set, batch, shuffle=True, seed=seed, flip=flip, drop_last=True)
    model.train()
    start, epoch = time.perf_counter(), 0
    while True:
        for batch in loader.epoch(epoch):
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                return model
            for group in optimizer.param_groups:
                group["lr"] = learning_rate("onecycle", elapsed / seconds, 1e-3)
            targets = [
                {"boxes": b, "labels": lab + 1}
                for b, lab in zip(batch["boxes"], batch["labels"], strict=True)
            ]
            loss = sum(model(list(batch["image"]), targets).values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
        epoch += 1


@torch.no_grad()
def score(predict: Any, test_set: Any) -> dict[str, float]:
    """AP, AP50 and inference images/s of ``predict`` (batch -> per-image dicts, labels 0..K-1)."""
    loader = DetectionLoader(test_set, 32)
    predictions, boxes, labels = [], [], []
    predict(test_set.images[:32].float() / 255)  # warm-up
    start = time.perf_counter()
    for batch in loader.epoch(0):
        predictions += predict(batch["image"])
        boxes += batch["boxes"]
        labels += batch["labels"]
    seconds = time.perf_counter() - start
    size = tuple(test_set.images.shape[-2:])
    truth = coco_ground_truth(boxes, labels, size, len(test_set.classes))
    scores = coco_evaluate(truth, coco_results(predictions))
    return {"ap": scores.ap, "ap50": scores.ap50, "images_per_s": len(predictions) / seconds}


def run_ours(seconds: float, seed: int, out: str) -> dict[str, float]:
    """Ours, trained by the task with ``seed``; the epoch chosen on its validation split."""
    name = f"ours_{int(seconds)}_{seed}"
    run = train("detect", time=seconds, out=out, name=name, data=DATA, seed=seed)
    model = Run.load(run.path).model.eval()  # best.safetensors: chosen on validation
    return score(lambda x: [dict(d.items()) for d in model(x)], test_set=TEST)


def baseline_overfits(train_set: Any, images: int, seconds: float) -> dict[str, float]:
    """Whether the baseline can learn at all: trained on ``images`` training scenes alone (no
    flips) for ``seconds``, then scored on those same scenes; a working detector gets AP50 near 1
    (the comparison at equal time then says "slower", not "broken")."""
    few = train_set.subset(list(range(images)))
    model = train_baseline(few, seconds, batch=min(images, BATCH), flip=False).eval()

    def predict(x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        return [{**d, "labels": d["labels"] - 1} for d in model(list(x))]

    return score(predict, few)


def run_baseline(seconds: float, seed: int) -> dict[str, float]:
    """torchvision's, trained on the images ours trains on with the same seed."""
    model = train_baseline(validation_split(TRAIN, seed)[0], seconds, seed=seed).eval()

    def predict(x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        out = model(list(x))
        return [{**d, "labels": d["labels"] - 1} for d in out]

    return score(predict, TEST)


def main(argv: list[str] | None = None) -> int:
    global TRAIN, TEST
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[600.0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (seeds 0, 1, ...)")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--n", type=int, nargs=2, help="train and test sizes (a smoke test)")
    parser.add_argument(
        "--overfit",
        type=float,
        nargs=2,
        metavar=("IMAGES", "SECONDS"),
        help="only check that the baseline overfits IMAGES training scenes in SECONDS",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    warn_if_busy()
    t0 = time.perf_counter()
    if args.n:
        global DATA
        DATA = _small_copy(*args.n)
    TRAIN, TEST = _scenes("train", args.n), _scenes("test", args.n)
    if args.overfit:
        images, seconds = int(args.overfit[0]), args.overfit[1]
        result = baseline_overfits(TRAIN, images, seconds)
        print(
            f"baseline on {images} training scenes after {seconds:.0f} s, scored on them: "
            f"AP {result['ap']:.3f}, AP50 {result['ap50']:.3f}",
            flush=True,
        )
        return 0
    print(
        f"scenes: {len(TRAIN)} train / {len(TEST)} test images, {len(TRAIN.classes)} classes, "
        f"generated in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    rows, loads = [], []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(args.repeats):
            for seconds in args.budgets:
                for name, runner in (
                    ("antlers two_stage", lambda s, seed: run_ours(s, seed, out)),
                    ("torchvision fasterrcnn_mobilenet_v3_large_320_fpn", run_baseline),
                ):
                    result = runner(seconds, seed)
                    loads.append(os.getloadavg())
                    rows.append((seconds, name, result))
                    print(
                        f"{seconds:.0f} s seed {seed} {name}: AP {result['ap']:.3f}, AP50 "
                        f"{result['ap50']:.3f}, {result['images_per_s']:.1f} images/s; "
                        f"load {loads[-1]}",
                        flush=True,
                    )
    medians = median_rows(rows)
    for seconds, name, r in medians:
        print(f"median {seconds:.0f} s {name}: AP {r['ap']:.3f}, AP50 {r['ap50']:.3f}")
    if not args.no_record:
        record(medians, loads, args.repeats)
    return 0


def median_rows(
    rows: list[tuple[float, str, dict[str, float]]],
) -> list[tuple[float, str, dict[str, Any]]]:
    """One row per (budget, model), in run order: each figure's median over the seeds, and
    the runs' AP."""
    groups: dict[tuple[float, str], list[dict[str, float]]] = {}
    for seconds, name, result in rows:
        groups.setdefault((seconds, name), []).append(result)
    return [
        (
            seconds,
            name,
            {
                **{k: statistics.median(r[k] for r in group) for k in group[0]},
                "runs": sorted(r["ap"] for r in group),
            },
        )
        for (seconds, name), group in groups.items()
    ]


def record(rows: list[tuple[float, str, dict[str, Any]]], loads: list[Any], repeats: int) -> None:
    today = datetime.date.today().isoformat()
    policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    section = [
        "## detect",
        "",
        "`benchmarks/detect.py`: AP on the `scenes` test split after a training time budget, "
        "ours against torchvision's `fasterrcnn_mobilenet_v3_large_320_fpn` (no pretrained "
        "weights) trained for the same wall time on the same data; each row the median of "
        f"{repeats} seeds, ours scored with the epoch chosen on the validation split.",
        "",
        f"- machine: {cpu_model()}; threads: 2 (OMP_WAIT_POLICY={policy}); "
        f"torch {torch.__version__}; date: {today}",
        "- load average (1, 5, 15 min) after each run: "
        + "; ".join(f"{a:.1f}, {b:.1f}, {c:.1f}" for a, b, c in loads),
        "",
        "| budget | model | AP@[.5:.95] | AP50 | inference images/s | AP of each run |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for seconds, name, r in rows:
        section.append(
            f"| {seconds / 60:.0f} min | {name} | {r['ap']:.3f} | {r['ap50']:.3f} | "
            f"{r['images_per_s']:.1f} | {', '.join(f'{v:.3f}' for v in r['runs'])} |"
        )
    record_section(section)


def _scenes(split: str, n: list[int] | None) -> Any:
    if n is None:
        return load_object_scenes(split)
    from antlers.data.detection import load_detection

    return load_detection(DATA, split)


def _small_copy(n_train: int, n_test: int) -> str:
    """A small scenes set written as COCO JSON (for a quick check of this script)."""
    from antlers.data.coco_write import save_coco

    folder = tempfile.mkdtemp(prefix="detect-bench-")
    return str(save_coco(load_object_scenes("train", n=n_train + n_test), f"{folder}/coco.json"))


TRAIN: Any = None
TEST: Any = None
DATA = "scenes"

if __name__ == "__main__":
    sys.exit(main())
