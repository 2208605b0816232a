"""The confusion matrix every task's metrics come from (classification: accuracy per class;
segmentation: IoU per class, pooled over pixels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["confusion_matrix"]


def confusion_matrix(
    predicted: Tensor, target: Tensor, num_classes: int, ignore_index: int | None = None
) -> Tensor:
    """(K, K) int64 counts on ``predicted``'s device: ``[t, p]`` = how many elements of class
    ``t`` were predicted as ``p`` (row = true class, column = predicted), K = ``num_classes``.

    predicted, target: integer tensors of one shape, e.g. (B,) labels or (B, H, W) pixels, with
    values in 0..K-1; elements whose target is ``ignore_index`` are left out. Another shape or
    a value outside 0..K-1: ValueError.
    """
    import torch

    if predicted.shape != target.shape:
        raise ValueError(
            f"predicted {tuple(predicted.shape)} and target {tuple(target.shape)} differ in shape"
        )
    if ignore_index is not None:
        keep = target != ignore_index
        predicted, target = predicted[keep], target[keep]
    predicted, target = predicted.long().flatten(), target.long().flatten()
    for name, values in (("predicted", predicted), ("target", target)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} has values outside 0..{num_classes - 1}: "
                f"{int(values.min())}..{int(values.max())}"
            )
    index = target * num_classes + predicted
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)
