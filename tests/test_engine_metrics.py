"""The one confusion matrix: counts equal torchmetrics' multiclass confusion matrix (the oracle)
for labels and for pixels, with and without an ignored target value."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

from antlers.engine.metrics import confusion_matrix


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(50,), (3, 9, 11)])
def test_counts_equal_torchmetrics(seed: int, shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(seed)
    k = 7
    target = torch.randint(0, k - 1, shape, generator=generator)  # class 6: only ever predicted
    predicted = torch.where(
        torch.rand(shape, generator=generator) < 0.5,
        target,
        torch.randint(0, k, shape, generator=generator),
    )
    matrix = confusion_matrix(predicted, target, k)
    assert matrix.dtype == torch.int64
    assert torch.equal(matrix, multiclass_confusion_matrix(predicted, target, k))
    assert int(matrix.sum()) == target.numel()


@pytest.mark.parametrize("seed", range(4))
def test_ignored_targets_are_left_out_as_torchmetrics_does(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    k, shape = 5, (2, 16, 20)
    target = torch.randint(0, k, shape, generator=generator)
    target[torch.rand(shape, generator=generator) < 0.2] = 255
    predicted = torch.randint(0, k, shape, generator=generator)
    matrix = confusion_matrix(predicted, target, k, ignore_index=255)
    oracle = multiclass_confusion_matrix(predicted, target, k, ignore_index=255)
    assert torch.equal(matrix, oracle)
    assert int(matrix.sum()) == int((target != 255).sum())


def test_rows_are_true_classes_and_columns_predictions() -> None:
    matrix = confusion_matrix(torch.tensor([1, 1, 2]), torch.tensor([0, 1, 1]), 3)
    assert matrix.tolist() == [[0, 1, 0], [0, 1, 1], [0, 0, 0]]


def test_bad_input_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match=r"predicted \(3,\) and target \(2,\) differ in shape"):
        confusion_matrix(torch.zeros(3, dtype=torch.long), torch.zeros(2, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"target has values outside 0..2: 0..255"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 255]), 3)  # 255 not ignored
    with pytest.raises(ValueError, match=r"predicted has values outside 0..2: -1..1"):
        confusion_matrix(torch.tensor([-1, 1]), torch.tensor([0, 1]), 3)
