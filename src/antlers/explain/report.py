"""Everything ``antlers explain`` and ``antlers slide`` write, for a run or a torchvision model.

``explain_model(subject, out)``: ``kernels.png``, ``kernel_evolution.png`` (runs: the engine's
per-epoch snapshots), ``feature_maps.png``, ``topk_<layer>.png``, ``gradcam.png`` and
``grad_norms.png`` (runs: the engine's log). ``slide_image(subject, image, out)``: the moose
detector's heat maps over a larger image, ``heatmaps.png``. Every file is written atomically;
both return the paths they wrote.

A :class:`Subject` comes from a run the caller loaded (``run_subject(antlers.Run.load(path))``:
``antlers.run`` sits above explain, so the CLI and the tour load it) or from a torchvision
model name (``torchvision_subject``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from antlers.io.images import image_to_tensor, open_image

__all__ = [
    "Subject",
    "explain_model",
    "run_subject",
    "slide_image",
    "test_images",
    "torchvision_subject",
]

TORCHVISION_SIZE = 64  # a torchvision model without a run looks at built-in shapes this size
TORCHVISION_IMAGES = 256


# The most pixels slide_image reads from a file: every layer of the classifier runs at the
# image's size, so a 64-channel layer holds 64 floats a pixel. Larger images are refused.
SLIDE_PIXELS = 2048 * 2048


@dataclass
class Subject:
    """A model to look into, with what it was trained on (when it comes from a run)."""

    model: nn.Module
    classes: list[str]
    in_channels: int
    image_size: tuple[int, int]
    data: str  # the dataset its top-k images and Grad-CAM examples come from
    run_dir: Path | None = None
    data_dir: str | None = None


def run_subject(run: Any) -> Subject:
    """What explain needs of a run the caller loaded (an :class:`antlers.run.Run`)."""
    model_config = run.model_config
    h, w = model_config.image_size
    return Subject(
        run.model,
        run.classes,
        model_config.in_channels,
        (h, w),
        model_config.data,
        run.path if (run.path / "weights").is_dir() else None,
        run.config.data_dir if run.config is not None else None,
    )


def torchvision_subject(name: str) -> Subject:
    """A torchvision model by name (``weights=None``), shown on the built-in shapes at 64x64."""
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"{name}: not a run folder, a .safetensors file or a torchvision model name "
            f"(e.g. resnet18)"
        )
    model = torchvision.models.get_model(name, weights=None).eval()
    classes = [f"class {i}" for i in range(1000)]
    size = (TORCHVISION_SIZE, TORCHVISION_SIZE)
    return Subject(model, classes, 3, size, "shapes")


def test_images(subject: Subject, limit: int | None) -> tuple[Tensor, Tensor]:
    """uint8 (N, C, H, W) test images at the model's size, and their labels."""
    from antlers.data import DatasetNotFoundError, load_dataset, load_shapes

    if subject.run_dir is None and subject.data == "shapes":
        shapes = load_shapes(
            "test", image_size=subject.image_size[0], n=limit or TORCHVISION_IMAGES
        )
        return shapes.images, shapes.labels
    try:
        data = load_dataset(
            subject.data,
            "test",
            data_dir=subject.data_dir,
            image_size=subject.image_size[0],
            download=False,
        )
    except DatasetNotFoundError as error:
        raise ValueError(
            f"the run's test images are needed for top-k and Grad-CAM: {error}"
        ) from None
    n = len(data.labels) if limit is None else min(limit, len(data.labels))
    return data.head(n), data.labels[:n]


def explain_model(
    subject: Subject,
    out: str | Path,
    layer: str | None = None,
    image: str | Path | None = None,
    k: int = 8,
    limit: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    cam_layer: str | None = None,
) -> list[Path]:
    """Write every picture of what the model learned into ``out``; returns the files.

    layer: the layer of the top-k rows (default: the deepest map larger than 1x1); image: a
    file for the feature maps (default: the first test image); k: images per channel; limit:
    search only the first ``limit`` test images; cam_layer: Grad-CAM's layer (its default).
    """
    from antlers.explain.gradcam import default_cam_layer

    out = Path(out)
    model = subject.model.eval()
    shape = (subject.in_channels, *subject.image_size)
    layer = layer or default_cam_layer(model, shape)
    images, labels = test_images(subject, limit)
    log(f"{len(images)} {subject.data} test images, layer {layer}")
    first = images[0].float() / 255
    if image is not None:
        first = image_to_tensor(image, subject.in_channels, subject.image_size)
    written = _kernel_files(subject, out)
    written += _maps_and_topk(model, first, images, layer, k, out)
    written.append(_grad_cam_file(subject, images[:8], labels[:8], out, cam_layer))
    if subject.run_dir is not None:
        from antlers.engine.monitor import plot_grad_norms, read_grad_norms

        rows = read_grad_norms(subject.run_dir)
        if rows:
            written.append(plot_grad_norms(rows, out / "grad_norms.png"))
    return written


