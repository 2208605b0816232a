"""Tour chapter 6: an encoder-decoder learns to label pixels.

Trains a small U-Net on the built-in street scenes for a fixed time budget, then shows held-out
scenes with the true and predicted classes drawn over them, the per-class IoU, and the mIoU
pooled over the test pixels.
"""

from __future__ import annotations

import shutil
from typing import Any

from antlers.tour.page import Chapter, TourContext, figure, paragraph, table

__all__ = ["segment_chapter"]

# The full chapter trains for a time budget; the quick one for a fixed number of epochs, so its
# result does not depend on how busy the machine is.
FULL = {"time": 60, "epochs": None, "scenes": (3000, 200), "image_size": 64, "model": "unet"}
QUICK = {"time": None, "epochs": 3, "scenes": (800, 60), "image_size": 32, "model": "unet-w8-d2"}


def segment_chapter(ctx: TourContext) -> Chapter:
    plan = QUICK if ctx.quick else FULL
    length = f"{plan['time']} s" if plan["time"] else f"{plan['epochs']} epochs"
    ctx.log(f"      training {plan['model']} on scenes for {length}")
    folder = ctx.out / "segment" / "ch6_run"
    last, scores, classes = _train_and_score(ctx, plan)
    rows = [
        {"class": c, "IoU": f"{scores[f'iou_{c}']:.3f}"}
        for c in classes
        if scores[f"iou_{c}"] == scores[f"iou_{c}"]  # NaN: not in the test scenes
    ]
    captions = {
        "overlays": "Held-out scenes: the image, the true classes, the predicted classes.",
        "iou": "IoU of each class on the test scenes (pooled over all their pixels).",
        "curves": "Training loss and validation metrics, epoch by epoch.",
    }
    figures = [
        figure(f"segment/ch6_run/{name}.png", caption)
        for name, caption in captions.items()
        if (folder / f"{name}.png").exists()
    ]
    body = "\n".join(
        [
            paragraph(
                "Semantic segmentation gives every pixel a class. A U-Net is an encoder-decoder: "
                "conv + batch norm + ReLU and max pooling shrink the scene to coarse features, "
                "transposed convolutions grow them back to the input size, and skip connections "
                "hand each decoder stage the encoder's sharper map of the same size; each "
                "stage's pair of convolutions adds its input back (a residual block), which "
                "trains faster. Its last 1x1 convolution gives K scores per pixel; softmax and the "
                f"per-pixel cross-entropy train it. Here: {plan['model']} on {plan['scenes'][0]} "
                f"procedural street scenes of {plan['image_size']}x{plan['image_size']} pixels "
                f"for {length} on the CPU (SegNet, which unpools with the encoder's "
                "max-pooling indices instead of copying feature maps, is `--model segnet`)."
            ),
            *figures[:1],
            table(rows),
            paragraph(
                f"mIoU {scores['miou']:.3f} and pixel accuracy "
                f"{scores['pixel_accuracy']:.1%} on {plan['scenes'][1]} test scenes, scored once "
                "with the epoch chosen on scenes held out of the training set; IoU = "
                "true positives / (true positives + false positives + false negatives) of a "
                "class, counted over every test pixel at once."
            ),
            *figures[1:],
            paragraph(f"The run folder: {folder} (weights, metrics.csv, report.html)."),
        ]
    )
    summary = f"U-Net test mIoU {scores['miou']:.3f} after {last['seconds']:.0f} s of training"
    return Chapter(6, "Segmentation", body, summary)


def _train_and_score(ctx: TourContext, plan: dict[str, Any]) -> tuple[dict, dict, list[str]]:
    """Train ``plan``'s model into ``<out>/segment/ch6_run`` (replacing an older one) and score
    the weights at the end of training on the test scenes; returns (last metrics row, test
    scores, class names)."""
    from antlers.config import TrainConfig
    from antlers.engine.fit import fit
    from antlers.run import Run
    from antlers.tasks.segment.task import SegmentTask

    task = SegmentTask(scenes=plan["scenes"])
    folder = ctx.out / "segment" / "ch6_run"
    shutil.rmtree(folder, ignore_errors=True)
    config = TrainConfig(
        **{
            **task.config_defaults,
            "task": "segment",
            "model": plan["model"],
            "image_size": plan["image_size"],
            "time": plan["time"],
            "epochs": plan["epochs"],
            "batch_size": 16,
            "out": str(ctx.out),
            "name": "ch6_run",
        }
    )
    result = fit(task, config, log=lambda *_: None)
    run = Run.load(folder)  # the epoch chosen on validation, scored on the test scenes by fit
    scores = {k.removeprefix("test_"): v for k, v in result.test.items() if k.startswith("test_")}
    return result.history[-1], scores, run.classes
