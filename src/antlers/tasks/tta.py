"""Test-time augmentation: inference logits averaged over the views a model was trained on.

A model trained with flips (``model.tta_flip``) is also asked about the mirrored images; a
classifier trained with random crops (``model.tta_shift``, from ``--crop``) also about the images
shifted one pixel along each axis. Evaluation, ``predict`` and the exported ONNX graphs all go
through :func:`tta_logits`.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["TTA_SHIFTS", "shifted", "tta_logits"]

# The one-pixel shifts (rows, columns) a classifier trained with random crops is also averaged
# over at test time: airbench's translated views, along each axis.
TTA_SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def shifted(images: Tensor, rows: int, columns: int) -> Tensor:
    """``images`` (B, C, H, W) moved by ``rows`` down and ``columns`` right (negative: up, left),
    the uncovered border filled with zeros as ``--crop`` pads; at most one pixel each way."""
    h, w = images.shape[-2:]
    padded = F.pad(images, (1, 1, 1, 1))
    return padded[..., 1 - rows : 1 - rows + h, 1 - columns : 1 - columns + w]


def tta_logits(model: nn.Module, images: Tensor, dense: bool = False) -> Tensor:
    """Inference logits, float32, averaged over test-time views (test-time augmentation):

    * with the mirrored images' when the model was trained with flips (``model.tta_flip``; one
      more forward pass). ``dense``: the logits are maps (B, K, H, W), mirrored back first;
    * for a classifier trained with random crops (``model.tta_shift``; not ``dense``), with the
      images shifted one pixel along each axis (``TTA_SHIFTS``, unmirrored): the unshifted
      views weigh 1/2, each shifted one 1/8 (four more passes).
    """
    logits = model(images).float()
    if model.tta_flip:
        mirrored = model(images.flip(-1)).float()
        logits = (logits + (mirrored.flip(-1) if dense else mirrored)) / 2
    if getattr(model, "tta_shift", False):
        if dense:
            raise ValueError("shifted test-time views are for classification logits only")
        moved = sum(model(shifted(images, r, c)).float() for r, c in TTA_SHIFTS)
        logits = (logits + moved / len(TTA_SHIFTS)) / 2
    return logits
