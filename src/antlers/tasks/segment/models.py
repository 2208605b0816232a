"""Segmentation networks: U-Net and SegNet (encoder-decoders), and torchvision's LR-ASPP.

Every model maps images (B, C, H, W) in [0, 1] to per-pixel class logits (B, K, H, W); softmax
over dim 1 gives each pixel's class probabilities. Inputs are normalised inside the model with
the training set's mean and std.

* ``unet`` (Ronneberger et al. 2015): an encoder of ``depth`` stages (two 3x3 Conv + BatchNorm +
  ReLU, then 2x2 max pooling), a bottleneck, and a decoder that upsamples (2x2 transposed conv),
  concatenates the encoder's feature map of the same size (the skip connection) and convolves.
  Width doubles at every stage, starting from ``width``. Each pair of convolutions is residual
  (``ResidualDoubleConv``: its input is added back before the last ReLU, as in the residual
  U-Net of Zhang, Liu & Wang 2018), which learns more in the same time
  (docs/experiments/segment-recipe.md); ``unet-plain`` is the original's plain ``DoubleConv``.
* ``segnet`` (Badrinarayanan et al. 2017): the same encoder, but the pooling remembers where each
  maximum was (``MaxPool2d(return_indices=True)``) and the decoder puts every value back at that
  place (``MaxUnpool2d``), zeros elsewhere, then convolves; no feature maps are copied across.
* ``lraspp``: ``torchvision.models.segmentation.lraspp_mobilenet_v3_large`` from scratch (no
  pretrained weights), the benchmark's baseline.

Sizes that 2**depth does not divide are padded (replicated border) up to the next multiple and
the logits are cropped back, so the output is always (B, K, H, W) for the input's H, W.

Model names: ``unet``, ``segnet``, ``lraspp``; ``unet-w32-d4`` sets width 32 and depth 4
(either part may be left out), ``unet-w32-d4-plain`` also drops the residual additions. The
building blocks ``DoubleConv``, ``ResidualDoubleConv``, ``Down`` and ``Up`` are public for other
encoder-decoders (e.g. a diffusion model's U-Net).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.tasks.base import ModelConfig

__all__ = [
    "MODELS",
    "DoubleConv",
    "Down",
    "ResidualDoubleConv",
    "SegNet",
    "SegmentConfig",
    "Segmenter",
    "UNet",
    "Up",
    "build_segmenter",
    "parse_segmenter_name",
]

MODELS = ("unet", "segnet", "lraspp")
DEFAULTS = {
    "unet": {"width": 16, "depth": 3, "residual": True},
    "segnet": {"width": 8, "depth": 3},
    "lraspp": {},
}
_NAME = re.compile(r"^(unet|segnet|lraspp)(?:-w(\d+))?(?:-d(\d+))?(-plain)?$")


class DoubleConv(nn.Sequential):
    """(Conv 3x3 pad 1 -> BatchNorm -> ReLU) x 2: (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ResidualDoubleConv(nn.Module):
    """DoubleConv whose input is added back before its last ReLU (through a 1x1 Conv +
    BatchNorm when c_in != c_out): relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)),
    (B, c_in, H, W) -> (B, c_out, H, W). The shortcut lets the gradient reach early layers
    undiminished, so the network learns faster (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(*list(DoubleConv(c_in, c_out))[:-1])  # without the last ReLU
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class Down(nn.Sequential):
    """Max pool 2x2 then ``block`` (DoubleConv): (B, c_in, H, W) -> (B, c_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, block: type[nn.Module] = DoubleConv):
        super().__init__(nn.MaxPool2d(2), block(c_in, c_out))


class Up(nn.Module):
    """Transposed conv 2x2 stride 2 (c_in -> c_in/2), concatenate the skip (c_in/2 channels),
    ``block`` (DoubleConv): (B, c_in, H, W) and skip (B, c_in/2, 2H, 2W) -> (B, c_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_out: int, block: type[nn.Module] = DoubleConv):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_in // 2, 2, stride=2)
        self.conv = block(c_in, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """U-Net: (B, C, H, W) with H, W divisible by 2**depth -> logits (B, K, H, W).
    ``residual``: ResidualDoubleConv blocks instead of DoubleConv."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 16,
        depth: int = 3,
        residual: bool = True,
    ):
        super().__init__()
        block = ResidualDoubleConv if residual else DoubleConv
        widths = [width * 2**i for i in range(depth + 1)]
        self.stem = block(in_channels, width)
        self.downs = nn.ModuleList(Down(a, b, block) for a, b in itertools.pairwise(widths))
        self.ups = nn.ModuleList(
            Up(b, a, block) for a, b in zip(widths[::-1][1:], widths[::-1], strict=False)
        )
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class SegNet(nn.Module):
    """SegNet: encoder stages (Conv + BN + ReLU) x 2 then max pool with indices; decoder stages
    max-unpool with those indices then (Conv + BN + ReLU) x 2; a 1x1 conv gives the logits.
    (B, C, H, W) with H, W divisible by 2**depth -> (B, K, H, W)."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, depth: int = 3):
        super().__init__()
        widths = [in_channels] + [width * 2 ** min(i, 3) for i in range(depth)]
        self.encoders = nn.ModuleList(
            nn.Sequential(*_conv_bn_relu(a, b), *_conv_bn_relu(b, b))
            for a, b in itertools.pairwise(widths)
        )
        out = [width, *widths[1:-1]]  # decoder i ends with encoder i's input width
        self.decoders = nn.ModuleList(
            nn.Sequential(*_conv_bn_relu(b, b), *_conv_bn_relu(b, a))
            for a, b in zip(out, widths[1:], strict=True)
        )
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        remembered = []
        for encoder in self.encoders:
            x = encoder(x)
            size = x.shape[-2:]
            x, indices = self.pool(x)
            remembered.append((indices, size))
        for decoder in reversed(self.decoders):
            indices, size = remembered.pop()
            x = decoder(self.unpool(x, indices, output_size=size))
        return self.head(x)


class _LRASPP(nn.Module):
    """torchvision's LR-ASPP MobileNetV3-Large, untrained, returning the logits tensor."""

    def __init__(self, num_classes: int):
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        self.net = lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=num_classes
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)["out"]


