"""Tour chapter 5: what CNNs learn.

Looks into chapter 4's classifier (``classify/ch4_run``; when chapter 5 runs alone, a small
classifier is trained on the built-in shapes first): the first layer's kernels (and how they
formed epoch by epoch, when they are learned), one image's feature maps, the test images (and
receptive-field patches) that excite an early and a deep layer most, Grad-CAM, the gradient
norms logged in training, and the moose detector: the classifier made fully convolutional and
slid over a scene holding several objects, one heat map per class.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from antlers.tour.page import Chapter, TourContext, figure, paragraph, table

if TYPE_CHECKING:  # torch is imported inside the functions: `import antlers.tour` stays light
    from torch import Tensor, nn

__all__ = ["explain_chapter"]

FOLDER = "explain"


def _run_folder(ctx: TourContext) -> Path:
    """Chapter 4's run when it is there; else train a small classifier on shapes."""
    ch4 = ctx.out / "classify" / "ch4_run"
    if (ch4 / "weights" / "best.safetensors").is_file():
        return ch4
    from antlers.run import train

    seconds = 5 if ctx.quick else 20
    ctx.log(f"      no chapter 4 run: training fast_resnet on shapes for {seconds} s")
    run = train("classify", data="shapes", time=seconds, out=str(ctx.out / FOLDER), name="run")
    return run.path


def _layers(model: nn.Module, shape: tuple[int, ...]) -> tuple[str, str, str]:
    """An early layer (the second convolution), a deep one, and Grad-CAM's layer."""
    from torch import nn

    from antlers.explain import spatial_layers
    from antlers.explain.gradcam import default_cam_layer

    convs = [name for name, m in spatial_layers(model) if isinstance(m, nn.Conv2d)]
    early = convs[1] if len(convs) > 1 else convs[0]
    return early, default_cam_layer(model, shape), default_cam_layer(model, shape, min_side=6)


def explain_chapter(ctx: TourContext) -> Chapter:
    from antlers.explain.report import explain_model, run_subject
    from antlers.run import Run

    run_dir = _run_folder(ctx)
    subject = run_subject(Run.load(run_dir))  # the tour loads the run: explain sits below run
    model = subject.model.eval()
    shape = (subject.in_channels, *subject.image_size)
    early, deep, cam_layer = _layers(model, shape)
    out = ctx.out / FOLDER
    limit = 1000 if ctx.quick else None
    ctx.log(f"      inspecting {run_dir.name}: top-k for {early} and {deep}")
    files = explain_model(subject, out, layer=deep, limit=limit, cam_layer=cam_layer)
    files += _early_topk(subject, early, limit, out)
    scene, placed = _scene(subject)
    moose = _moose(subject, scene, placed, out)
    return Chapter(
        5, "What CNNs learn", _body(subject, early, deep, files, moose), _summary(subject, moose)
    )


def _early_topk(subject: Any, layer: str, limit: int | None, out: Path) -> list[Path]:
    from antlers.explain.figures import top_k_figure
    from antlers.explain.report import test_images
    from antlers.explain.topk import top_k_activations
    from antlers.viz.figures import save_figure

    images, _ = test_images(subject, limit)
    result = top_k_activations(subject.model, layer, images, k=8)
    path = out / f"topk_{layer.replace('.', '_')}.png"
    return [save_figure(top_k_figure(result, images), path)]


