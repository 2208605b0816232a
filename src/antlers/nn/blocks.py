"""Network blocks that more than one task builds on. Images are float (B, C, H, W)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Normalize", "Residual", "Scale", "conv_bn"]


class Normalize(nn.Module):
    """(x - mean) / std per channel; x in [0, 1] (B, C, H, W)."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (padding 1, no bias) -> BatchNorm -> ReLU; keeps H x W."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """x + f(x) with f = two conv_bn blocks."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiply by a constant: the 1/8 on the logits that keeps the early steps of a fast
    schedule from saturating the softmax (as in the ResNet-9 speed record)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return x * self.factor
