"""Steps 2 and 3 of the moose detector (:mod:`antlers.explain.sliding`): the layers after a
classifier's backbone as the convolutions they amount to, holding the same numbers.

* :func:`fixed_pool`: an adaptive pooling as the fixed pooling it computes at one input size.
* :func:`head_convs`: the first Linear after the Flatten as an ``h x w`` convolution
  (``weight.view(out, C, h, w)``), every later Linear as a 1x1 convolution; elementwise layers
  (ReLU, Dropout, the logit scale) as they are.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from antlers.conv.arithmetic import pair

__all__ = ["fixed_pool", "head_convs"]

# Head layers that act elementwise, so they work on (B, K) and (B, K, H', W') alike.
ELEMENTWISE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Dropout,
    nn.Identity,
)


def fixed_pool(pool: nn.Module, size: tuple[int, int]) -> nn.Module:
    """The MaxPool2d/AvgPool2d that an adaptive pooling amounts to on ``size`` inputs."""
    kernels, strides = [], []
    for n, m in zip(size, pair(_out_size(pool, size), "output_size"), strict=True):
        starts = [math.floor(i * n / m) for i in range(m)]
        ends = [math.ceil((i + 1) * n / m) for i in range(m)]
        lengths = {e - s for s, e in zip(starts, ends, strict=True)}
        steps = {b - a for a, b in itertools.pairwise(starts)} or {1}
        if len(lengths) != 1 or len(steps) != 1:
            raise ValueError(
                f"{type(pool).__name__}({m}) on {n} features has uneven windows "
                f"{list(zip(starts, ends, strict=True))}: no fixed pooling equals it; choose "
                f"another window"
            )
        kernels.append(lengths.pop())
        strides.append(steps.pop())
    cls = nn.MaxPool2d if isinstance(pool, nn.AdaptiveMaxPool2d) else nn.AvgPool2d
    return cls(tuple(kernels), tuple(strides))


def _out_size(pool: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    out = pool.output_size  # type: ignore[attr-defined]
    out = (out, out) if isinstance(out, int) or out is None else tuple(out)
    return tuple(n if o is None else o for o, n in zip(out, size, strict=True))  # type: ignore


def head_convs(head: list[nn.Module], features: tuple[int, int, int]) -> nn.Sequential:
    """The head (the layers after the Flatten) with each Linear as a convolution holding its
    weights, for backbone features ``(C, h, w)``."""
    _, h, w = features
    layers: list[nn.Module] = []
    first = True
    for module in head:
        if isinstance(module, nn.Linear):
            kernel = (h, w) if first else (1, 1)
            conv = nn.Conv2d(
                module.in_features // math.prod(kernel),
                module.out_features,
                kernel,
                bias=module.bias is not None,
            )
            with torch.no_grad():
                conv.weight.copy_(module.weight.view(conv.weight.shape))
                if module.bias is not None:
                    conv.bias.copy_(module.bias)
            layers.append(conv.to(module.weight.device, module.weight.dtype))
            first = False
        elif isinstance(module, ELEMENTWISE) or _is_scale(module):
            layers.append(module)
        elif isinstance(module, nn.Softmax | nn.LogSoftmax) and module.dim in (1, -3):
            layers.append(type(module)(dim=1))
        else:
            raise ValueError(
                f"head layer {type(module).__name__} cannot be made convolutional; allowed "
                f"after the Flatten: Linear, ReLU-like activations, Dropout, Identity, "
                f"Softmax(dim=1), a constant Scale"
            )
    return nn.Sequential(*layers)


def _is_scale(module: nn.Module) -> bool:
    """antlers' logit scale (a constant factor, elementwise); by duck type, no import."""
    return type(module).__name__ == "Scale" and isinstance(getattr(module, "factor", None), float)
