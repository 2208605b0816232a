"""Training configuration: one frozen dataclass, its JSON round trip, and CLI flags from its fields.

``TrainConfig`` holds everything a training run needs; ``config.json`` in the run folder is its
JSON form, so a run can be rebuilt, resumed or extended from the folder alone. The ``antlers train``
flags are generated from the fields (name ``batch_size`` -> ``--batch-size``, help from the field's
metadata), so the CLI and the API can never drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "add_config_flags", "config_from_args", "load_run_config"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")
DATA_CACHE = ("auto", "on", "off")  # antlers.data.cache.CACHE_MODES (not imported: no numpy here)
STREAM_TASKS = ("classify", "segment", "detect")  # those with a streaming training loader


def _f(default: Any, help: str, **choices: Any) -> Any:
    return field(default=default, metadata={"help": help, **choices})


# What each number of a TrainConfig may be (None, where allowed, means unset), and the rule as
# the error states it; NaN fails every comparison, so it is refused too.
RANGES: dict[str, tuple[Callable[[float], bool], str]] = {
    "time": (lambda v: v > 0, "> 0 seconds"),
    "lr": (lambda v: v >= 0, ">= 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "warmup": (lambda v: 0 <= v < 1, "a fraction of training in [0, 1)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "clip_grad": (lambda v: v > 0, "> 0"),
    "ema": (lambda v: 0 <= v < 1, "a decay in [0, 1) (0: off)"),
    "patience": (lambda v: v >= 1, ">= 1 epoch"),
    "crop": (lambda v: v >= 0, ">= 0 pixels"),
    "image_size": (lambda v: v >= 1, ">= 1 pixel"),
    "max_steps": (lambda v: v >= 1, ">= 1 step"),
    "save_every": (lambda v: v >= 1, ">= 1 step"),
}


@dataclass(frozen=True)
class TrainConfig:
    """A training run. ``None`` means "the task's default" where the help says so."""

    task: str = _f("classify", "classify, segment, detect or generate")
    data: str = _f("shapes", "fashion-mnist, mnist, cifar10, shapes, digits, or a folder")
    model: str = _f("", "model name (task default when empty)")
    weights: str | None = _f(None, "a .safetensors file to start from (e.g. torchvision weights)")
    epochs: int | None = _f(None, "passes over the training set (10; unbounded with --time)")
    time: float | None = _f(None, "train for at most this many seconds; schedule planned for it")
    batch_size: int = _f(256, "images per optimizer step (per process under torchrun)")
    optimizer: str = _f("sgd", "sgd (Nesterov momentum) or adamw", choices=OPTIMIZERS)
    lr: float | None = _f(None, "peak learning rate (0.3 for sgd, 3e-3 for adamw when unset)")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(5e-4, "weight decay (not applied to biases and norm layers)")
    schedule: str = _f("onecycle", "learning-rate schedule", choices=SCHEDULES)
    warmup: float = _f(0.2, "fraction of training spent warming up (onecycle)")
    label_smoothing: float | None = _f(
        None, "label smoothing of the cross-entropy (classify and segment; task default when unset)"
    )
    clip_grad: float | None = _f(None, "clip the gradient norm to this value")
    ema: float | None = _f(
        0.99, "decay of the weights' moving average that is evaluated and saved (0: off)"
    )
    patience: int | None = _f(None, "stop after this many epochs without improvement")
    augment: bool = _f(True, "left-right flips where they keep the class, in training and test")
    crop: int = _f(
        0,
        "random crop after zero padding by this many pixels (0: off); a classifier is then also "
        "averaged over one-pixel shifts at test time",
    )
    image_size: int | None = _f(None, "resize images to this size (dataset default when unset)")
    data_dir: str | None = _f(None, "folder holding the dataset files")
    strict: bool = _f(False, "stop at the first unreadable image instead of skipping it")
    data_cache: str = _f(
        "auto",
        "class, mask, COCO and YOLO folders: decode once into a memory-mapped cache under "
        "$ANTLERS_CACHE (default ~/.cache/antlers) that later runs read; auto: 1,000 items or more",
        choices=DATA_CACHE,
    )
    stream: bool = _f(
        False,
        "train from a class folder, mask folder, COCO file or YOLO folder: decode the training "
        "images (and masks) from their files at every epoch, in DataLoader workers, as random "
        "resized crops of the full-resolution photo, boxes and masks cropped with it (held-out "
        "images from the decoded cache)",
    )
    seed: int = _f(0, "random seed: the same seed gives the same run on CPU")
    out: str = _f("runs", "parent folder of run folders (runs/<task>/<name>)")
    name: str | None = _f(None, "run folder name (exp, exp2, ... when unset)")
    device: str = _f("auto", "where to train", choices=DEVICES)
    amp: bool = _f(
        True,
        "mixed precision on CUDA (bf16 when supported, else fp16); the small default models "
        "train faster without it (docs/benchmarks.md, cuda)",
    )
    cpu_amp: bool | None = _f(
        None,
        "bf16 autocast on the CPU (--no-cpu-amp: float32); unset, each run picks the faster of "
        "the two by timing a few training steps (on CPUs with native bf16: AVX512-BF16 or "
        "AMX), remembered per CPU, model and input size",
    )
    channels_last: bool = _f(True, "channels_last memory format (faster on CUDA and CPU)")
    compile: bool = _f(False, "torch.compile the model")
    max_steps: int | None = _f(None, "stop (and save) after this many steps; resume continues")
    save_every: int | None = _f(
        None,
        "also save the resumable state every this many steps (besides each epoch's end): a run "
        "restarted by torchrun --max-restarts resumes from it by itself",
    )

    def __post_init__(self) -> None:
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("device", DEVICES),
            ("data_cache", DATA_CACHE),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}"
            )
        if self.stream and self.task not in STREAM_TASKS:
            raise ValueError(
                f"stream is for the classify, segment and detect tasks (files in a folder), "
                f"not {self.task}"
            )
        for name, (allowed, rule) in RANGES.items():
            value = getattr(self, name)
            if value is not None and not allowed(value):
                raise ValueError(f"{name} must be {rule}, got {value}")

    @property
    def peak_lr(self) -> float:
        """``lr``, or the optimizer's default peak: 0.3 for SGD, 3e-3 for AdamW."""
        if self.lr is not None:
            return self.lr
        return 0.3 if self.optimizer == "sgd" else 3e-3

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Rebuild from ``to_json``'s output. A key that is missing takes its default (a config
        written before the field existed), except ``task``; an unknown key or a value of the
        wrong type is a ValueError naming it; malformed JSON, one naming the line and column."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known: {sorted(known)}")
        if "task" not in data:
            raise ValueError("the config names no 'task' (classify, segment, detect or generate)")
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            _check_type(name, value, hints[name])
        return cls(**data)


