"""Object detection: propose candidate boxes, classify each one (possibly as nothing), suppress.

The task contract (``antlers.tasks.base.Task``) around ``model.TwoStageDetector``. Batches are
{"image": float (B, 3, S, S) in [0, 1], "boxes": B tensors (n_i, 4) xyxy pixels, "labels": B
tensors (n_i,)}; predictions are per image {"boxes" (N, 4), "labels" (N,), "scores" (N,)}.
Metrics are COCO's (pycocotools): AP@[.5:.95] ("ap", the primary metric), AP50, AP75.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.data.boxset import DetectionSet
from antlers.engine import dist
from antlers.tasks.base import (
    TaskData,
    model_fields,
)
from antlers.tasks.detect.loader import DetectionLoader
from antlers.tasks.detect.metrics import coco_evaluate, coco_ground_truth, coco_results
from antlers.tasks.detect.model import (
    DetectConfig,
    DetectorConfig,
    TwoStageDetector,
    build_detector,
)
from antlers.tasks.detect.predict import Detections, detect
from antlers.tasks.splits import (
    check_classes,
    check_split,
    loader_options,
    validation_split,
)

__all__ = ["DetectTask"]

EVAL_BATCH = 32


@dataclass(frozen=True)
class DetectTask:
    name: ClassVar[str] = "detect"
    primary_metric: ClassVar[str] = "ap"
    maximize: ClassVar[bool] = True
    default_model: ClassVar[str] = "two_stage"
    config_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "data": "scenes",
            "optimizer": "adamw",
            "lr": 3e-3,
            "warmup": 0.1,
            "batch_size": 8,
            "ema": 0.0,
            "clip_grad": 10.0,
            "weight_decay": 1e-4,
        }
    )
    data_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({})
    config_type: ClassVar[type[DetectConfig]] = DetectConfig

    def configure(self, config: TrainConfig) -> DetectTask:
        return self  # no training options of its own

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData:
        from antlers.data.detection import DETECTION_SETS, load_detection_splits

        if config.stream and config.data in DETECTION_SETS:  # refused before generating them
            from antlers.engine.stream import unstreamable

            raise unstreamable(config.data, "the image files of a COCO file or YOLO folder")
        options = {"image_size": config.image_size, "seed": config.seed, "strict": config.strict}
        options["cache"] = "on" if config.stream else config.data_cache  # streaming: the files
        whole, test = load_detection_splits(config.data, ("train", "test"), **options)
        train, val = validation_split(whole, config.seed)
        if config.model not in ("", self.default_model):
            raise ValueError(f"unknown detection model {config.model!r}; allowed: two_stage")
        for note in train.notes if rank == 0 else ():
            print(note)
        sample = train.pick(torch.arange(min(512, len(train))))  # enough for the pixel statistics
        fields = model_fields(self.name, self.default_model, config.data, sample, train.classes)
        model_config = DetectConfig(
            **fields,
            category_ids=tuple(train.category_ids),
            detector=DetectorConfig(num_classes=len(train.classes)),
        )
        return TaskData(
            train=self.train_loader(
                train, config, loader_options(config, rank, world_size, len(train))
            ),
            val=DetectionLoader(val, EVAL_BATCH, **loader_options(config, rank, world_size)),
            test=DetectionLoader(test, EVAL_BATCH, **loader_options(config, rank, world_size)),
            model_config=model_config,
            test_set=test,
        )

    @staticmethod
    def train_loader(train: DetectionSet, config: TrainConfig, options: dict[str, Any]) -> Any:
        """Batches of the training images: their S x S copies, or (``--stream``) decoded from
        their files by one worker per core."""
        if config.stream:
            from antlers.data.decode import available_cores
            from antlers.tasks.detect.stream import DetectStreamLoader

            return DetectStreamLoader.of(train, config.batch_size, available_cores(), **options)
        return DetectionLoader(train, config.batch_size, **options)

    def build_model(self, config: DetectConfig) -> TwoStageDetector:
        return build_detector(config)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The detector's four losses and their sum."""
        return model(batch["image"], batch["boxes"], batch["labels"])

    @torch.no_grad()
    def detections(self, model: nn.Module, images: Tensor) -> list[dict[str, Tensor]]:
        """Per image of a batch (B, 3, S, S) at the model's size: {"boxes" (N, 4) xyxy pixels,
        "labels" (N,), "scores" (N,)} on the CPU."""
        model.eval()
        return [{k: v.cpu() for k, v in d.items()} for d in model(images)]

    def predict(self, model: nn.Module, config: DetectConfig, images: Any) -> Detections:
        """Boxes in each image's own pixels, labels and scores, for a float batch (B, 3, H, W)
        in [0, 1] or a list of PIL images of any sizes."""
        return detect(self, model, config, images)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: DetectionLoader) -> dict[str, float]:
        """COCO AP, AP50 and AP75 over the loader's split, with its ``count`` of images: when the
        loader is one shard, every rank's detections are gathered and scored once."""
        truth, predictions = self.collect(model, loader)
        scores = coco_evaluate(truth, coco_results(predictions))
        return {**scores.metrics(), "count": float(len(predictions))}

    def collect(
        self, model: nn.Module, loader: DetectionLoader
    ) -> tuple[dict[str, Any], list[dict[str, Tensor]]]:
        """The split's ground truth as a COCO dict, and the model's predictions (on the CPU), in
        the split's order; gathered from every rank when the loader is one shard."""
        device = next(model.parameters()).device
        indices, samples = [], []
        for batch in loader.epoch(0):
            found = self.detections(model, batch["image"].to(device))
            cpu = [{k: v.cpu() for k, v in d.items()} for d in found]
            samples += zip(batch["boxes"], batch["labels"], cpu, strict=True)
            indices += batch["index"].tolist()
        samples = dist.gather_in_order(samples, indices, loader.world_size > 1)
        boxes, labels, predictions = ([sample[i] for sample in samples] for i in range(3))
        size = tuple(loader.data.images.shape[-2:])
        return coco_ground_truth(boxes, labels, size, len(loader.data.classes)), predictions

    def eval_loader(
        self,
        config: DetectConfig,
        data: str,
        split: str = "test",
        data_dir: str | None = None,
        seed: int = 0,
    ) -> DetectionLoader:
        """The ``split`` of ``data`` at the model's image size: "test", or "val" (held out of
        the training split with the run's ``seed``); its classes must be the model's."""
        from antlers.data.detection import load_detection

        check_split(split)
        source = "test" if split == "test" else "train"
        scenes = load_detection(data, source, image_size=config.image_size[0], seed=seed)
        if split == "val":
            scenes = validation_split(scenes, seed)[1]
        check_classes(data, scenes.classes, config.classes)
        return DetectionLoader(scenes, EVAL_BATCH)

    def predict_files(
        self,
        model: nn.Module,
        config: DetectConfig,
        paths: list[str],
        out: Path | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:
        """``antlers predict``: detections per file; with ``out``, drawn PNGs and COCO results."""
        from antlers.tasks.detect.predict import predict_files

        return predict_files(self, model, config, paths, out)

    def report(self, run_dir: Path, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """Per-class AP, PR curves at IoU 0.5 and drawn test detections."""
        from antlers.tasks.detect.report import write_report

        return write_report(self, run_dir, model, data)
