"""A classifier taken apart, for :func:`antlers.explain.sliding.fully_convolutional`.

Its layers in forward order (nested ``nn.Sequential`` unrolled; antlers' AlexNet and
torchvision's AlexNet, VGG and ResNet by their parts), its input's channels and its input size,
the window that slides.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from antlers.anatomy.trace import conv_windows
from antlers.conv.arithmetic import output_size, pair

__all__ = ["classifier_window", "input_channels", "unroll"]


def unroll(model: nn.Module) -> list[nn.Module]:
    """The model's layers in forward order, nested Sequentials expanded."""
    from antlers.nn.lecture import AlexNet

    if isinstance(model, nn.Sequential):
        parts = list(model)
    elif isinstance(model, AlexNet):
        parts = [model.features, model.flatten, model.classifier]
    else:
        parts = _torchvision_parts(model)
    out: list[nn.Module] = []
    for part in parts:
        out += unroll(part) if type(part) is nn.Sequential else [part]
    return out


def _torchvision_parts(model: nn.Module) -> list[nn.Module]:
    import torchvision.models as tvm

    if isinstance(model, tvm.AlexNet | tvm.VGG):
        return [model.features, model.avgpool, nn.Flatten(), model.classifier]
    if isinstance(model, tvm.ResNet):
        stem = [model.conv1, model.bn1, model.relu, model.maxpool]
        stages = [model.layer1, model.layer2, model.layer3, model.layer4]
        return [*stem, *stages, model.avgpool, nn.Flatten(), model.fc]
    raise ValueError(
        f"{type(model).__name__}: cannot turn it into a fully convolutional network; supported: "
        f"nn.Sequential classifiers (conv backbone, Flatten, Linear), antlers AlexNet, "
        f"torchvision AlexNet, VGG, ResNet"
    )


def input_channels(backbone: Sequence[nn.Module]) -> int:
    """The input's channels: the ``in_channels`` of the backbone's first ``nn.Conv2d``."""
    for module in backbone:
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is not None:
            return conv.in_channels
    raise ValueError("the backbone has no Conv2d")


def classifier_window(
    model: nn.Module,
    backbone: list[nn.Module],
    pool: nn.Module | None,
    in_features: int,
    window: int | tuple[int, int] | None,
) -> tuple[int, int]:
    """The classifier's input size ``(h, w)``: given, from ``model.config``, or solved for.

    Solved for (square) when the backbone has no adaptive ``pool`` before the Flatten: the
    smallest side whose feature map holds the first Linear's ``in_features``.
    """
    if window is not None:
        return pair(window, "window")
    in_shape = getattr(model, "config", {}).get("in_shape") if hasattr(model, "config") else None
    if in_shape:
        return int(in_shape[1]), int(in_shape[2])
    if pool is not None:
        raise ValueError(
            "the adaptive pooling before the Flatten accepts any input size: give the "
            "classifier's input size as window=(h, w)"
        )
    channels = [m.out_channels for b in backbone for m in b.modules() if isinstance(m, nn.Conv2d)]
    cells = in_features // channels[-1]
    for side in range(1, 2049):
        h = _side_after(backbone, side)
        if h is not None and h * h == cells:
            return side, side
    raise ValueError(
        f"no square input gives {in_features} features; give the classifier's input size as "
        f"window=(h, w)"
    )


def _side_after(backbone: list[nn.Module], side: int) -> int | None:
    """The side of the feature map for a ``side x side`` input (height only), or None."""
    for module in backbone:
        for leaf in module.modules():
            windows = conv_windows(leaf, 2)
            if windows is None:
                continue
            k, s, p, d = windows[0]
            try:
                side = output_size(side, k, s, p, d)
            except ValueError:
                return None
    return side
