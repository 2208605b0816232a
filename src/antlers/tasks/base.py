"""The task contract: what ``fit``, ``Run`` and the CLI may ask of every task, and its parts.

A task is a small frozen dataclass (its options are its fields) that satisfies :class:`Task`.
Around it:

* :class:`ModelConfig`: everything that rebuilds a trained model from its weights file alone
  (saved as JSON in the safetensors metadata); each task extends it with its own fields.
* :class:`TaskData`: what ``load_data`` returns: the loaders of this process (train, the
  validation split carved from the training data, test), the model config, and the test split
  itself (for the report's figures).
* :class:`Loader`: batches as dicts of tensors, in an order fixed by (seed, epoch, rank).
* :class:`Prediction`: what ``Task.predict`` (and so ``Run.predict``) returns; one type per task,
  each with ``to_json()``.

Shared helpers: :func:`pixel_stats` (the per-channel mean and std a model normalises with),
:func:`images_to_batch` (tensors or PIL images -> one float batch at the model's size),
:func:`model_fields` (the ModelConfig fields every task fills alike), :func:`with_label_smoothing`
(a task's ``configure`` for ``--label-smoothing``), :func:`loader_options` (how every task's
loaders shard, shuffle and cut the data). The splits every task trains and is scored on are in
``splits.py``; the test-time views its inference averages over, in ``tta.py``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

if TYPE_CHECKING:
    from torch import Tensor, nn

    from antlers.config import TrainConfig

__all__ = [
    "Loader",
    "ModelConfig",
    "Prediction",
    "Task",
    "TaskData",
    "images_to_batch",
    "model_fields",
    "pixel_stats",
    "with_label_smoothing",
]

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """What every task's model is built from. ``image_size`` is (H, W); ``mean``/``std`` are the
    training images' per-channel pixel statistics in [0, 1] (empty where a model needs none)."""

    task: str
    model: str
    data: str
    classes: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (tuples become lists in JSON); ``from_dict`` reverses it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict``'s output (after a JSON round trip); unknown keys: ValueError."""
        return _decode(cls, data)


