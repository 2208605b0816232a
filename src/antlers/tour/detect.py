"""Tour chapter 7: object detection — propose candidate boxes, classify each, possibly as nothing.

Trains the two-stage detector (``antlers.tasks.detect.model``) on built-in ``scenes`` of coloured
shapes for a fixed time, then follows one held-out scene through every stage (candidates,
proposals kept by NMS, each proposal classified or called "nothing", per-class NMS) and shows the
final detections on more held-out scenes with their COCO AP.
"""

from __future__ import annotations

import time
from typing import Any

from antlers.tour.page import Chapter, TourContext, figure, paragraph, table

__all__ = ["detect_chapter"]


def _train(model: Any, train: Any, seconds: float, log: Any, batch_size: int = 8) -> int:
    """AdamW with the one-cycle schedule over ``seconds`` of training, in the precision that is
    faster here (as ``antlers train`` chooses it); returns the steps taken."""
    import torch

    from antlers.engine.schedule import learning_rate
    from antlers.tasks.detect.loader import DetectionLoader

    loader = DetectionLoader(train, batch_size, shuffle=True, flip=True, drop_last=True)
    cast = _faster_precision(model, loader, log)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    model.train()
    start, steps, epoch = time.perf_counter(), 0, 0
    while True:
        for batch in loader.epoch(epoch):
            progress = (time.perf_counter() - start) / seconds
            if progress >= 1:
                return steps
            for group in optimizer.param_groups:
                group["lr"] = learning_rate("onecycle", progress, 3e-3, warmup=0.1)
            with cast:
                loss = model(batch["image"], batch["boxes"], batch["labels"])["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            steps += 1
        epoch += 1


def _faster_precision(model: Any, loader: Any, log: Any) -> Any:
    """bf16 autocast or nothing, as ``engine.precision`` settles it for this detector and batch
    (timed on the first run on a machine, then remembered)."""
    import torch

    from antlers.engine.dist import DistInfo
    from antlers.engine.precision import autocast, autocast_dtype, choose_cpu_precision
    from antlers.tasks import default_config, get_task

    cpu = torch.device("cpu")
    config = default_config("detect", device="cpu", channels_last=False)  # the loop's optimizer
    config = choose_cpu_precision(get_task("detect"), config, model, loader, DistInfo(), log)
    return autocast(cpu, autocast_dtype(cpu, config))


def _new_detector(train: Any) -> Any:
    """A freshly initialised (seed 0) two-stage detector normalising by ``train``'s pixels."""
    import torch

    from antlers.tasks.detect.model import DetectorConfig, TwoStageDetector

    torch.manual_seed(0)
    pixels = train.images.float() / 255
    return TwoStageDetector(
        DetectorConfig(num_classes=len(train.classes)),
        pixels.mean(dim=(0, 2, 3)).tolist(),
        pixels.std(dim=(0, 2, 3)).tolist(),
    )


def detect_chapter(ctx: TourContext) -> Chapter:
    from antlers.data.object_scenes import load_object_scenes

    size, n_train, seconds = (96, 160, 4) if ctx.quick else (128, 1200, 90)
    train = load_object_scenes("train", n=n_train, image_size=size, fashion=False)
    test = load_object_scenes("test", n=48, image_size=size, fashion=False)
    ctx.log(f"      training the two-stage detector on {n_train} scenes for {seconds} s")
    model = _new_detector(train)
    steps = _train(model, train, seconds, lambda line: ctx.log(f"      {line}"))
    stages, scores = _evaluate_and_draw(ctx, model.eval(), test, train.classes)
    p = stages[0].proposals
    body = "\n".join(
        [
            paragraph(
                "The lecture's strategy: propose candidate boxes, then classify each box, "
                f"possibly as nothing. A small CNN (stride 8) turns each {size}x{size} scene "
                "into a feature map; a region proposal network scores 9 anchors per cell and "
                "moves them onto objects; NMS keeps the best non-overlapping proposals; "
                "roi_align crops each proposal's features to 7x7 and a classifier picks one of "
                f"{len(train.classes)} shapes or 'nothing' and refines the box; per-class NMS "
                f"removes duplicates. Trained from scratch for {seconds} s ({steps} steps of 8 "
                "scenes)."
            ),
            figure(
                "detect/stages.png",
                f"One held-out scene, stage by stage: {len(p.candidates)} scored candidates, "
                f"{len(p.boxes)} proposals kept, each classified (grey = nothing), detections.",
            ),
            figure("detect/detections.png", "Detections (score >= 0.5) on held-out scenes."),
            table(
                [
                    {
                        "held-out scenes": len(test),
                        "AP@[.5:.95]": f"{scores.ap:.3f}",
                        "AP50": f"{scores.ap50:.3f}",
                        "AP75": f"{scores.ap75:.3f}",
                    }
                ]
            ),
        ]
    )
    summary = f"AP50 {scores.ap50:.2f}, AP {scores.ap:.2f} on {len(test)} held-out scenes"
    return Chapter(7, "Object detection: propose, classify, suppress", body, summary)


def _evaluate_and_draw(ctx: TourContext, model: Any, test: Any, classes: list[str]) -> Any:
    """Run the stages on the held-out scenes, draw the first scene's stages and eight scenes'
    detections (score >= 0.5), and score all of them; returns (stages, COCO scores)."""
    import torch

    from antlers.tasks.detect.figures import (
        detection_captions,
        detections_grid,
        draw_boxes,
        stages_figure,
    )
    from antlers.tasks.detect.metrics import coco_evaluate, coco_ground_truth, coco_results
    from antlers.viz.figures import save_figure
    from antlers.viz.images import save_png

    images = test.images.float() / 255
    with torch.no_grad():
        stages = model.stages(images)
    folder = ctx.out / "detect"
    save_figure(stages_figure(images[0], stages[0], classes), folder / "stages.png")
    found = [s.detections for s in stages]
    size = tuple(images.shape[-2:])
    scores = coco_evaluate(
        coco_ground_truth(test.boxes, test.labels, size, len(classes)), coco_results(found)
    )
    pictures = []
    for image, d in zip(images[:8], found[:8], strict=True):
        shown = {k: v[d["scores"] >= 0.5] for k, v in d.items()}
        captions, colours = detection_captions(shown, classes)
        pictures.append(draw_boxes(image, shown["boxes"], captions, colours, zoom=2))
    save_png(detections_grid(pictures), folder / "detections.png")
    return stages, scores
