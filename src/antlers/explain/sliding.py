"""The moose detector: a classifier slid over a larger image is itself a convolution.

A classifier ``backbone (convs, pools) -> Flatten -> Linear -> ... -> Linear`` applied to every
``window``-sized crop of a big image, at a step of ``stride`` pixels, gives one class score
vector per crop. :func:`fully_convolutional` turns it into a network that computes all of them
in one pass (OverFeat, Sermanet et al. 2014; FCN, Long et al. 2015):

1. Keep the backbone as it is: convolutions slide by definition, so on a big image they compute
   the features of every window at once (the features of neighbouring windows are shared).
2. An adaptive pooling just before the Flatten becomes the fixed pooling it amounts to at the
   classifier's input size (kernel and stride from PyTorch's start/end rule); refused when its
   windows are uneven there.
3. The first Linear after the Flatten, weight ``(out, C*h*w)``, becomes a ``C -> out``
   convolution with an ``h x w`` kernel holding the same numbers (``weight.view(out, C, h, w)``:
   Flatten is channel-major, then row, then column); every later Linear a 1x1 convolution.
   ReLU, Dropout, the logit scale stay as they are.

The output is ``(B, K, H', W')`` logits: position ``(i, j)`` is the window whose top-left input
pixel is ``(i * stride[0], j * stride[1])``; ``H' = (H - window[0]) // stride[0] + 1``.
``stride`` is the backbone's jump (the product of its strides), from the receptive-field
recurrence (:mod:`antlers.anatomy.trace`).

Exactness: when no convolution or pooling pads (``exact`` True, e.g. ``lecture_cnn``), position
``(i, j)`` equals the classifier on that crop to float precision. When the backbone pads
(AlexNet, ``alexnet_small``, ResNets), a crop sees zeros at its edges where the big image has
neighbouring pixels, so the two differ near each window's border; the scores are those of the
same weights, and equal for an input of exactly one window.

Supported: ``nn.Sequential`` models (nested ones are unrolled, e.g. the classification task's
``Sequential(Normalize, body)``), :class:`antlers.nn.lecture.AlexNet`, and torchvision's AlexNet,
VGG and ResNet classes. Anything else: ValueError.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from antlers.conv.arithmetic import output_size, pair
from antlers.anatomy.trace import Tracer, conv_windows, eval_mode, input_rf

__all__ = ["FullyConvolutional", "fully_convolutional", "sliding_window_logits"]

ADAPTIVE = (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
PADDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)
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


class FullyConvolutional(nn.Module):
    """``backbone`` then ``head`` (convolutions): ``(B, C, H, W) -> (B, K, H', W')`` logits.

    Attributes:
        window: ``(h, w)``, the classifier's input size: one output position per window.
        stride: ``(sh, sw)``, pixels between neighbouring windows.
        exact:  True when every position equals the classifier on its crop (no padding).
    """

    def __init__(
        self,
        backbone: nn.Sequential,
        head: nn.Sequential,
        window: tuple[int, int],
        stride: tuple[int, int],
        exact: bool,
    ) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.window, self.stride, self.exact = window, stride, exact

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[2] < self.window[0] or x.shape[3] < self.window[1]:
            raise ValueError(
                f"input must be (B, C, H, W) with H, W at least the window "
                f"{self.window[0]}x{self.window[1]}, got {tuple(x.shape)}"
            )
        rows, cols = self.output_size(x.shape[2], x.shape[3])
        # Floors inside the backbone can make the last windows' right/bottom pixels unused;
        # keep only the positions whose whole window lies inside the image.
        return self.head(self.backbone(x))[:, :, :rows, :cols]

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(H', W')``: window positions along each side of a ``height x width`` image."""
        return tuple(  # type: ignore[return-value]
            (n - k) // s + 1
            for n, k, s in zip((height, width), self.window, self.stride, strict=True)
        )

    def window_boxes(self, rows: int, cols: int) -> Tensor:
        """Windows of a ``(rows, cols)`` output as xyxy pixel boxes (rows*cols, 4), row-major."""
        i, j = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        y0, x0 = i.flatten() * self.stride[0], j.flatten() * self.stride[1]
        boxes = torch.stack([x0, y0, x0 + self.window[1], y0 + self.window[0]], dim=1)
        return boxes.float()


