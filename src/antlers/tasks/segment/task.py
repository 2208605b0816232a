"""Semantic segmentation: a class for every pixel, with U-Net or SegNet (or LR-ASPP).

The task contract (see ``antlers.tasks``). Batches are ``{"image": float (B, C, H, W) in [0, 1],
"mask": int64 (B, H, W)}`` with 255 = ignore. Models return logits (B, K, H, W); the loss is the
per-pixel cross-entropy (ignored pixels left out), plus ``dice`` x the soft Dice loss when the
task is made with ``SegmentTask(dice=...)``. Metrics (``segment_metrics``): pixel accuracy,
per-class IoU and mIoU from one confusion matrix pooled over the whole test set.

Data: ``scenes`` (the built-in street scenes, ``antlers.data.street_scenes``) or a folder of
images, masks and classes.txt (``antlers.data.mask_folder``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.config import TrainConfig
from antlers.data.segset import IGNORE_INDEX, SegmentationSet
from antlers.engine.loader import image_meta
from antlers.tasks.segment.loader import SegmentLoader
from antlers.tasks.segment.metrics import confusion_matrix, metrics_from_confusion
from antlers.tasks.segment.models import build_segmenter

__all__ = ["SegmentData", "SegmentTask", "dice_loss", "load_segmentation"]

BUILT_IN = ("scenes",)


def load_segmentation(
    name_or_path: str,
    split: str,
    image_size: int | None = None,
    seed: int = 0,
    n: int | None = None,
) -> SegmentationSet:
    """``scenes`` (built in; ``n`` scenes, default 4000 train / 500 test), else a segmentation
    folder (see ``antlers.data.mask_folder``)."""
    if name_or_path == "scenes":
        from antlers.data.street_scenes import load_scenes

        return load_scenes(split, image_size=image_size, seed=seed, n=n)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown segmentation data {name_or_path!r}: not a built-in set "
            f"({', '.join(BUILT_IN)}) and no such folder"
        )
    from antlers.data.mask_folder import load_mask_folder

    return load_mask_folder(path, split, image_size=image_size, seed=seed)


def dice_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Soft Dice loss (Milletari et al. 2016), averaged over classes: 1 - 2|P∩T| / (|P| + |T|)
    with P the softmax probabilities and T the one-hot targets, over non-ignored pixels."""
    keep = (target != ignore_index).unsqueeze(1)
    probs = logits.float().softmax(1) * keep
    onehot = F.one_hot(target.clamp_max(logits.shape[1] - 1), logits.shape[1])
    onehot = onehot.permute(0, 3, 1, 2) * keep
    dims = (0, 2, 3)
    overlap = (probs * onehot).sum(dims)
    total = probs.sum(dims) + onehot.sum(dims)
    return 1 - ((2 * overlap + 1) / (total + 1)).mean()


@dataclass
class SegmentData:
    """Loaders for this process, the model meta, and the test set (for report figures)."""

    train: SegmentLoader
    val: SegmentLoader
    meta: dict[str, Any]
    test_set: SegmentationSet


