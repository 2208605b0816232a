"""Classification models by name, built from a :class:`ClassifyConfig` so a weights file alone
rebuilds them.

The config holds ``in_channels``, ``image_size`` (H, W), ``classes`` and the data's per-channel
``mean``/``std``. Every model here takes images in [0, 1] (B, C, H, W) and returns logits
(B, num_classes): normalisation is the model's first layer, so ``predict`` needs no
preprocessing knowledge.

* ``fast_resnet`` (default): a small residual network designed for time-to-accuracy on a CPU, after
  the ResNet-9 of the DAWNBench / airbench speed records: a fixed patch-whitening first layer
  (``whitening.py``; its kernels come from the training images, in the config), max pooling
  early so the expensive layers run at low resolution, conv-BN-ReLU blocks with one residual pair
  per stage, global max pooling and a scaled-down linear head. About 0.1 M parameters at the
  default width 8: channel counts that are multiples of 8 keep oneDNN's AVX2 kernels busy (width
  10 or 12 ran slower per FLOP, docs/experiments/classify-recipe.md).
* ``lecture_cnn``: the lecture's network sized for the input; ``alexnet`` (227x227 inputs) and
  ``alexnet_small`` (the same five-conv, three-dense layout for 28-64 px images).
* any torchvision classification model by name (``resnet18``, ...), ``weights=None``; grayscale
  inputs are repeated to 3 channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from antlers.nn.blocks import Normalize, Residual, Scale, conv_bn
from antlers.nn.lecture import AlexNet, lecture_cnn
from antlers.tasks.base import ModelConfig
from antlers.tasks.classify.whitening import BiasReLU, PatchWhitening

__all__ = [
    "FAST_RESNET_WIDTH",
    "MODELS",
    "Classifier",
    "ClassifyConfig",
    "build_classifier",
    "fast_resnet",
]

FAST_RESNET_WIDTH = 8


def fast_resnet(
    in_channels: int,
    num_classes: int,
    width: int = FAST_RESNET_WIDTH,
    whitening: Tensor | None = None,
) -> nn.Sequential:
    """ResNet-9-style classifier for small images (28-64 px): H/8 x W/8 at the last stage.

    ``whitening``: the (width, C, 3, 3) kernels of the first layer (``patch_whitening_weights``
    of the training images); None leaves them to a state dict. The first layer's ``2 * width``
    outputs are pooled at once, before its bias and ReLU (whitening.py: the same function, and
    the stride-1 work at full resolution is that one fixed layer, with no backward pass).
    """
    w = width
    net = nn.Sequential(
        PatchWhitening(in_channels, w, kernels=whitening),
        nn.MaxPool2d(2),
        BiasReLU(2 * w),
        Residual(2 * w),
        conv_bn(2 * w, 4 * w),
        nn.MaxPool2d(2),
        conv_bn(4 * w, 8 * w),
        nn.MaxPool2d(2),
        Residual(8 * w),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, num_classes, bias=False),
        Scale(0.125),
    )
    net.register_load_state_dict_pre_hook(_whitening_bias_moved)
    return net


def _whitening_bias_moved(_: nn.Module, state: dict[str, Tensor], prefix: str, *__: Any) -> None:
    """Weights saved while the whitening layer held its own bias (before the pool) keep loading:
    its ``0.bias`` is ``BiasReLU``'s ``2.bias`` now (the same function, whitening.py)."""
    if prefix + "0.bias" in state:
        state[prefix + "2.bias"] = state.pop(prefix + "0.bias")


def alexnet_small(in_channels: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet's layout (5 convs, 3 max pools, 3 dense) scaled to 28-64 px inputs."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(128, 192, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(192, 192, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(192, 128, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveMaxPool2d(3),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(128 * 9, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(512, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, num_classes),
    )


@dataclass(frozen=True, kw_only=True)
class ClassifyConfig(ModelConfig):
    """A classifier's model config: ``tta_flip`` averages the logits with the mirrored image's
    at inference (set when training used flips), ``tta_shift`` with one-pixel shifts of it (set
    when training used random crops; ``tasks.tta.tta_logits``); ``patch_whitening`` holds
    fast_resnet's fixed first-layer kernels (computed from the training images), one row of
    C*3*3 values each."""

    tta_flip: bool = False
    tta_shift: bool = False
    patch_whitening: tuple[tuple[float, ...], ...] | None = None


class Classifier(nn.Sequential):
    """``Sequential(Normalize, body)``: images (B, C, H, W) in [0, 1] -> logits (B, K).
    ``tta_flip`` and ``tta_shift`` say whether inference averages with the mirrored and the
    shifted images (ClassifyTask.logits)."""

    def __init__(
        self,
        normalize: Normalize,
        body: nn.Module,
        tta_flip: bool = False,
        tta_shift: bool = False,
    ):
        super().__init__(normalize, body)
        self.tta_flip, self.tta_shift = tta_flip, tta_shift


def _lecture(config: ClassifyConfig) -> nn.Module:
    h, w = config.image_size
    return lecture_cnn(in_shape=(config.in_channels, h, w), classes=config.classes)


def _torchvision(name: str, config: ClassifyConfig) -> nn.Module:
    import torchvision

    model = torchvision.models.get_model(name, weights=None, num_classes=len(config.classes))
    if config.in_channels == 1:
        return nn.Sequential(_Repeat3(), model)
    return model


def _whitening(config: ClassifyConfig) -> Tensor | None:
    """fast_resnet's first-layer kernels (K, C, 3, 3) from the config, if there."""
    if config.patch_whitening is None:
        return None
    kernels = torch.tensor(config.patch_whitening, dtype=torch.float32)
    return kernels.view(len(kernels), config.in_channels, 3, 3)


class _Repeat3(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, 3, -1, -1)


MODELS: dict[str, Callable[[ClassifyConfig], nn.Module]] = {
    "fast_resnet": lambda c: fast_resnet(c.in_channels, len(c.classes), whitening=_whitening(c)),
    "lecture_cnn": _lecture,
    "alexnet": lambda c: AlexNet(num_classes=len(c.classes)),
    "alexnet_small": lambda c: alexnet_small(c.in_channels, len(c.classes)),
}


def build_classifier(config: ClassifyConfig) -> Classifier:
    """Normalize + the named model; unknown names list ours and point at torchvision's."""
    name = config.model
    if name in MODELS:
        body = MODELS[name](config)
    else:
        import torchvision

        if name not in torchvision.models.list_models(module=torchvision.models):
            raise ValueError(
                f"unknown model {name!r}; allowed: {', '.join(MODELS)}, or a "
                f"torchvision classification model such as resnet18"
            )
        body = _torchvision(name, config)
    normalize = Normalize(list(config.mean), list(config.std))
    return Classifier(normalize, body, config.tta_flip, config.tta_shift)
