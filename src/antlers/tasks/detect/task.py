"""Object detection: propose candidate boxes, classify each one (possibly as nothing), suppress.

The task contract (see ``antlers.tasks``) around ``detect_model.TwoStageDetector``. Batches are
{"image": float (B, 3, S, S) in [0, 1], "boxes": B tensors (n_i, 4) xyxy pixels, "labels": B
tensors (n_i,)}; predictions are per image {"boxes" (N, 4), "labels" (N,), "scores" (N,)}.
Metrics are COCO's (pycocotools): AP@[.5:.95] ("ap", the primary metric), AP50, AP75.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.data.boxset import DetectionSet
from antlers.tasks.detect.loader import DetectionLoader
from antlers.tasks.detect.metrics import coco_evaluate, coco_ground_truth, coco_results
from antlers.tasks.detect.model import DetectorConfig, build_detector, detector_meta

__all__ = ["DetectTask", "DetectionData"]

EVAL_BATCH = 32


@dataclass
class DetectionData:
    """What ``fit`` trains on: loaders for this process, the validation set and the model meta."""

    train: DetectionLoader
    val: DetectionLoader
    meta: dict[str, Any]
    val_set: DetectionSet


@dataclass(frozen=True)
class DetectTask:
    name: str = "detect"
    primary_metric: str = "ap"
    maximize: bool = True
    default_model: str = "two_stage"
    config_defaults: dict[str, Any] = field(
        default_factory=lambda: {
            "data": "scenes",
            "optimizer": "adamw",
            "lr": 3e-3,
            "warmup": 0.1,
            "batch_size": 8,
            "label_smoothing": 0.0,
            "ema": 0.0,
            "clip_grad": 10.0,
            "weight_decay": 1e-4,
        }
    )

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> DetectionData:
        from antlers.data.detection import load_detection

        options = {"image_size": config.image_size, "seed": config.seed}
        train = load_detection(config.data, "train", **options)
        val = load_detection(config.data, "test", **options)
        if config.model not in ("", self.default_model):
            raise ValueError(f"unknown detection model {config.model!r}; allowed: two_stage")
        for note in train.notes if rank == 0 else ():
            print(note)
        pixels = train.images[:512].float().div(255)
        meta = {
            "task": self.name,
            "model": self.default_model,
            "in_channels": 3,
            "image_size": [train.image_size, train.image_size],
            "classes": list(train.classes),
            "category_ids": list(train.category_ids),
            "data": config.data,
            "mean": pixels.mean(dim=(0, 2, 3)).tolist(),
            "std": pixels.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist(),
            "detector": detector_meta(DetectorConfig(num_classes=len(train.classes))),
        }
        return DetectionData(
            train=DetectionLoader(
                train,
                config.batch_size,
                shuffle=True,
                seed=config.seed,
                flip=config.augment,
                rank=rank,
                world_size=world_size,
                drop_last=len(train) > 4 * config.batch_size,
            ),
            val=DetectionLoader(val, EVAL_BATCH, rank=rank, world_size=world_size),
            meta=meta,
            val_set=val,
        )

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        return build_detector(meta)

    def loss(self, model: nn.Module, batch: dict[str, Any], **options: Any) -> dict[str, Tensor]:
        """The detector's four losses and their sum; ``options`` (label_smoothing) are unused."""
        return model(batch["image"], batch["boxes"], batch["labels"])

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor) -> list[dict[str, Tensor]]:
        """Per image {"boxes" (N, 4) xyxy pixels, "labels" (N,), "scores" (N,)}."""
        model.eval()
        return [{k: v.cpu() for k, v in d.items()} for d in model(images)]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DetectionLoader) -> dict[str, float]:
        """COCO AP, AP50 and AP75 over this process's shard, with its ``count`` of images."""
        truth, predictions = self.collect(model, loader)
        scores = coco_evaluate(truth, coco_results(predictions))
        return {**scores.metrics(), "count": float(len(predictions))}

    def collect(
        self, model: nn.Module, loader: DetectionLoader
    ) -> tuple[dict[str, Any], list[dict[str, Tensor]]]:
        """The loader's ground truth as a COCO dict, and the model's predictions, in order."""
        device = next(model.parameters()).device
        boxes, labels, predictions = [], [], []
        for batch in loader.epoch(0):
            predictions += self.predict(model, batch["image"].to(device))
            boxes += batch["boxes"]
            labels += batch["labels"]
        size = tuple(loader.data.images.shape[-2:])
        return coco_ground_truth(boxes, labels, size, len(loader.data.classes)), predictions

    def test_loader(
        self, meta: dict[str, Any], data: str, data_dir: str | None = None
    ) -> DetectionLoader:
        """The test split of ``data`` at the model's image size; its classes must be the model's."""
        from antlers.data.detection import load_detection

        config = TrainConfig.from_json(meta["config"]) if "config" in meta else None
        seed = config.seed if config else 0
        test = load_detection(data, "test", image_size=meta["image_size"][0], seed=seed)
        if list(test.classes) != list(meta["classes"]):
            raise ValueError(
                f"{data}: its classes {list(test.classes)} differ from the model's "
                f"{list(meta['classes'])}"
            )
        return DetectionLoader(test, EVAL_BATCH)

    def run_predict(self, run: Any, images: Any) -> list[dict[str, Tensor]]:
        """``Run.predict``: per image boxes (N, 4) xyxy in its own pixels, labels, scores."""
        from antlers.tasks.detect.report import run_predict

        return run_predict(self, run, images)

    def predict_files(
        self, run: Any, paths: list[str], out: Path | None = None, **options: Any
    ) -> list[dict[str, Any]]:
        """``antlers predict``: detections per file; with ``out``, drawn PNGs and COCO results."""
        from antlers.tasks.detect.report import predict_files

        return predict_files(self, run, paths, out, **options)

    def report(self, run_dir: Path, model: nn.Module, data: DetectionData) -> dict[str, Any]:
        """Per-class AP, PR curves at IoU 0.5 and drawn test detections."""
        from antlers.tasks.detect.report import write_report

        return write_report(self, run_dir, model, data)
