"""What it learned and the moose detector, from ``antlers.explain``.

* ``kernels_view``: the first convolution's kernels as a grid picture (``explain.kernel_grid``)
  for every epoch the engine saved (``engine.monitor.load_kernels``) and for the loaded weights.
* ``slide_view``: the classifier made fully convolutional (``explain.fully_convolutional``) and
  slid over a larger image: a probability map per class, with the window and the stride.
Callers hold the model's lock.
"""

from __future__ import annotations

from typing import Any

from antlers.serve.pictures import tensor_url

__all__ = ["MAX_SLIDE_PIXELS", "kernels_view", "slide_view"]

MAX_SLIDE_PIXELS = 1024 * 1024  # every layer runs at the image's size: keep requests bounded


def _grid(weight: Any) -> str:
    from antlers.explain import kernel_grid

    side = int(weight.shape[-1])
    return tensor_url(kernel_grid(weight, scale=max(1, 24 // side)))


def kernels_view(run: Any) -> dict[str, Any]:
    """{"layer", "shape": [Cout, Cin, K, K], "epochs": [{"epoch", "grid": PNG}] (the saved
    snapshots, oldest first), "final": PNG of the loaded weights}."""
    from antlers.engine.monitor import first_conv, load_kernels

    found = first_conv(run.model)
    if found is None:
        raise ValueError(f"{run.model_config.model} has no convolution to show")
    name, conv = found
    snapshots = load_kernels(run.path) if (run.path / "kernels").is_dir() else {}
    return {
        "layer": name,
        "shape": list(conv.weight.shape),
        "epochs": [{"epoch": e, "grid": _grid(w)} for e, w in snapshots.items()],
        "final": _grid(conv.weight),
    }


def slide_view(run: Any, picture: Any) -> dict[str, Any]:
    """{"image": PNG, "size": [H, W], "window": [h, w], "stride": [sh, sw], "exact",
    "positions": [rows, cols], "classes": [{"label", "best", "box", "values": rows x cols}]}:
    per class the probability of every window position, the best one and its xyxy box."""
    import torch

    from antlers.explain import fully_convolutional
    from antlers.io.images import image_to_tensor

    config = run.model_config
    x = image_to_tensor(picture, config.in_channels)
    h, w = x.shape[1:]
    window = tuple(config.image_size)
    if h * w > MAX_SLIDE_PIXELS:
        raise ValueError(f"{w}x{h} is over the moose detector's {MAX_SLIDE_PIXELS:,} pixels")
    if h < window[0] or w < window[1]:
        raise ValueError(
            f"the image ({w}x{h}) is smaller than the window ({window[1]}x{window[0]})"
        )
    fcn = fully_convolutional(run.model, window=window)
    with torch.no_grad():
        probabilities = fcn(x[None]).softmax(dim=1)[0]
    rows, cols = probabilities.shape[1:]
    boxes = fcn.window_boxes(rows, cols)
    classes = []
    for name, heat in zip(run.classes, probabilities, strict=True):
        where = int(heat.flatten().argmax())
        classes.append(
            {
                "label": name,
                "best": round(float(heat.flatten()[where]), 4),
                "box": boxes[where].tolist(),
                "values": heat.round(decimals=4).tolist(),
            }
        )
    return {
        "image": tensor_url(x),
        "size": [h, w],
        "window": list(fcn.window),
        "stride": list(fcn.stride),
        "exact": fcn.exact,
        "positions": [rows, cols],
        "classes": classes,
    }