@dataclass(frozen=True, kw_only=True)
class SegmentConfig(ModelConfig):
    """A segmenter's model config; ``tta_flip``: inference averages the logits with the
    mirrored image's (set when training used flips)."""

    tta_flip: bool = False


class Segmenter(nn.Module):
    """Normalise, pad to a multiple of ``multiple``, run ``net``, crop the logits back.
    ``classes`` name the logits' channels; ``tta_flip`` is read by ``SegmentTask.logits``."""

    def __init__(
        self,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        multiple: int,
        classes: Sequence[str] = (),
        tta_flip: bool = False,
    ):
        super().__init__()
        self.net = net
        self.multiple = multiple
        self.classes = tuple(classes)
        self.tta_flip = tta_flip
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        """images (B, C, H, W) in [0, 1] -> logits (B, K, H, W)."""
        h, w = images.shape[-2:]
        x = (images - self.mean) / self.std
        pad_h, pad_w = -h % self.multiple, -w % self.multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.net(x)[..., :h, :w]


def parse_segmenter_name(name: str) -> tuple[str, dict[str, int | bool]]:
    """'unet-w32-d4' -> ('unet', {'width': 32, 'depth': 4, 'residual': True}); defaults fill
    what is left out; '-plain' (U-Net only) sets residual False."""
    match = _NAME.match(name)
    if match is None:
        raise ValueError(
            f"unknown segmentation model {name!r}; allowed: {', '.join(MODELS)}, "
            f"optionally with -wWIDTH and -dDEPTH, and -plain for unet (e.g. unet-w32-d4-plain)"
        )
    kind, width, depth, plain = match.groups()
    options = dict(DEFAULTS[kind])
    if kind == "lraspp" and (width or depth or plain):
        raise ValueError(f"{name!r}: lraspp has no width, depth or -plain options")
    if kind == "segnet" and plain:
        raise ValueError(f"{name!r}: -plain is a U-Net option (SegNet has no residual blocks)")
    if plain:
        options["residual"] = False
    if width:
        options["width"] = int(width)
    if depth:
        options["depth"] = int(depth)
    if kind != "lraspp" and not (1 <= options["depth"] <= 6 and options["width"] >= 1):
        raise ValueError(f"{name!r}: depth must be 1 to 6 and width >= 1")
    return kind, options


def build_segmenter(config: SegmentConfig) -> Segmenter:
    """The model ``config`` describes: model name, in_channels, classes, mean, std."""
    kind, options = parse_segmenter_name(config.model)
    c, k = config.in_channels, len(config.classes)
    if kind == "lraspp":
        net, multiple = _LRASPP(k), 32
        if c != 3:
            raise ValueError(f"lraspp needs RGB images (3 channels), got {c}")
    else:
        net = (UNet if kind == "unet" else SegNet)(c, k, **options)
        multiple = 2 ** options["depth"]
    mean, std = config.mean or (0.5,) * c, config.std or (0.25,) * c
    return Segmenter(net, mean, std, multiple, config.classes, config.tta_flip)