def fully_convolutional(
    model: nn.Module, window: int | tuple[int, int] | None = None
) -> FullyConvolutional:
    """``model`` with its fully connected head turned into convolutions (see the module recipe).

    Args:
        model: a classifier ``conv backbone -> [adaptive pool] -> Flatten -> Linear ...``.
            The backbone's modules are shared with ``model``, the head's weights are copied.
        window: the classifier's input size ``(h, w)``. Default: ``model.config["in_shape"]``
            (``lecture_cnn``), else found from the first Linear's input size for a backbone
            without adaptive pooling (the smallest square input that fits).

    Raises:
        ValueError: a model of another form, or no way to know or fit the window.
    """
    modules = _unroll(model)
    flat = next((i for i, m in enumerate(modules) if isinstance(m, nn.Flatten)), None)
    if flat is None or flat == 0:
        raise ValueError(
            f"{type(model).__name__}: no conv backbone followed by Flatten and Linear layers; "
            f"supported: nn.Sequential classifiers, antlers AlexNet, torchvision AlexNet, VGG, "
            f"ResNet"
        )
    backbone, head = modules[:flat], modules[flat + 1 :]
    pool = backbone.pop() if isinstance(backbone[-1], ADAPTIVE) else None
    linears = [m for m in head if isinstance(m, nn.Linear)]
    if not linears or not isinstance(head[0], nn.Linear | nn.Dropout):
        raise ValueError("the Flatten must be followed by the Linear layers of the classifier")
    in_channels = _first_conv(backbone).in_channels
    size = _window(model, backbone, pool, linears[0].in_features, window)
    body = nn.Sequential(*backbone)
    with torch.no_grad(), eval_mode(body):
        features = body(torch.zeros(1, in_channels, *size, device=_device(model)))
    layers = list(backbone)
    if pool is not None:
        layers.append(_fixed_pool(pool, tuple(features.shape[2:])))
        with torch.no_grad():
            features = layers[-1](features)
    c, fh, fw = features.shape[1:]
    if c * fh * fw != linears[0].in_features:
        raise ValueError(
            f"the features at a {size[0]}x{size[1]} input are {c}x{fh}x{fw} = {c * fh * fw} "
            f"values, but the first Linear takes {linears[0].in_features}; give the classifier's "
            f"input size as window=(h, w)"
        )
    convs = _head_convs(head, (c, fh, fw))
    net = FullyConvolutional(nn.Sequential(*layers), convs, size, (1, 1), _is_exact(layers))
    net.stride = _stride(net, in_channels)
    return net


def _unroll(model: nn.Module) -> list[nn.Module]:
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
        out += _unroll(part) if type(part) is nn.Sequential else [part]
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


def _first_conv(backbone: Sequence[nn.Module]) -> nn.Conv2d:
    for module in backbone:
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is not None:
            return conv
    raise ValueError("the backbone has no Conv2d")


def _window(
    model: nn.Module,
    backbone: list[nn.Module],
    pool: nn.Module | None,
    in_features: int,
    window: int | tuple[int, int] | None,
) -> tuple[int, int]:
    """The classifier's input size: given, from ``model.config``, or solved for (square)."""
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


def _fixed_pool(pool: nn.Module, size: tuple[int, int]) -> nn.Module:
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


def _head_convs(head: list[nn.Module], features: tuple[int, int, int]) -> nn.Sequential:
    """The head with each Linear as a convolution holding its weights (recipe step 3)."""
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


def _is_exact(layers: list[nn.Module]) -> bool:
    """No padding and no ceil mode anywhere: every window is computed as its own crop."""
    for layer in layers:
        for m in layer.modules():
            if isinstance(m, ADAPTIVE):
                return False
            if isinstance(m, PADDED):
                padding = m.padding
                if padding == "same" or (padding != "valid" and any(pair(padding, "p"))):
                    return False
                if getattr(m, "ceil_mode", False):
                    return False
    return True


def _stride(net: FullyConvolutional, in_channels: int) -> tuple[int, int]:
    """The jump of the output's receptive field: pixels between neighbouring windows."""
    tracer = Tracer(net)
    x = torch.zeros(1, in_channels, *net.window, device=_device(net))
    tracer.remember(x, input_rf(x))
    try:
        with torch.no_grad(), eval_mode(net):
            y = net(x)
    finally:
        tracer.remove()
    if tuple(y.shape[2:]) != (1, 1):
        raise ValueError(f"one window gives {tuple(y.shape[2:])} positions, expected (1, 1)")
    rf = tracer.rf_of(y)
    if rf is None:
        raise ValueError("the stride of the windows is unknown (receptive field not traced)")
    return rf[0].jump, rf[1].jump


def sliding_window_logits(
    model: nn.Module, image: Tensor, window: tuple[int, int], stride: tuple[int, int]
) -> Tensor:
    """The explicit moose detector: ``model`` on every crop, one by one. (C, H, W) -> (K, H', W').

    The loop of the definition, kept as the oracle of :func:`fully_convolutional` (slow).
    """
    _, height, width = image.shape
    rows = (height - window[0]) // stride[0] + 1
    cols = (width - window[1]) // stride[1] + 1
    out = []
    with torch.no_grad():
        for i in range(rows):
            for j in range(cols):
                y, x = i * stride[0], j * stride[1]
                crop = image[None, :, y : y + window[0], x : x + window[1]]
                out.append(model(crop)[0])
    return torch.stack(out, dim=1).view(-1, rows, cols)


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without any)."""
    return next(model.parameters(), torch.zeros(0)).device
