"""Tour chapter 4: a CNN learns to classify.

Trains the engine's default classifier on Fashion-MNIST when its files are on this machine
(Debian's dataset-fashion-mnist, $ANTLERS_DATA or ~/.cache/antlers; never downloaded here), else
on the built-in ``shapes``, for a fixed time budget; then shows the curves, the confusion matrix
and predictions on held-out images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from antlers.tour.page import (
    Chapter,
    TourContext,
    fashion_mnist_here,
    figure,
    paragraph,
    table,
)

__all__ = ["classify_chapter"]


def classify_chapter(ctx: TourContext) -> Chapter:
    from antlers.run import train

    data = "fashion-mnist" if fashion_mnist_here() else "shapes"
    seconds = 8 if ctx.quick else 150
    ctx.log(f"      training fast_resnet on {data} for {seconds} s")
    folder = ctx.out / "classify" / "ch4_run"
    shutil.rmtree(folder, ignore_errors=True)
    run = train(
        "classify",
        data=data,
        model="fast_resnet",
        time=seconds,
        out=str(ctx.out),
        name="ch4_run",
    )
    last = run.metrics[-1]
    test = run.test_metrics  # the epoch chosen on validation, scored once on the test split
    body = "\n".join(
        [
            paragraph(
                f"The engine trains a small residual CNN (conv + batch norm + ReLU, max "
                f"pooling, residual blocks, global pooling, a linear layer, softmax) on "
                f"{data} for {seconds} s of CPU time with a one-cycle schedule, SGD with "
                f"Nesterov momentum, label smoothing and random flips (also averaged at test "
                f"time)."
            ),
            table(_epoch_rows(run.metrics)),
            paragraph(
                f"Every epoch is scored on images held out of the training split (validation); "
                f"the epoch that scores best there, epoch {test['epoch']}, is scored once on the "
                f"test split: {test['test_accuracy']:.2%}."
            ),
            *_figures(folder),
            paragraph(f"The run folder: {folder} (weights, metrics.csv, report.html)."),
        ]
    )
    summary = f"{data}: test accuracy {test['test_accuracy']:.1%} after {last['seconds']:.0f} s"
    return Chapter(4, "A CNN learns to classify", body, summary)


def _epoch_rows(metrics: list[dict[str, float]]) -> list[dict[str, object]]:
    """One table row per epoch of the run's metrics.csv."""
    return [
        {
            "epoch": int(r["epoch"]),
            "seconds": r["seconds"],
            "train loss": f"{r['train_loss']:.3f}",
            "validation accuracy": f"{r['val_accuracy']:.2%}",
        }
        for r in metrics
    ]


def _figures(folder: Path) -> list[str]:
    """The run's own report figures, linked from its folder (misclassified.png only exists if
    any test image was misclassified)."""
    captions = {
        "curves": "Training loss and test metrics, epoch by epoch.",
        "confusion": "Confusion matrix on the test set (rows: true class).",
        "misclassified": "Test images it got wrong: true → predicted.",
    }
    return [
        figure(f"classify/ch4_run/{name}.png", caption)
        for name, caption in captions.items()
        if (folder / f"{name}.png").exists()
    ]