def _scene(subject: Any, count: int = 4) -> tuple[Tensor, list[tuple[int, int, int]]]:
    """Test images of ``count`` classes (classified right where possible) on a larger canvas.

    Returns the scene (C, 2h + h/2, 3w + w/2)-ish and ``(class, top, left)`` of each object;
    positions are multiples of 8 so that a window of the detector lands on each object.
    """
    import torch

    from antlers.explain.report import test_images

    images, labels = test_images(subject, 500)
    with torch.no_grad():
        predicted = subject.model(images.float() / 255).argmax(dim=1)
    picks: dict[int, int] = {}  # class -> test image; classified right when there is one
    for right_only in (True, False):
        for i, (label, guess) in enumerate(zip(labels.tolist(), predicted.tolist(), strict=True)):
            if (label == guess or not right_only) and label not in picks and len(picks) < count:
                picks[label] = i
    h, w = subject.image_size
    step_y, step_x = -(-h // 8) * 8, -(-w // 8) * 8  # a multiple of 8 at least one image
    spots = [(0, 0), (step_y + 8, step_x - 8), (0, 2 * step_x + 8), (step_y + 8, 3 * step_x)]
    canvas = torch.zeros(subject.in_channels, 2 * step_y + 8, 4 * step_x)
    if subject.data not in ("fashion-mnist", "mnist"):  # not black backgrounds: mid-grey
        canvas += 0.5
    placed = []
    for (label, index), (top, left) in zip(picks.items(), spots, strict=False):
        canvas[:, top : top + h, left : left + w] = images[index].float() / 255
        placed.append((label, top, left))
    return canvas, placed


def _moose(subject: Any, scene: Tensor, placed: list[tuple[int, int, int]], out: Path) -> dict:
    """Heat maps over the scene; for each object, the class of the window on it."""
    from antlers.explain.report import slide_image

    _, summary = slide_image(subject, scene, out)
    probabilities, (sy, sx) = summary["probabilities"], summary["stride"]
    rows = []
    for label, top, left in placed:
        window = probabilities[:, top // sy, left // sx]
        rows.append((label, int(window.argmax()), float(window.max())))
    summary["objects"] = rows
    return summary


def _body(subject: Any, early: str, deep: str, files: list[Path], moose: dict) -> str:
    names = {p.stem: p.name for p in files}
    link = f"{FOLDER}/"
    early_key, deep_key = f"topk_{early.replace('.', '_')}", f"topk_{deep.replace('.', '_')}"
    classes = subject.classes
    found = [
        {"object": classes[label], "window says": classes[guess], "probability": f"{p:.2f}"}
        for label, guess, p in moose["objects"]
    ]
    (h, w), (sy, sx) = moose["window"], moose["stride"]
    parts = [
        _kernels_paragraph(subject.model),
        figure(link + names["kernels"], "First-layer kernels of the trained network."),
        _optional(names, "kernel_evolution", "The same kernels epoch by epoch (0 = random)."),
        figure(
            link + names["feature_maps"],
            "One test image through the network: the most active maps of every conv and "
            "pool layer. Each pooling halves the side.",
        ),
        paragraph(
            f"For each channel of a layer, the test images whose maximum response is largest, "
            f"cropped to the receptive field of that maximum (computed streaming over the test "
            f"set, never holding all activations). The early layer {early} sees a few pixels: "
            f"edges, corners, bright or dark strokes; the deep layer {deep} sees most of the "
            f"image: parts and whole objects. This is the hierarchy of features (line -> part "
            f"-> object) the lecture shows for AlexNet's 5th pooling layer."
        ),
        figure(link + names[early_key], f"Early layer {early}: top patches per channel."),
        figure(link + names[deep_key], f"Deep layer {deep}: top patches per channel."),
        figure(
            link + names["gradcam"],
            "Grad-CAM (Selvaraju et al. 2017) for the predicted class: where the evidence is.",
        ),
        _optional(
            names, "grad_norms", "Per-layer gradient norms during training (the engine's log)."
        ),
        paragraph(
            f"The moose detector: slide the classifier over a larger scene. Its fully connected "
            f"layer becomes a convolution with the same weights, so one pass gives the class "
            f"probabilities of every {h}x{w} window at a stride of {sy}x{sx} pixels "
            f"({moose['positions'][0]}x{moose['positions'][1]} windows). The tests prove it "
            f"equal to the explicit sliding window for networks without padding. A classifier has "
            f"no 'nothing' class: empty windows get a class too, which is why a detector adds "
            f"one."
        ),
        table(found),
        figure(link + "heatmaps.png", "Per-class probability of every window over the scene."),
    ]
    return "\n".join(parts)


def _kernels_paragraph(model: nn.Module) -> str:
    from antlers.engine.monitor import first_conv

    text = (
        "The first layer's kernels, each normalised to its own range (AlexNet's figure shows 96 "
        "of them: edge detectors and colour blobs). "
    )
    found = first_conv(model)
    if found is not None and not found[1].weight.requires_grad:
        return paragraph(
            text + "fast_resnet does not learn its first layer: it computes it from the "
            "training images, as the speed records do. The kernels are the leading eigenvectors "
            "of the images' 3x3 patches, scaled to whiten them, each paired with its negative: "
            "smooth ramps, edges and spots, what a first layer learns anyway, for free. The "
            "layers after it learn; chapter 3 shows first-layer kernels learned from random starts."
        )
    return paragraph(
        text + "The engine saves them every epoch, so their formation can be watched: from "
        "random noise at epoch 0 to oriented edges and spots."
    )


def _optional(names: dict[str, str], key: str, caption: str) -> str:
    """A figure that only runs have (kernel history, gradient log); "" when absent."""
    return figure(f"{FOLDER}/{names[key]}", caption) if key in names else ""


def _summary(subject: Any, moose: dict) -> str:
    right = sum(label == guess for label, guess, _ in moose["objects"])
    return (
        f"{subject.data}: kernels, feature maps, top-k, Grad-CAM; moose detector found "
        f"{right} of {len(moose['objects'])} objects"
    )
