"""Detection outputs: ``Run.predict``, ``antlers predict`` files, and the end-of-training report.

Images of any size are resized to the model's S x S for the forward pass; boxes come back in the
image's own pixels. ``antlers predict --out DIR`` writes each image with its boxes, labels and
scores drawn (DIR/<name>.png) and all detections as a COCO results file (DIR/detections.json,
category ids as in the training data, "file_name" beside each "image_id").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.tasks.detect.figures import (
    detection_captions,
    detections_grid,
    draw_boxes,
    pr_curve_figure,
    save_picture,
)

__all__ = ["predict_files", "run_predict", "write_report"]

SHOW_THRESHOLD = 0.5  # detections drawn and listed; the JSON holds every one


def _to_model_size(run: Any, images: Any) -> tuple[Tensor, list[tuple[int, int]]]:
    """A float batch (B, 3, S, S) and each image's original (height, width)."""
    import numpy as np

    s = run.meta["image_size"][0]
    if isinstance(images, Tensor):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"images must be (B, 3, H, W) floats in [0, 1], got shape {tuple(images.shape)}"
            )
        sizes = [(int(images.shape[2]), int(images.shape[3]))] * len(images)
        batch = torch.nn.functional.interpolate(
            images.float(), size=(s, s), mode="bilinear", antialias=True
        )
        return batch, sizes
    from antlers.data.folder import to_8bit

    tensors, sizes = [], []
    for image in images:
        rgb = to_8bit(image).convert("RGB")
        sizes.append((rgb.height, rgb.width))
        array = np.asarray(rgb.resize((s, s), resample=3), dtype=np.float32) / 255
        tensors.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(tensors), sizes


def run_predict(task: Any, run: Any, images: Any) -> list[dict[str, Tensor]]:
    """Per image {"boxes" (N, 4) xyxy in its own pixels, "labels" (N,), "scores" (N,)}."""
    batch, sizes = _to_model_size(run, images)
    s = batch.shape[-1]
    result = []
    for detections, (h, w) in zip(task.predict(run.model, batch), sizes, strict=True):
        scale = torch.tensor([w / s, h / s, w / s, h / s])
        result.append({**detections, "boxes": detections["boxes"] * scale})
    return result


def predict_files(
    task: Any, run: Any, paths: list[str], out: Path | None, **options: Any
) -> list[dict[str, Any]]:
    """One row per file: detections (score >= 0.5 in the text), drawn PNG and COCO JSON in out."""
    from antlers.io.files import atomic_write
    from antlers.io.images import read_images

    pictures = read_images(paths)
    predictions = run_predict(task, run, pictures)
    ids = run.meta.get("category_ids", list(range(len(run.classes))))
    rows, results = [], []
    for i, (name, picture, p) in enumerate(zip(paths, pictures, predictions, strict=True)):
        found = [
            {
                "label": run.classes[k],
                "score": round(float(s), 4),
                "box": [round(float(v), 1) for v in b],
            }
            for b, k, s in zip(p["boxes"], p["labels"].tolist(), p["scores"], strict=True)
        ]
        for d, k in zip(found, p["labels"].tolist(), strict=True):
            x0, y0, x1, y1 = d["box"]
            results.append(
                {
                    "image_id": i + 1,
                    "file_name": name,
                    "category_id": int(ids[k]),
                    "bbox": [x0, y0, round(x1 - x0, 1), round(y1 - y0, 1)],
                    "score": d["score"],
                }
            )
        shown = [d for d in found if d["score"] >= SHOW_THRESHOLD]
        text = ", ".join(f"{d['label']} {d['score']:.2f}" for d in shown) or "nothing"
        row = {"image": name, "detections": shown, "text": f"{name}: {text}"}
        if out is not None:
            row["drawn"] = str(_draw_file(picture, p, run.classes, out / f"{Path(name).stem}.png"))
        rows.append(row)
    if out is not None:
        atomic_write(out / "detections.json", json.dumps(results, indent=1))
    return rows


def _draw_file(picture: Any, p: dict[str, Tensor], classes: list[str], path: Path) -> Path:
    import numpy as np

    from antlers.data.folder import to_8bit

    rgb = np.asarray(to_8bit(picture).convert("RGB"), dtype=np.float32) / 255
    keep = p["scores"] >= SHOW_THRESHOLD
    shown = {k: v[keep] for k, v in p.items()}
    captions, colours = detection_captions(shown, classes)
    image = torch.from_numpy(rgb).permute(2, 0, 1)
    zoom = max(1, 384 // max(image.shape[1:]))
    save_picture(draw_boxes(image, shown["boxes"], captions, colours, zoom=zoom), path)
    return path


@torch.no_grad()
def write_report(task: Any, run_dir: Path, model: nn.Module, data: Any) -> dict[str, Any]:
    """pr_curve.png, detections.png (test images) and report.html with per-class AP."""
    from antlers.tasks.detect.loader import DetectionLoader
    from antlers.tasks.detect.metrics import coco_evaluate, coco_results
    from antlers.viz.figures import save_figure

    classes = data.meta["classes"]
    loader = DetectionLoader(data.val_set, 32)
    truth, predictions = task.collect(model, loader)
    scores = coco_evaluate(truth, coco_results(predictions))
    save_figure(
        pr_curve_figure(scores.recall, scores.precision50, classes), run_dir / "pr_curve.png"
    )
    pictures = []
    for i in range(min(8, len(predictions))):
        keep = predictions[i]["scores"] >= SHOW_THRESHOLD
        shown = {k: v[keep] for k, v in predictions[i].items()}
        captions, colours = detection_captions(shown, classes)
        pictures.append(draw_boxes(data.val_set[i]["image"], shown["boxes"], captions, colours))
    if pictures:
        save_picture(detections_grid(pictures), run_dir / "detections.png")
    report = {**scores.metrics(), "per_class_ap": dict(zip(classes, scores.per_class, strict=True))}
    _report_html(run_dir, report)
    return report


def _report_html(run_dir: Path, report: dict[str, Any]) -> Path:
    from antlers.viz.html import write_report_html

    summary = f"test AP {report['ap']:.3f} · AP50 {report['ap50']:.3f} · AP75 {report['ap75']:.3f}"
    per_class = {c: f"{a:.3f}" for c, a in report["per_class_ap"].items()}
    figures = ("curves", "pr_curve", "detections")
    return write_report_html(run_dir, summary, "AP", per_class, figures)
