"""fast_resnet's first layer: kernels from the patches' eigenvectors, checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from antlers.tasks.classify.whitening import PatchWhitening, patch_whitening_weights


def _patches(images: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """Every 3x3 patch (no padding) of the normalised images, flattened as (C, 3, 3): NumPy."""
    x = (images / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    n, _, h, w = x.shape
    rows = [
        x[:, :, i : i + 3, j : j + 3].reshape(n, -1) for i in range(h - 2) for j in range(w - 2)
    ]
    return np.concatenate(rows)


@pytest.mark.parametrize("channels", [1, 3])
def test_kernels_whiten_the_patches(channels: int) -> None:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(40, channels, 14, 14, generator=g), 3, 1)
    images = (smooth * 255).round().to(torch.uint8)  # correlated neighbours, like real images
    mean, std = [0.5] * channels, [0.1] * channels
    keep, eps = 6, 5e-4
    kernels = patch_whitening_weights(images, mean, std, keep=keep, eps=eps)
    assert kernels.shape == (keep, channels, 3, 3)

    p = _patches(images.numpy().astype(np.float64), mean, std)
    sigma = p.T @ p / len(p)
    values = np.linalg.eigh(sigma)[0][::-1][:keep]
    w = kernels.reshape(keep, -1).double().numpy()
    # W Sigma W^T = diag(lambda / (lambda + eps)): decorrelated outputs of about unit variance
    np.testing.assert_allclose(w @ sigma @ w.T, np.diag(values / (values + eps)), atol=2e-4)
    top = np.abs(w).argmax(1)
    assert (w[np.arange(keep), top] > 0).all()  # the sign convention


def test_layer_is_frozen_and_pairs_each_kernel_with_its_negative() -> None:
    kernels = torch.randn(4, 2, 3, 3)
    layer = PatchWhitening(2, 4, kernels=kernels)
    assert layer.out_channels == 8
    assert not layer.weight.requires_grad
    torch.testing.assert_close(layer.weight[:4], kernels)
    torch.testing.assert_close(layer.weight[4:], -kernels)
    x = torch.randn(1, 2, 5, 5)
    y = layer(x)
    torch.testing.assert_close(y[:, :4], -y[:, 4:])  # zero bias at the start
    y.sum().backward()
    assert layer.weight.grad is None
    assert layer.bias.grad is not None


def test_keep_larger_than_the_patch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"keep must be in 1\.\.9"):
        patch_whitening_weights(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0.5], [0.2], keep=10)
