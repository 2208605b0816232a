"""Feature maps: one image through the network, the output of every conv and pool layer.

Early maps are edge and colour responses at full resolution; later ones are coarser (each
pooling halves the side) and respond to larger patterns (their receptive fields grow).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from antlers.anatomy.trace import eval_mode
from antlers.explain.layers import capture, spatial_layers

__all__ = ["feature_maps", "strongest_channels"]


def feature_maps(
    model: nn.Module, image: Tensor, layers: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """``{layer name: (C, H, W)}`` for one image (C, H, W) in [0, 1] (uint8 is divided by 255).

    layers: default every Conv2d and pooling layer (:func:`spatial_layers`), in definition order;
    outputs that are not maps (not 4-D) are left out. Forward hooks, eval mode, no gradients.
    """
    if image.dim() != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    x = image.float().div(255) if image.dtype == torch.uint8 else image.float()
    names = list(layers) if layers is not None else [n for n, _ in spatial_layers(model)]
    device = next(model.parameters()).device
    with torch.no_grad(), eval_mode(model):
        outputs = capture(model, x[None].to(device), names, stop=True)  # the head may not fit
    return {n: outputs[n][0].cpu() for n in names if n in outputs and outputs[n].dim() == 4}


def strongest_channels(maps: Tensor, count: int = 8) -> Tensor:
    """Indices of the ``count`` channels of (C, H, W) with the largest mean response."""
    return maps.flatten(1).mean(dim=1).argsort(descending=True)[:count]
