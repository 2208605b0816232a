"""Semantic segmentation: a class for every pixel, with U-Net or SegNet (or LR-ASPP).

The task contract (``antlers.tasks.base.Task``). Batches are ``{"image": float (B, C, H, W)
in [0, 1], "mask": int64 (B, H, W)}`` with 255 = ignore. Models return logits (B, K, H, W);
the loss is the per-pixel cross-entropy (ignored pixels left out), plus ``dice`` x the soft
Dice loss when the task is made with ``SegmentTask(dice=...)``. Metrics (``metrics.py``): pixel
accuracy, per-class IoU and mIoU from one confusion matrix pooled over the whole test set.

Data: ``scenes`` (the built-in street scenes, ``antlers.data.street_scenes``) or a folder of
images, masks and classes.txt (``antlers.data.mask_folder``).
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
from antlers.data.segset import IGNORE_INDEX, SegmentationSet
from antlers.engine import dist
from antlers.engine.metrics import confusion_matrix
from antlers.tasks.base import (
    TaskData,
    model_fields,
    with_label_smoothing,
)
from antlers.tasks.segment.loader import SegmentLoader
from antlers.tasks.segment.metrics import metrics_from_confusion
from antlers.tasks.segment.models import SegmentConfig, Segmenter, build_segmenter
from antlers.tasks.segment.predict import Segmentation, segment
from antlers.tasks.splits import (
    check_classes,
    check_split,
    loader_options,
    validation_split,
)
from antlers.tasks.tta import tta_logits

__all__ = ["SegmentTask", "dice_loss", "load_segmentation"]

BUILT_IN = ("scenes",)


def load_segmentation(
    name_or_path: str,
    split: str,
    image_size: int | None = None,
    seed: int = 0,
    n: int | None = None,
    strict: bool = False,
    cache: str = "auto",
) -> SegmentationSet:
    """``scenes`` (built in; ``n`` scenes, default 4000 train / 500 test), else a segmentation
    folder (see ``antlers.data.mask_folder``; ``strict``: refuse a bad pair, not skip it;
    ``cache``: "auto", "on" or "off", its decoded cache)."""
    if name_or_path == "scenes":
        from antlers.data.street_scenes import load_street_scenes

        return load_street_scenes(split, image_size=image_size, seed=seed, n=n)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ValueError(
            f"unknown segmentation data {name_or_path!r}: not a built-in set "
            f"({', '.join(BUILT_IN)}) and no such folder"
        )
    from antlers.data.mask_folder import load_mask_folder

    options = {"image_size": image_size, "seed": seed, "strict": strict, "cache": cache}
    return load_mask_folder(path, split, **options)


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


@dataclass(frozen=True)
class SegmentTask:
    """``dice``: weight of the soft Dice term added to the cross-entropy (0: off);
    ``label_smoothing``: of the cross-entropy (``--label-smoothing``); ``scenes``: (train, test)
    counts of built-in scenes, if not 4000/500."""

    name: ClassVar[str] = "segment"
    primary_metric: ClassVar[str] = "miou"
    maximize: ClassVar[bool] = True
    default_model: ClassVar[str] = "unet"
    dice: float = 1.0
    label_smoothing: float = 0.0
    scenes: tuple[int, int] | None = None
    config_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "data": "scenes",
            "optimizer": "adamw",
            "lr": 5e-3,
            "weight_decay": 1e-4,
            "batch_size": 8,
            "ema": 0.0,
        }
    )
    data_defaults: ClassVar[Mapping[str, Mapping[str, Any]]] = MappingProxyType({})
    config_type: ClassVar[type[SegmentConfig]] = SegmentConfig

    def configure(self, config: TrainConfig) -> SegmentTask:
        return with_label_smoothing(self, config)

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData:
        if config.stream and config.data in BUILT_IN:  # refused before generating them
            from antlers.engine.stream import unstreamable

            raise unstreamable(config.data, "a mask folder's files")
        counts = self.scenes or (None, None)
        size, seed = config.image_size, config.seed
        cache = "on" if config.stream else config.data_cache  # streaming needs the files
        options = {"strict": config.strict, "cache": cache}
        whole = load_segmentation(config.data, "train", size, seed, counts[0], **options)
        train, val = validation_split(whole, config.seed)
        test = load_segmentation(config.data, "test", size, seed, counts[1], **options)
        model = config.model or self.default_model
        fields = model_fields(
            self.name, model, config.data, train.images, train.classes, rows=train.rows
        )
        model_config = SegmentConfig(**fields, tta_flip=bool(config.augment))
        options = loader_options(config, rank, world_size, len(train))
        held_out = loader_options(config, rank, world_size)
        return TaskData(
            train=self.train_loader(train, config, options),
            val=SegmentLoader.of(val, 100, **held_out),
            test=SegmentLoader.of(test, 100, per_class=True, **held_out),
            model_config=model_config,
            test_set=test,
        )

    @staticmethod
    def train_loader(train: SegmentationSet, config: TrainConfig, options: dict[str, Any]) -> Any:
        """Batches of the training pairs: from memory or the decoded cache with ``--crop``
        padding, or (``--stream``) decoded from their files by one worker per core."""
        if config.stream:
            from antlers.data.decode import available_cores
            from antlers.tasks.segment.stream import SegmentStreamLoader

            return SegmentStreamLoader.of(train, config.batch_size, available_cores(), **options)
        return SegmentLoader.of(train, config.batch_size, crop_padding=config.crop, **options)

    def build_model(self, config: SegmentConfig) -> Segmenter:
        return build_segmenter(config)

    def loss(self, model: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-pixel cross-entropy (ignore_index 255) [+ dice x soft Dice]."""
        logits = model(batch["image"]).float()
        mask = batch["mask"]
        ce = F.cross_entropy(
            logits, mask, ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing
        )
        if not self.dice:
            return {"loss": ce}
        d = dice_loss(logits, mask)
        return {"loss": ce + self.dice * d, "ce": ce, "dice": d}

    @staticmethod
    def logits(model: Segmenter, images: Tensor) -> Tensor:
        """Inference logits (B, K, H, W), flip-averaged when the model was trained with flips."""
        return tta_logits(model, images, dense=True)

    @torch.no_grad()
    def probabilities(self, model: Segmenter, images: Tensor) -> Tensor:
        """Class probabilities (B, K, H, W) (softmax over classes) for images (B, C, H, W)."""
        model.eval()
        return self.logits(model, images).softmax(dim=1)

    def predict(self, model: Segmenter, config: SegmentConfig, images: Any) -> Segmentation:
        """A class id per pixel at the images' own size (segmented at the training scale), for
        a float batch (B, C, H, W) in [0, 1] or a list of same-sized PIL images."""
        return segment(self, model, config, images)

    @torch.no_grad()
    def evaluate(self, model: Segmenter, loader: SegmentLoader) -> dict[str, float]:
        """Loss per pixel, pixel accuracy and mIoU from one confusion matrix over the loader's
        split (summed over the ranks when it is one shard), with each class's IoU
        (``iou_<class>``) when ``loader.per_class``; ``count`` = images."""
        model.eval()
        device = next(model.parameters()).device
        k = len(model.classes)  # build_model names every class
        matrix = torch.zeros(k, k, dtype=torch.int64)
        sums = torch.zeros(3, dtype=torch.float64)  # loss, labelled pixels, images
        for batch in loader.epoch(0):
            logits = self.logits(model, batch["image"].to(device))
            mask = batch["mask"].to(device)
            loss = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX, reduction="sum")
            labelled = int((mask != IGNORE_INDEX).sum())
            sums += torch.tensor([loss.item(), labelled, len(mask)], dtype=torch.float64)
            matrix += confusion_matrix(logits.argmax(1), mask, k, IGNORE_INDEX).cpu()
        sharded = loader.world_size > 1
        matrix = dist.pool_sum(matrix, sharded)
        loss, pixels, count = dist.pool_sum(sums, sharded).tolist()
        scores = metrics_from_confusion(matrix)
        metrics = {
            "loss": loss / max(pixels, 1.0),
            "pixel_accuracy": scores["pixel_accuracy"],
            "miou": scores["miou"],
        }
        if loader.per_class:
            metrics.update(
                {f"iou_{c}": v for c, v in zip(model.classes, scores["iou"], strict=True)}
            )
        return {**metrics, "count": int(count)}

    def eval_loader(
        self,
        config: SegmentConfig,
        data: str,
        split: str = "test",
        data_dir: str | None = None,
        seed: int = 0,
    ) -> SegmentLoader:
        """The ``split`` of ``data`` at the model's image size: "test", or "val" (held out of
        the training split with the run's ``seed``); its classes must be the model's."""
        check_split(split)
        counts = self.scenes or (None, None)
        count = counts[1] if split == "test" else counts[0]
        source = "test" if split == "test" else "train"
        scenes = load_segmentation(data, source, config.image_size[0], seed, count)
        if split == "val":
            scenes = validation_split(scenes, seed)[1]
        check_classes(data, scenes.classes, config.classes)
        return SegmentLoader.of(scenes, 100, per_class=True)

    def predict_files(
        self,
        model: Segmenter,
        config: SegmentConfig,
        paths: list[str],
        out: Path | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:
        """``antlers predict``: for each image, ``out/NAME_mask.png`` (class ids, palette PNG)
        and ``out/NAME_overlay.png`` (the classes drawn over the image, with a legend)."""
        from antlers.tasks.segment.predict import predict_files

        return predict_files(self, model, config, paths, out or Path("runs/segment/predict"))

    def report(self, run_dir: Path, model: Segmenter, data: TaskData) -> dict[str, Any]:
        """Overlays on held-out scenes, per-class IoU bars, confusion matrix, report.html."""
        from antlers.tasks.segment.report import write_report

        return write_report(self, run_dir, model, data)