@dataclass(frozen=True)
class SegmentTask:
    name: str = "segment"
    primary_metric: str = "miou"
    maximize: bool = True
    default_model: str = "unet"
    dice: float = 1.0  # weight of the Dice term added to the cross-entropy (0: off)
    scenes: tuple[int, int] | None = (
        None  # (train, test) counts of built-in scenes, if not 4000/500
    )
    config_defaults: dict[str, Any] = field(
        default_factory=lambda: {
            "data": "scenes",
            "optimizer": "adamw",
            "lr": 5e-3,
            "weight_decay": 1e-4,
            "batch_size": 8,
            "label_smoothing": 0.0,
            "ema": 0.0,
            "cpu_amp": True,  # 1.45x faster U-Net steps on a CPU with AVX512-BF16
        }
    )

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> SegmentData:
        counts = self.scenes or (None, None)
        train = load_segmentation(config.data, "train", config.image_size, config.seed, counts[0])
        test = load_segmentation(config.data, "test", config.image_size, config.seed, counts[1])
        model = config.model or self.default_model
        meta = image_meta(self.name, model, config.data, train.images, train.classes)
        meta["tta_flip"] = bool(config.augment)
        n = len(train)
        return SegmentData(
            train=SegmentLoader(
                train.images,
                train.masks,
                config.batch_size,
                shuffle=True,
                seed=config.seed,
                crop_padding=config.crop,
                flip=config.augment,
                rank=rank,
                world_size=world_size,
                drop_last=n > 4 * config.batch_size,
            ),
            val=SegmentLoader(test.images, test.masks, 100, rank=rank, world_size=world_size),
            meta=meta,
            test_set=test,
        )

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        model = build_segmenter(meta)
        model.tta_flip = bool(meta.get("tta_flip", False))
        model.classes = list(meta["classes"])  # names the per-class IoUs
        return model

    def loss(
        self,
        model: nn.Module,
        batch: dict[str, Tensor],
        label_smoothing: float = 0.0,
        dice: float | None = None,
        **_: Any,
    ) -> dict[str, Tensor]:
        """Per-pixel cross-entropy (ignore_index 255) [+ dice x soft Dice]."""
        logits = model(batch["image"]).float()
        mask = batch["mask"]
        ce = F.cross_entropy(
            logits, mask, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing
        )
        weight = self.dice if dice is None else dice
        if not weight:
            return {"loss": ce}
        d = dice_loss(logits, mask)
        return {"loss": ce + weight * d, "ce": ce, "dice": d}

    @staticmethod
    def logits(model: nn.Module, images: Tensor) -> Tensor:
        """Inference logits (B, K, H, W), averaged with the mirrored image's (mirrored back)
        when the model was trained with flips (``model.tta_flip``)."""
        logits = model(images).float()
        if getattr(model, "tta_flip", False):
            logits = (logits + model(images.flip(-1)).float().flip(-1)) / 2
        return logits

    @torch.no_grad()
    def predict(self, model: nn.Module, images: Tensor) -> Tensor:
        """Class probabilities (B, K, H, W) (softmax over classes) for images (B, C, H, W)."""
        model.eval()
        return self.logits(model, images).softmax(dim=1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, loader: SegmentLoader) -> dict[str, float]:
        """Loss per pixel, pixel accuracy and mIoU, pooled over this process's shard, with
        each class's IoU (``iou_<class>``) when ``loader.per_class``; ``count`` = images."""
        model.eval()
        device = next(model.parameters()).device
        matrix, loss, pixels, count = None, 0.0, 0, 0
        for batch in loader.epoch(0):
            logits = self.logits(model, batch["image"].to(device))
            mask = batch["mask"].to(device)
            k = logits.shape[1]
            loss += F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX, reduction="sum").item()
            pixels += int((mask != IGNORE_INDEX).sum())
            part = confusion_matrix(logits.argmax(1), mask, k).cpu()
            matrix = part if matrix is None else matrix + part
            count += len(mask)
        scores = metrics_from_confusion(matrix)
        metrics = {
            "loss": loss / max(pixels, 1),
            "pixel_accuracy": scores["pixel_accuracy"],
            "miou": scores["miou"],
        }
        if getattr(loader, "per_class", False):
            names = getattr(model, "classes", None) or [str(i) for i in range(len(matrix))]
            metrics.update({f"iou_{c}": v for c, v in zip(names, scores["iou"], strict=True)})
        return {**metrics, "count": count}

    def test_loader(
        self, meta: dict[str, Any], data: str, data_dir: str | None = None
    ) -> SegmentLoader:
        """The test split of ``data`` at the model's image size; its classes must be the model's."""
        seed = json.loads(meta["config"])["seed"] if "config" in meta else 0  # the same split
        count = self.scenes[1] if self.scenes else None
        test = load_segmentation(data, "test", meta["image_size"][0], seed, count)
        if list(test.classes) != list(meta["classes"]):
            raise ValueError(
                f"{data}: its classes {list(test.classes)} differ from the model's "
                f"{list(meta['classes'])}"
            )
        return SegmentLoader(test.images, test.masks, 100, per_class=True)

    def run_predict(self, run: Any, images: Any) -> Tensor:
        """``Run.predict``: class ids (B, H, W) int64 at the images' own size, for a float
        batch (B, C, H, W) in [0, 1] or a list of same-sized PIL images."""
        from antlers.tasks.segment.predict import segment_images

        return segment_images(self, run, images)

    def predict_files(
        self, run: Any, paths: list[str], out: Path | None = None, **_: Any
    ) -> list[dict[str, Any]]:
        """``antlers predict``: for each image, ``out/NAME_mask.png`` (class ids, palette PNG)
        and ``out/NAME_overlay.png`` (the classes drawn over the image, with a legend)."""
        from antlers.tasks.segment.predict import predict_files

        return predict_files(self, run, paths, out or Path("runs/segment/predict"))

    def report(self, run_dir: Path, model: nn.Module, data: SegmentData) -> dict[str, Any]:
        """Overlays on held-out scenes, per-class IoU bars, confusion matrix, report.html."""
        from antlers.tasks.segment.report import write_report

        return write_report(self, run_dir, model, data)
