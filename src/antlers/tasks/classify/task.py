"""Image classification: one label per image, by cross-entropy on the logits.

The task contract (``antlers.tasks.base.Task``). Batches are ``{"image": float (B, C, H, W) in
[0, 1], "label": int64 (B,)}``; models return logits (B, K). Metrics: loss, top-1 accuracy (the
primary metric) and top-5 accuracy where there are more than five classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.engine import dist
from antlers.engine.loader import TensorLoader
from antlers.tasks.base import (
    TaskData,
    model_fields,
    with_label_smoothing,
)
from antlers.tasks.classify.models import (
    FAST_RESNET_WIDTH,
    Classifier,
    ClassifyConfig,
    build_classifier,
)
from antlers.tasks.classify.predict import Classification
from antlers.tasks.classify.whitening import patch_whitening_weights, whitening_images
from antlers.tasks.splits import (
    image_eval_loader,
    loader_options,
    validation_split,
)
from antlers.tasks.tta import tta_logits

__all__ = ["ClassifyTask"]

# Mirroring keeps the class of a garment, a photo or a shape, not of a digit.
NO_FLIP = {"mnist", "digits"}
PREDICT_CHUNK = 64  # files decoded and classified at a time by ``antlers predict``


@dataclass(frozen=True)
class ClassifyTask:
    """``label_smoothing``: of the training cross-entropy (``--label-smoothing``)."""

    name: ClassVar[str] = "classify"
    primary_metric: ClassVar[str] = "accuracy"
    maximize: ClassVar[bool] = True
    default_model: ClassVar[str] = "fast_resnet"
    label_smoothing: float = 0.1
    config_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})  # TrainConfig's
    data_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({})
    config_type: ClassVar[type[ClassifyConfig]] = ClassifyConfig

    def configure(self, config: TrainConfig) -> ClassifyTask:
        return with_label_smoothing(self, config)

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData:
        from antlers.data import load_dataset

        kwargs = {
            "data_dir": config.data_dir,
            "image_size": config.image_size,
            "strict": config.strict,
            "seed": config.seed,
            "cache": "on" if config.stream else config.data_cache,  # streaming needs the files
        }
        train, val = validation_split(load_dataset(config.data, "train", **kwargs), config.seed)
        test = load_dataset(config.data, "test", **kwargs)
        model_config = self.model_config(config, train)
        options = loader_options(config, rank, world_size, len(train.labels))
        options["flip"] = model_config.tta_flip  # mirroring changes a digit's class
        held_out = loader_options(config, rank, world_size)
        return TaskData(
            train=self.train_loader(train, config, options),
            val=TensorLoader.of(val, 500, **held_out),
            test=TensorLoader.of(test, 500, **held_out),
            model_config=model_config,
            test_set=test,
        )

    @staticmethod
    def train_loader(train: Any, config: TrainConfig, options: dict[str, Any]) -> Any:
        """Batches of the training ImageSet: from memory or the decoded cache with ``--crop``
        padding, or (``--stream``) decoded from its files by one worker per core."""
        if config.stream:
            from antlers.data.decode import available_cores
            from antlers.engine.stream import StreamLoader

            return StreamLoader.of(train, config.batch_size, available_cores(), **options)
        return TensorLoader.of(train, config.batch_size, crop_padding=config.crop, **options)

    def model_config(self, config: TrainConfig, train: Any) -> ClassifyConfig:
        """The config of the model ``config`` names, for the training ImageSet ``train``;
        fast_resnet's fixed first layer is computed here, from the training images."""
        model = config.model or self.default_model
        fields = model_fields(
            self.name, model, config.data, train.pixels, train.classes, rows=train.rows
        )
        whitening = None
        if model == "fast_resnet":
            kernels = patch_whitening_weights(
                train.head(whitening_images(train.pixels.shape[-2:])),
                fields["mean"],
                fields["std"],
                keep=FAST_RESNET_WIDTH,
            )
            whitening = tuple(tuple(row) for row in kernels.flatten(1).tolist())
        return ClassifyConfig(
            **fields,
            tta_flip=bool(config.augment and train.name not in NO_FLIP),
            tta_shift=config.crop > 0 and not config.stream,  # streaming crops differently
            patch_whitening=whitening,
        )

    def build_model(self, config: ClassifyConfig) -> Classifier:
        return build_classifier(config)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        logits = model(batch["image"]).float()
        loss = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
        return {"loss": loss}

    @staticmethod
    def logits(model: Classifier, images: Tensor) -> Tensor:
        """Inference logits (B, K), averaged over mirrored and shifted views when the model was
        trained with flips and random crops."""
        return tta_logits(model, images)

    @torch.no_grad()
    def probabilities(self, model: Classifier, images: Tensor) -> Tensor:
        """Class probabilities (B, K) for images (B, C, H, W) in [0, 1] on the model's device."""
        model.eval()
        return self.logits(model, images).softmax(dim=1)

    def predict(self, model: Classifier, config: ClassifyConfig, images: Any) -> Classification:
        """The most likely class and every class's probability, for a float batch (B, C, H, W)
        in [0, 1] or a list of PIL images (fitted to the model's size)."""
        from antlers.tasks.base import images_to_batch

        batch = images_to_batch(images, config.in_channels, config.image_size)
        device = next(model.parameters()).device
        return Classification(self.probabilities(model, batch.to(device)).cpu(), config.classes)

    @torch.no_grad()
    def evaluate(self, model: Classifier, loader: TensorLoader) -> dict[str, float]:
        """Mean loss, top-1 and top-5 accuracy over the loader's split (its shards pooled over
        the ranks when it is one), with the ``count`` of images."""
        model.eval()
        device = next(model.parameters()).device
        sums = torch.zeros(4, dtype=torch.float64)  # loss, correct, top-5 correct, count
        classes = 0
        for batch in loader.epoch(0):
            logits = self.logits(model, batch["image"].to(device))
            labels = batch["label"].to(device)
            classes = logits.shape[1]
            topk = logits.topk(min(5, classes), dim=1).indices
            sums += torch.tensor([
                F.cross_entropy(logits, labels, reduction="sum").item(),
                (topk[:, 0] == labels).sum().item(),
                (topk == labels[:, None]).any(dim=1).sum().item(),
                len(labels),
            ], dtype=torch.float64)  # fmt: skip
        loss, correct, top5, count = dist.pool_sum(sums, loader.world_size > 1).tolist()
        metrics = {"loss": loss / count, "accuracy": correct / count, "count": count}
        if classes > 5:
            metrics["top5"] = top5 / count
        return metrics

    def eval_loader(
        self,
        config: ClassifyConfig,
        data: str,
        split: str = "test",
        data_dir: str | None = None,
        seed: int = 0,
    ) -> TensorLoader:
        """The ``split`` of ``data`` at the model's image size (see ``eval_image_set``)."""
        return image_eval_loader(config, data, split, data_dir, seed, batch_size=500)

    def predict_files(
        self,
        model: Classifier,
        config: ClassifyConfig,
        paths: list[str],
        out: Path | None = None,
        top: int = 3,
    ) -> list[dict[str, Any]]:
        """``antlers predict``: per file {"image", "label", "top" (``top`` labels with their
        probabilities), "text"}; nothing is written."""
        from antlers.io.images import read_images

        rows = []
        for start in range(0, len(paths), PREDICT_CHUNK):  # memory bounded by the chunk, not N
            names = list(paths[start : start + PREDICT_CHUNK])
            result = self.predict(model, config, read_images(names))
            for name, row in zip(names, result.to_json(top), strict=True):
                shown = ", ".join(f"{b['label']} {b['probability']:.3f}" for b in row["top"])
                rows.append({"image": name, **row, "text": f"{name}: {shown}"})
        return rows

    def report(self, run_dir: Path, model: Classifier, data: TaskData) -> dict[str, Any]:
        """Confusion matrix, per-class accuracy and a grid of misclassified test images."""
        from antlers.tasks.classify.report import write_report

        return write_report(self, run_dir, model, data)
