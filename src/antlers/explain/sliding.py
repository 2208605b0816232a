"""The moose detector: a classifier slid over a larger image is itself a convolution.

A classifier ``backbone (convs, pools) -> Flatten -> Linear -> ... -> Linear`` applied to every
``window``-sized crop of a big image, at a step of ``stride`` pixels, gives one class score
vector per crop. :func:`fully_convolutional` turns it into a network that computes all of them
in one pass (OverFeat, Sermanet et al. 2014; FCN, Long et al. 2015):

1. Keep the backbone as it is: convolutions slide by definition, so on a big image they compute
   the features of every window at once (the features of neighbouring windows are shared).
2. An adaptive pooling just before the Flatten becomes the fixed pooling it amounts to at the
   classifier's input size (kernel and stride from PyTorch's start/end rule); refused when its
   windows are uneven there (:func:`antlers.explain.head_convs.fixed_pool`).
3. The first Linear after the Flatten, weight ``(out, C*h*w)``, becomes a ``C -> out``
   convolution with an ``h x w`` kernel holding the same numbers (``weight.view(out, C, h, w)``:
   Flatten is channel-major, then row, then column); every later Linear a 1x1 convolution.
   ReLU, Dropout, the logit scale stay as they are (:func:`antlers.explain.head_convs.head_convs`).

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
VGG and ResNet classes, taken apart by :mod:`antlers.explain.classifier_parts`. Anything else:
ValueError. :func:`sliding_window_logits`, the explicit loop over the crops, is the oracle.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from antlers.anatomy.trace import Tracer, eval_mode, input_rf
from antlers.conv.arithmetic import pair
from antlers.explain.classifier_parts import classifier_window, input_channels, unroll
from antlers.explain.head_convs import fixed_pool, head_convs

__all__ = ["FullyConvolutional", "fully_convolutional", "sliding_window_logits"]

ADAPTIVE = (nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)
PADDED = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


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
    modules = unroll(model)
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
    in_channels = input_channels(backbone)
    size = classifier_window(model, backbone, pool, linears[0].in_features, window)
    body = nn.Sequential(*backbone)
    with torch.no_grad(), eval_mode(body):
        features = body(torch.zeros(1, in_channels, *size, device=_device(model)))
    layers = list(backbone)
    if pool is not None:
        layers.append(fixed_pool(pool, tuple(features.shape[2:])))
        with torch.no_grad():
            features = layers[-1](features)
    c, fh, fw = features.shape[1:]
    if c * fh * fw != linears[0].in_features:
        raise ValueError(
            f"the features at a {size[0]}x{size[1]} input are {c}x{fh}x{fw} = {c * fh * fw} "
            f"values, but the first Linear takes {linears[0].in_features}; give the classifier's "
            f"input size as window=(h, w)"
        )
    convs = head_convs(head, (c, fh, fw))
    net = FullyConvolutional(nn.Sequential(*layers), convs, size, (1, 1), _is_exact(layers))
    net.stride = _stride(net, in_channels)
    return net


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
