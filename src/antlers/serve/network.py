"""The Network view: the layer table, and one image through a classifier.

``layer_table`` is ``antlers.summary``'s rows (output shape, parameter formula with its numbers,
receptive field, MACs) as JSON. ``look_inside`` is ``antlers explain`` for one image: the
softmax probabilities (``Run.predict``'s, the same numbers), the feature maps of every conv and
pool layer (``explain.feature_maps``; each channel a grey PNG scaled by its own range) and
Grad-CAM (``explain.grad_cam``) for the predicted or a chosen class, as numbers in [0, 1].
Callers hold the model's lock: feature maps and Grad-CAM hook into the model.
"""

from __future__ import annotations

from typing import Any

from antlers.serve.pictures import png_url, scaled, tensor_url

__all__ = ["MAX_CHANNELS", "layer_table", "look_inside"]

MAX_CHANNELS = 16  # feature maps sent per layer: the first 16 channels


def layer_table(model: Any, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """{"input": [C, H, W], "rows": [{name, type, output_shape, params, formula, rf, jump,
    macs}], "total_params", "total_macs", "footer"} from ``antlers.anatomy.summary``."""
    from antlers.anatomy import summary

    report = summary(model, input_shape)
    rows = [{**row, "output_shape": list(row["output_shape"])} for row in report.to_dicts()]
    return {
        "input": list(input_shape),
        "rows": rows,
        "total_params": report.total_params,
        "total_macs": report.total_macs,
        "footer": report.footer(),
    }


def _maps_json(maps: dict[str, Any]) -> list[dict[str, Any]]:
    layers = []
    for name, value in maps.items():
        channels = value[:MAX_CHANNELS].numpy()
        layers.append(
            {
                "layer": name,
                "shape": list(value.shape),
                "channels": [png_url(scaled(channel)) for channel in channels],
            }
        )
    return layers


def look_inside(
    run: Any, picture: Any, target: int | None = None, cam_layer: str | None = None
) -> dict[str, Any]:
    """Everything the Network view shows for one PIL image and a trained classify ``run``:
    {"input": PNG of what the model sees, "probabilities": [{label, probability}] (every
    class, best first, ``Run.predict``'s), "maps": [{layer, shape, channels}], "cam":
    {"layer", "label", "values": rows of floats in [0, 1] at the input's size}}."""
    from antlers.explain import default_cam_layer, feature_maps, grad_cam
    from antlers.io.images import image_to_tensor

    config = run.model_config
    if target is not None and not 0 <= target < len(run.classes):
        raise ValueError(f"class must be 0 to {len(run.classes) - 1}, got {target}")
    x = image_to_tensor(picture, config.in_channels, tuple(config.image_size))  # as predict fits
    probabilities = run.predict([picture]).probabilities[0]
    order = probabilities.argsort(descending=True).tolist()
    layer = cam_layer or default_cam_layer(run.model, tuple(x.shape))
    cam, explained = grad_cam(run.model, x[None], target=target, layer=layer)
    return {
        "input": tensor_url(x),
        "probabilities": [
            {"label": run.classes[k], "probability": float(probabilities[k])} for k in order
        ],
        "maps": _maps_json(feature_maps(run.model, x)),
        "cam": {
            "layer": layer,
            "label": run.classes[int(explained[0])],
            "values": cam[0].detach().round(decimals=4).tolist(),
        },
    }
