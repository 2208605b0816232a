"""Image classification: data, models, cross-entropy, predictions, metrics and report figures.

The task contract (see ``antlers.tasks``): ``load_data``, ``build_model``, ``loss``, ``predict``,
``evaluate``, ``report``. Images are float (B, C, H, W) in [0, 1]; labels int64 (B,).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.engine.loader import TensorLoader, image_meta
from antlers.tasks.classify.models import FAST_RESNET_WIDTH, build_classifier
from antlers.tasks.classify.whitening import patch_whitening_weights

__all__ = ["ClassifyTask", "TaskData"]

# Mirroring keeps the class of a garment, a photo or a shape, not of a digit.
NO_FLIP = {"mnist", "digits"}


@dataclass
class TaskData:
    """What ``fit`` trains on: loaders for this process, the validation set, and the model meta."""

    train: TensorLoader
    val: TensorLoader
    meta: dict[str, Any]
    val_images: Tensor
    val_labels: Tensor


@dataclass(frozen=True)
class ClassifyTask:
    name: str = "classify"
    primary_metric: str = "accuracy"
    maximize: bool = True
    default_model: str = "fast_resnet"
    config_defaults: dict[str, Any] = field(default_factory=dict)  # TrainConfig's are ours

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData:
        from antlers.data import load_dataset

        kwargs = {
            "data_dir": config.data_dir,
            "image_size": config.image_size,
            "strict": config.strict,
            "seed": config.seed,
        }
        train = load_dataset(config.data, "train", **kwargs)
        val = load_dataset(config.data, "test", **kwargs)
        model = config.model or self.default_model
        meta = image_meta(self.name, model, config.data, train.images, train.classes)
        flip = config.augment and train.name not in NO_FLIP
        meta["tta_flip"] = flip
        if model == "fast_resnet":  # its fixed first layer is computed from the training images
            kernels = patch_whitening_weights(
                train.images, meta["mean"], meta["std"], keep=FAST_RESNET_WIDTH
            )
            meta["patch_whitening"] = kernels.flatten(1).tolist()
        return TaskData(
            train=TensorLoader(
                train.images,
                train.labels,
                config.batch_size,
                shuffle=True,
                seed=config.seed,
                crop_padding=config.crop,
                flip=flip,
                rank=rank,
                world_size=world_size,
                drop_last=len(train.labels) > 4 * config.batch_size,
            ),
            val=TensorLoader(val.images, val.labels, 500, rank=rank, world_size=world_size),
            meta=meta,
            val_images=val.images,
            val_labels=val.labels,
        )

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        return build_classifier(meta)

    def loss(
        self, model: nn.Module, batch: dict[str, Tensor], label_smoothing: float = 0.0
    ) -> dict[str, Tensor]:
        logits = model(batch["image"])
        loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=label_smoothing)
        return {"loss": loss}

    @staticmethod
    def logits(model: nn.Module, images: Tensor) -> Tensor:
        """Inference logits (B, K); averaged with the mirrored images' when the model was trained
        with flips (``model.tta_flip``): test-time augmentation, one extra forward pass."""
        logits = model(images).float()
        if getattr(model, "tta_flip", False):
            logits = (logits + model(images.flip(-1)).float()) / 2
        return logits

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor) -> Tensor:
        """Class probabilities (B, K) for images (B, C, H, W) in [0, 1]."""
        model.eval()
        return self.logits(model, images).softmax(dim=1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: TensorLoader) -> dict[str, float]:
        """Mean loss, top-1 and top-5 accuracy over this process's shard, with its ``count``."""
        model.eval()
        device = next(model.parameters()).device
        loss = correct = top5 = count = 0.0
        for batch in loader.epoch(0):
            logits = self.logits(model, batch["image"].to(device))
            labels = batch["label"].to(device)
            loss += F.cross_entropy(logits, labels, reduction="sum").item()
            k = min(5, logits.shape[1])
            topk = logits.topk(k, dim=1).indices
            correct += (topk[:, 0] == labels).sum().item()
            top5 += (topk == labels[:, None]).any(dim=1).sum().item()
            count += len(labels)
        metrics = {"loss": loss / count, "accuracy": correct / count, "count": count}
        if logits.shape[1] > 5:
            metrics["top5"] = top5 / count
        return metrics

    def test_loader(
        self, meta: dict[str, Any], data: str, data_dir: str | None = None
    ) -> TensorLoader:
        """The test split of ``data`` at the model's image size; its classes must be the model's."""
        from antlers.data import load_dataset

        test = load_dataset(data, "test", data_dir=data_dir, image_size=meta["image_size"][0])
        if list(test.classes) != list(meta["classes"]):
            raise ValueError(
                f"{data}: its classes {list(test.classes)} differ from the model's "
                f"{list(meta['classes'])}"
            )
        return TensorLoader(test.images, test.labels, 500)

    def run_predict(self, run: Any, images: Any) -> tuple[Tensor, Tensor]:
        """``Run.predict``: class indices (B,) and probabilities (B, K)."""
        probabilities = self.predict(run.model, run.to_batch(images))
        return probabilities.argmax(dim=1), probabilities

    def predict_files(
        self, run: Any, paths: list[str], out: Path | None = None, top: int = 3
    ) -> list[dict[str, Any]]:
        """``antlers predict``: each image's top-``top`` labels with probabilities."""
        from antlers.io.images import read_images

        _, probabilities = self.run_predict(run, read_images(paths))
        values, indices = probabilities.topk(min(top, len(run.classes)), dim=1)
        rows = []
        for name, v, idx in zip(paths, values, indices, strict=True):
            best = [
                {"label": run.classes[i], "probability": round(float(p), 4)}
                for p, i in zip(v, idx, strict=True)
            ]
            shown = ", ".join(f"{b['label']} {b['probability']:.3f}" for b in best)
            rows.append({"image": name, "top": best, "text": f"{name}: {shown}"})
        return rows

    def report(self, run_dir: Path, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """Confusion matrix, per-class accuracy and a grid of misclassified test images."""
        from antlers.tasks.classify.report import write_report_figures

        return write_report_figures(self, run_dir, model, data)
