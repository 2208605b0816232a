"""Detections on new images: :class:`Detections` (``Run.predict``) and ``antlers predict``'s files.

Images of any size are resized to the model's S x S for the forward pass; boxes come back in the
image's own pixels (EXIF orientation applied, as by every reader of image files).
``antlers predict --out DIR`` writes each image with its boxes, labels and scores drawn
(DIR/<name>.png) and all detections as a COCO results file (DIR/detections.json,
category ids as in the training data, "file_name" beside each "image_id").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.io.images import image_to_tensor, prepare_image
from antlers.tasks.detect.figures import detection_captions, draw_boxes
from antlers.viz.images import save_png

__all__ = ["SHOW_THRESHOLD", "Detections", "detect", "predict_files"]


@dataclass(frozen=True)
class Detections:
    """Per image i: ``boxes[i]`` (N_i, 4) xyxy in the image's own pixels, ``labels[i]`` (N_i,)
    indices into ``classes``, ``scores[i]`` (N_i,) in [0, 1], best first."""

    boxes: list[Tensor]
    labels: list[Tensor]
    scores: list[Tensor]
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        """Image ``i``'s {"boxes", "labels", "scores"}."""
        return {"boxes": self.boxes[i], "labels": self.labels[i], "scores": self.scores[i]}

    def per_image(self) -> list[dict[str, Tensor]]:
        return [self[i] for i in range(len(self))]

    def to_json(self, threshold: float = 0.0) -> list[dict[str, Any]]:
        """Per image {"detections": [{"label", "score", "box": [x0, y0, x1, y1]}, ...]} with
        score >= ``threshold``."""
        return [
            {
                "detections": [
                    {
                        "label": self.classes[int(k)],
                        "score": round(float(s), 4),
                        "box": [round(float(v), 1) for v in b],
                    }
                    for b, k, s in zip(p["boxes"], p["labels"], p["scores"], strict=True)
                    if s >= threshold
                ]
            }
            for p in self.per_image()
        ]


SHOW_THRESHOLD = 0.5  # detections drawn and listed; the JSON holds every one


def _to_model_size(config: Any, images: Any) -> tuple[Tensor, list[tuple[int, int]]]:
    """A float batch (B, 3, S, S) and each image's original (height, width), upright (EXIF)."""
    s = config.image_size[0]
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
    upright = [prepare_image(image, 3) for image in images]
    batch = torch.stack([image_to_tensor(im, 3, (s, s), resize="stretch") for im in upright])
    return batch, [(im.height, im.width) for im in upright]


def detect(task: Any, model: nn.Module, config: Any, images: Any) -> Detections:
    """``Run.predict`` for detection: boxes in each image's own pixels, for a float batch
    (B, 3, H, W) in [0, 1] or a list of PIL images of any sizes."""
    batch, sizes = _to_model_size(config, images)
    s = batch.shape[-1]
    boxes, labels, scores = [], [], []
    for found, (h, w) in zip(task.detections(model, batch), sizes, strict=True):
        boxes.append(found["boxes"] * torch.tensor([w / s, h / s, w / s, h / s]))
        labels.append(found["labels"])
        scores.append(found["scores"])
    return Detections(boxes, labels, scores, tuple(config.classes))


def predict_files(
    task: Any, model: nn.Module, config: Any, paths: list[str], out: Path | None
) -> list[dict[str, Any]]:
    """One row per file: detections (score >= 0.5 in the text), drawn PNG and COCO JSON in out."""
    from antlers.io.files import atomic_write
    from antlers.io.images import FULL_SIZE_PIXELS, read_images

    pictures = read_images(paths, FULL_SIZE_PIXELS)  # drawn at their own size
    predictions = detect(task, model, config, pictures)
    classes = list(config.classes)
    ids = config.category_ids or range(len(classes))
    rows, results = [], []
    per_image = predictions.per_image()
    for i, (name, picture, p) in enumerate(zip(paths, pictures, per_image, strict=True)):
        found = [
            {
                "label": classes[k],
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
            row["drawn"] = str(_draw_file(picture, p, classes, out / f"{Path(name).stem}.png"))
        rows.append(row)
    if out is not None:
        atomic_write(out / "detections.json", json.dumps(results, indent=1))
    return rows


def _draw_file(picture: Any, p: dict[str, Tensor], classes: list[str], path: Path) -> Path:
    keep = p["scores"] >= SHOW_THRESHOLD
    shown = {k: v[keep] for k, v in p.items()}
    captions, colours = detection_captions(shown, classes)
    image = image_to_tensor(picture, 3)  # upright, as the boxes were found
    zoom = max(1, 384 // max(image.shape[1:]))
    return save_png(draw_boxes(image, shown["boxes"], captions, colours, zoom=zoom), path)