def _kernel_files(subject: Subject, out: Path) -> list[Path]:
    from antlers.engine.monitor import first_conv, load_kernels
    from antlers.explain.figures import kernel_evolution_figure, kernels_figure
    from antlers.viz.figures import save_figure

    found = first_conv(subject.model)
    if found is None:
        return []
    name, conv = found
    cout, cin, kh, kw = conv.weight.shape
    learned = conv.weight.requires_grad  # fast_resnet's patch whitening is computed, fixed
    kind = "kernels" if learned else "fixed kernels (computed from the data)"
    title = f"{name}: {cout} {kind} of {cin}x{kh}x{kw}"
    written = [save_figure(kernels_figure(conv.weight, title), out / "kernels.png")]
    snapshots = load_kernels(subject.run_dir) if subject.run_dir is not None and learned else {}
    if len(snapshots) > 1:
        figure = kernel_evolution_figure(snapshots)
        written.append(save_figure(figure, out / "kernel_evolution.png"))
    return written


def _maps_and_topk(
    model: nn.Module, image: Tensor, images: Tensor, layer: str, k: int, out: Path
) -> list[Path]:
    from antlers.explain.feature_maps import feature_maps
    from antlers.explain.figures import feature_maps_figure, top_k_figure
    from antlers.explain.topk import top_k_activations
    from antlers.viz.figures import save_figure

    maps = save_figure(
        feature_maps_figure(image, feature_maps(model, image)), out / "feature_maps.png"
    )
    result = top_k_activations(model, layer, images, k=k)
    safe = layer.replace(".", "_") or "model"
    return [maps, save_figure(top_k_figure(result, images), out / f"topk_{safe}.png")]


def _grad_cam_file(
    subject: Subject, images: Tensor, labels: Tensor, out: Path, layer: str | None
) -> Path:
    from antlers.explain.figures import grad_cam_figure
    from antlers.explain.gradcam import grad_cam
    from antlers.viz.figures import save_figure

    x = images.float() / 255
    cams, predicted = grad_cam(subject.model, x, layer=layer)
    names = subject.classes
    titles = [f"{names[int(t)]} -> {names[int(p)]}" for t, p in zip(labels, predicted, strict=True)]
    if subject.run_dir is None:  # an untrained torchvision model: its classes mean nothing yet
        titles = [f"class {int(p)}" for p in predicted]
    return save_figure(grad_cam_figure(x, cams.detach(), titles), out / "gradcam.png")


def slide_image(
    subject: Subject, image: str | Path | Tensor, out: str | Path
) -> tuple[list[Path], dict[str, Any]]:
    """Slide the subject's classifier over a larger image: per-class heat maps (the moose detector).

    image: a file (read in the run's channels, not resized; at most ``SLIDE_PIXELS``, as every
    layer runs at the image's size) or a float tensor (C, H, W).
    Returns the written files and a summary: window, stride, positions, and per class the
    highest probability with its window as xyxy pixels.
    """
    from antlers.explain.figures import heatmaps_figure
    from antlers.explain.sliding import fully_convolutional
    from antlers.viz.figures import save_figure

    fcn = fully_convolutional(subject.model.eval(), window=subject.image_size)
    is_tensor = isinstance(image, Tensor)
    if not is_tensor:
        image = image_to_tensor(open_image(image, SLIDE_PIXELS), subject.in_channels)
    x = image.float()
    if x.dim() != 3 or x.shape[0] != subject.in_channels:
        raise ValueError(f"image must be ({subject.in_channels}, H, W), got {tuple(x.shape)}")
    with torch.no_grad():
        probabilities = fcn(x[None]).softmax(dim=1)[0]
    rows, cols = probabilities.shape[1:]
    boxes = fcn.window_boxes(rows, cols)
    best = {}
    for name, heat in zip(subject.classes, probabilities, strict=True):
        where = int(heat.flatten().argmax())
        best[name] = {"probability": float(heat.flatten()[where]), "box": boxes[where].tolist()}
    figure = heatmaps_figure(x, probabilities, subject.classes, fcn.window, fcn.stride)
    path = save_figure(figure, Path(out) / "heatmaps.png")
    summary = {
        "window": fcn.window,
        "stride": fcn.stride,
        "positions": (rows, cols),
        "exact": fcn.exact,
        "best": best,
        "probabilities": probabilities,
    }
    return [path], summary
