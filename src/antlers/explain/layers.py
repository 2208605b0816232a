"""Layers by name, and their outputs caught with forward hooks.

Names are ``model.named_modules()`` names (``"features.conv1"``, ``"1.3"``, ``"layer2"``).
:func:`capture` runs a forward pass and keeps the outputs of the named layers; with
``stop=True`` it stops as soon as the last of them has run, so the rest of the network costs
nothing (the top-k search and the feature maps only need the early layers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from antlers.anatomy.trace import RF, Tracer, eval_mode, input_rf

__all__ = ["SPATIAL", "capture", "get_layer", "layer_rf", "spatial_layers"]

# The layers whose outputs are feature maps worth showing: convolutions and poolings.
SPATIAL = (
    nn.Conv2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveAvgPool2d,
)


class _StopForwardError(Exception):
    """Raised by the last hook when ``capture(..., stop=True)`` has what it needs."""


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; ValueError lists the conv and pool layers to choose from."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        names = [n for n, _ in spatial_layers(model)]
        raise ValueError(f"no layer {name!r} in the model; conv and pool layers: {names}")
    return modules[name]


def spatial_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every 2-D convolution and pooling layer, in definition order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, SPATIAL)]


def capture(
    model: nn.Module, x: Tensor, names: Sequence[str], stop: bool = False
) -> dict[str, Tensor]:
    """The outputs of the layers ``names`` for the batch ``x``: ``{name: (B, C, H, W)}``.

    The outputs are detached clones (a later in-place ReLU cannot change them). The model runs
    as it is (call it under ``torch.no_grad()`` and in eval mode when that is what you want).
    With ``stop``, the forward pass ends once every named layer has run.
    """
    outputs: dict[str, Tensor] = {}
    wanted = set(names)

    def keep(name: str, _module: nn.Module, _args: object, output: Tensor) -> None:
        outputs[name] = output.detach().clone()
        if stop and wanted <= outputs.keys():
            raise _StopForwardError

    handles = [
        get_layer(model, name).register_forward_hook(lambda m, a, o, name=name: keep(name, m, a, o))
        for name in names
    ]
    try:
        model(x)
    except _StopForwardError:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def layer_rf(model: nn.Module, name: str, input_shape: Sequence[int]) -> RF:
    """The receptive field ``(rf_h, rf_w)`` of layer ``name``'s output for ``(C, H, W)`` inputs.

    Uses :class:`antlers.anatomy.trace.Tracer` (the receptive-field recurrence through every
    conv and pool on the way); ValueError when the field is unknown (e.g. after a Linear).
    """
    layer = get_layer(model, name)
    tracer = Tracer(model)
    found: dict[str, RF | None] = {}

    def grab(_module: nn.Module, _args: object, output: Tensor) -> None:
        found["rf"] = tracer.rf_of(output)
        raise _StopForwardError

    handle = layer.register_forward_hook(grab)  # after the tracer's own hook on this layer
    x = torch.zeros(1, *input_shape, device=_device(model))
    tracer.remember(x, input_rf(x))
    try:
        with torch.no_grad(), eval_mode(model):
            model(x)
    except _StopForwardError:
        pass
    finally:
        handle.remove()
        tracer.remove()
    rf = found.get("rf")
    if rf is None or len(rf) != 2:
        raise ValueError(f"layer {name!r}: its receptive field is unknown (not a 2-D feature map)")
    return rf


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters live (CPU for a model without any)."""
    return next(model.parameters(), torch.zeros(0)).device