def load_run_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig in ``run_dir/config.json``; any problem is one ValueError naming the file."""
    path = Path(run_dir) / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file (is {run_dir} a run folder?)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read it ({error})") from None
    try:
        return TrainConfig.from_json(text)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _check_type(name: str, value: Any, annotation: Any) -> None:
    """ValueError unless ``value`` (from JSON) fits the field's type: an int is a float, a bool
    is no int, None only where the field is optional."""
    allowed = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    fits = any(
        (kind is type(None) and value is None)
        or (kind is bool and isinstance(value, bool))
        or (kind is int and isinstance(value, int) and not isinstance(value, bool))
        or (kind is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind is str and isinstance(value, str))
        for kind in allowed
    )
    if not fits:
        names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
        raise ValueError(f"config key {name!r} must be {names}, got {value!r}")


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union


def _base_type(annotation: Any) -> type:
    """int for ``int | None``, bool for ``bool``, ..."""
    if _is_union(annotation):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_config_flags(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per TrainConfig field (default None = "not given on the command line")."""
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(hints[f.name])
        default = "unset" if f.default is None else f.default
        extra: dict[str, Any] = {"help": f"{f.metadata['help']} (default: {default})"}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, **extra)
        else:
            if "choices" in f.metadata:
                extra["choices"] = f.metadata["choices"]
            parser.add_argument(flag, type=kind, default=None, dest=f.name, **extra)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """The fields given on the command line, over ``base`` (or the defaults)."""
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return (base or TrainConfig()).replace(**given)