def _decode(kind: Any, value: Any) -> Any:
    """``value`` (from JSON) as the type ``kind``: dataclasses from dicts, tuples from lists."""
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        known = {f.name for f in dataclasses.fields(kind) if f.init}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown {kind.__name__} keys {unknown}; known: {sorted(known)}")
        return kind(**{k: _decode(hints[k], v) for k, v in value.items()})
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _decode(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    return value


class Loader(Protocol):
    """Batches for one process: ``epoch(e, start_batch)`` yields dicts of tensors (or lists of
    tensors, e.g. boxes per image) in an order that (seed, epoch, rank) alone decide. A loader
    with ``world_size`` > 1 is this process's shard of its split."""

    num_samples: int
    rank: int
    world_size: int

    def epoch(self, epoch: int, start_batch: int = 0) -> Iterator[dict[str, Any]]: ...

    def batches_per_epoch(self) -> int: ...


@dataclass
class TaskData:
    """What ``fit`` trains on: this process's loaders (``train``; ``val``, for every choice made
    during training; ``test``, scored once at the end), the model config, and the test split
    itself (an ImageSet, SegmentationSet or DetectionSet) for the report's figures."""

    train: Loader
    val: Loader
    model_config: ModelConfig
    test: Loader | None = None
    test_set: Any = None


class Prediction(Protocol):
    """One task's predictions for a batch of images: ``len()`` images, ``to_json()`` one
    JSON-able dict per image."""

    def __len__(self) -> int: ...

    def to_json(self) -> list[dict[str, Any]]: ...


class Task(Protocol):
    """The ML core of a task. Class constants: ``primary_metric`` chooses the best checkpoint
    (larger is better when ``maximize``); ``config_defaults`` are the TrainConfig fields this
    task sets differently, ``data_defaults`` those it sets differently again for one dataset
    (``--data`` name -> fields); ``config_type`` is its ModelConfig subclass. Instance fields
    are the task's own options (e.g. ``label_smoothing``), set by ``configure``."""

    name: ClassVar[str]
    primary_metric: ClassVar[str]
    maximize: ClassVar[bool]
    default_model: ClassVar[str]
    config_defaults: ClassVar[Mapping[str, Any]]
    data_defaults: ClassVar[Mapping[str, Mapping[str, Any]]]
    config_type: ClassVar[type[ModelConfig]]

    def configure(self, config: TrainConfig) -> Self:
        """This task with its training options (e.g. label smoothing) taken from ``config``."""
        ...

    def load_data(self, config: TrainConfig, rank: int = 0, world_size: int = 1) -> TaskData: ...

    def build_model(self, config: Any) -> nn.Module:
        """The untrained model ``config`` (this task's ``config_type``) describes."""
        ...

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Holds "loss" (what is minimised); other entries are logged."""
        ...

    def evaluate(self, model: nn.Module, loader: Loader) -> dict[str, float]:
        """Metrics over the loader's whole split, with its ``count`` of images: when the loader
        is one shard (``world_size`` > 1), every rank calls this and the counts the metrics are
        made of are pooled over the ranks (``engine.dist.pool_sum``, ``gather_in_order``)."""
        ...

    def predict(self, model: nn.Module, config: Any, images: Any) -> Prediction:
        """Inference on a float batch (B, C, H, W) in [0, 1] or a list of PIL images."""
        ...

    def eval_loader(
        self,
        config: Any,
        data: str,
        split: str = "test",
        data_dir: str | None = None,
        seed: int = 0,
    ) -> Loader:
        """The ``split`` ("test", or "val" as held out in training with ``seed``) of ``data`` at
        the model's image size, for ``antlers eval``."""
        ...

    def predict_files(
        self, model: nn.Module, config: Any, paths: list[str], out: Path | None, **options: Any
    ) -> list[dict[str, Any]]:
        """``antlers predict``: one JSON-able dict per file with a ``text`` line; tasks that draw
        their predictions write them into ``out``."""
        ...

    def report(self, run_dir: Path, model: nn.Module, data: TaskData) -> dict[str, Any]:
        """The task's figures and report.html at the end of training."""
        ...


def pixel_stats(
    images: Tensor, rows: Tensor | None = None, chunk: int = 256
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (unbiased) std, at least 1e-3, in [0, 1], of uint8 images
    (N, C, H, W), or of ``images[rows]`` (a memory-mapped set's rows), ``chunk`` images at a
    time: from each channel's histogram of the 256 values, so the sums are exact integers, the
    result does not depend on the chunks, and memory does not grow with N."""
    import torch

    n, channels = len(images) if rows is None else len(rows), images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    for start in range(0, n, chunk):
        part = (
            images[start : start + chunk] if rows is None else images[rows[start : start + chunk]]
        )
        for c in range(channels):
            counts[c] += torch.bincount(part[:, c].reshape(-1), minlength=256)
    values, count = torch.arange(256, dtype=torch.float64), counts.sum(1).double()
    total = (counts * values).sum(1)
    mean = total / count
    variance = ((counts * values.square()).sum(1) - total * mean) / (count - 1).clamp_min(1)
    std = variance.clamp_min(0).sqrt() / 255
    return tuple((mean / 255).tolist()), tuple(std.clamp_min(1e-3).tolist())


def model_fields(
    task: str,
    model: str,
    data: str,
    images: Tensor,
    classes: Sequence[str],
    stats: bool = True,
    rows: Tensor | None = None,
) -> dict[str, Any]:
    """The ModelConfig fields every task fills alike, from its uint8 training ``images``
    (N, C, H, W), or ``images[rows]``: the input's shape, the class names and (``stats``) the
    pixel statistics."""
    mean, std = pixel_stats(images, rows) if stats else ((), ())
    return {
        "task": task,
        "model": model,
        "data": data,
        "classes": tuple(classes),
        "in_channels": int(images.shape[1]),
        "image_size": (int(images.shape[2]), int(images.shape[3])),
        "mean": mean,
        "std": std,
    }


def with_label_smoothing(task: T, config: TrainConfig) -> T:
    """``task`` with ``config.label_smoothing`` when the command line gave one (its ``configure``
    for tasks whose loss is a cross-entropy)."""
    if config.label_smoothing is None:
        return task
    return dataclasses.replace(task, label_smoothing=config.label_smoothing)


def images_to_batch(images: Any, channels: int, size: tuple[int, int] | None) -> Tensor:
    """A float batch (B, C, H, W) in [0, 1] from a batch tensor or a list of PIL images, resized
    to ``size`` (H, W) when given (tensors: bilinear with antialiasing; PIL images: fitted as the
    training data was). A tensor of the wrong shape: ValueError stating the expected one."""
    import torch

    from antlers.io.images import image_to_tensor

    if isinstance(images, torch.Tensor):
        if images.ndim != 4 or images.shape[1] != channels:
            raise ValueError(
                f"images must be (B, {channels}, H, W) floats in [0, 1], "
                f"got shape {tuple(images.shape)}"
            )
        if size is not None and tuple(images.shape[2:]) != tuple(size):
            images = torch.nn.functional.interpolate(
                images.float(), size=tuple(size), mode="bilinear", antialias=True
            )
        return images.float()
    return torch.stack([image_to_tensor(im, channels, size) for im in images])
