"""What each task's exported graph computes: the run's network wrapped to the ONNX convention.

Every graph takes ``images``, float32 (N, C, H, W) in [0, 1]: normalisation is inside (each
model's first layer), and so is the test-time averaging over mirrored (and a classifier's
one-pixel-shifted) views when the run was trained with flips (and crops):
``tasks.tta.tta_logits``. Outputs, per task:

* classify: ``logits`` (N, K), the model's input size, any batch size;
* segment: ``logits`` (N, K, H, W) for any batch size and image size (the U-Net's padding to a
  multiple of 2**depth is always applied, zero-wide at multiples, so no size is baked in);
* detect: ``boxes`` (n, 4) xyxy in input pixels, ``scores`` (n,), ``labels`` (n,) int64 for one
  image (N = 1) of the model's size: proposals, RoI crops and both NMS passes are inside;
* generate: the denoiser eps(x_t, t, y): ``images`` x_t (N, C, H, W) in [-1, 1], ``timesteps``
  (N,) int64 in [0, T), ``labels`` (N,) int64 (-1 or K: the null class) -> ``noise``
  (N, C, H, W), so any sampler can drive it.

``graph_spec(run)`` gives the module to export, an example input and its dynamic axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antlers.tasks.tta import tta_logits

__all__ = ["GraphSpec", "graph_spec"]


class ClassifyGraph(nn.Module):
    """images (N, C, H, W) in [0, 1] -> logits (N, K), view-averaged as the run predicts."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return tta_logits(self.model, images)


class SegmentGraph(nn.Module):
    """images (N, C, H, W) in [0, 1] -> logits (N, K, H, W): ``Segmenter.forward`` with its
    padding always applied (a size-dependent branch would be traced for one size only)."""

    def __init__(self, segmenter: nn.Module):
        super().__init__()
        self.segmenter = segmenter

    def logits(self, images: Tensor) -> Tensor:
        s = self.segmenter
        h, w = images.shape[-2:]
        x = (images - s.mean) / s.std
        x = F.pad(x, (0, -w % s.multiple, 0, -h % s.multiple), mode="replicate")
        return s.net(x)[..., :h, :w]

    def forward(self, images: Tensor) -> Tensor:
        logits = self.logits(images)
        if self.segmenter.tta_flip:
            logits = (logits + self.logits(images.flip(-1)).flip(-1)) / 2
        return logits


class DetectGraph(nn.Module):
    """images (1, 3, S, S) in [0, 1] -> boxes (n, 4), scores (n,), labels (n,) of that image."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        found = self.detector(images)[0]
        return found["boxes"], found["scores"], found["labels"]


@dataclass(frozen=True)
class GraphSpec:
    """What to export: ``module``, an ``example`` input per name, the ``outputs``' names, the
    ``dynamic`` axes per input name (axis -> name), and the ``exporter`` that handles it."""

    module: nn.Module
    example: dict[str, Tensor]
    outputs: tuple[str, ...]
    dynamic: dict[str, dict[int, str]]
    exporter: str  # "dynamo" (torch.export) or "torchscript" (the tracing exporter)


def graph_spec(run: Any, dynamic: bool = True) -> GraphSpec:
    """The graph of ``run`` (a loaded ``Run``) with an example input of batch 2 at the model's
    size (batch 1 for the detector); ``dynamic`` marks the axes listed in the module docstring."""
    config, model = run.model_config, run.model.eval()
    c, (h, w) = config.in_channels, config.image_size
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, c, h, w, generator=g)
    batch = {0: "batch"} if dynamic else {}
    if run.task.name == "classify":
        return GraphSpec(
            ClassifyGraph(model), {"images": images}, ("logits",), {"images": batch}, "dynamo"
        )
    if run.task.name == "segment":
        axes = {0: "batch", 2: "height", 3: "width"} if dynamic else {}
        return GraphSpec(
            SegmentGraph(model), {"images": images}, ("logits",), {"images": axes}, "dynamo"
        )
    if run.task.name == "detect":
        found = {0: "detections"}  # the count of boxes is the data's, even in a fixed graph
        axes = {"boxes": found, "scores": found, "labels": found}
        return GraphSpec(
            DetectGraph(model),
            {"images": images[:1]},
            ("boxes", "scores", "labels"),
            axes,
            "torchscript",
        )
    if run.task.name == "generate":
        example = {
            "images": images * 2 - 1,
            "timesteps": torch.tensor([1, config.timesteps - 1]),
            "labels": torch.tensor([0, -1]),
        }
        axes = dict.fromkeys(example, batch)
        return GraphSpec(model, example, ("noise",), axes, "dynamo")
    raise ValueError(
        f"no ONNX graph for task {run.task.name!r}; allowed: classify, segment, detect, generate"
    )
