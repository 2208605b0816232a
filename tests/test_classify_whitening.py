"""fast_resnet's first layer: kernels from the patches' eigenvectors, checked against NumPy;
its bias and ReLU after the pool, checked against the conv-bias-ReLU-pool order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from antlers.tasks.classify.models import fast_resnet
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
    assert layer.bias is None
    assert not layer.weight.requires_grad
    torch.testing.assert_close(layer.weight[:4], kernels)
    torch.testing.assert_close(layer.weight[4:], -kernels)
    y = layer(torch.randn(1, 2, 5, 5))
    torch.testing.assert_close(y[:, :4], -y[:, 4:])
    assert not y.requires_grad  # nothing to backpropagate into at full resolution


def test_stem_is_conv_bias_relu_then_pool() -> None:
    """Oracle: the textbook order, conv with the bias -> ReLU -> 2x2 max pool, and autograd's
    gradient of the bias through it; the stem pools first and adds the bias after."""
    torch.manual_seed(0)
    net = fast_resnet(1, 10, whitening=torch.randn(8, 1, 3, 3))
    stem, bias = net[:3], net[2].bias
    with torch.no_grad():
        bias.normal_()
    x, upstream = torch.randn(6, 1, 12, 10), torch.randn(6, 16, 6, 5)
    (stem(x) * upstream).sum().backward()
    b = bias.detach().clone().requires_grad_()
    expected = F.max_pool2d(F.relu(F.conv2d(x, net[0].weight, b, padding=1)), 2)
    (expected * upstream).sum().backward()
    torch.testing.assert_close(stem(x), expected.detach())
    torch.testing.assert_close(bias.grad, b.grad)


def test_stem_stays_in_bf16_under_autocast() -> None:
    """Under CPU bf16 autocast the stem's output is bf16, as a conv with its own bias gives: a
    float32 bias added after the pool must not promote the activations (and the residual stage
    after them) to float32. The bias itself stays float32 and gets its gradient."""
    torch.manual_seed(0)
    net = fast_resnet(1, 10, whitening=torch.randn(8, 1, 3, 3))
    with torch.autocast("cpu", torch.bfloat16):
        out = net[:4](torch.randn(4, 1, 28, 28))  # stem, then the first residual pair
        expected = F.conv2d(torch.randn(4, 1, 28, 28), net[0].weight, net[2].bias, padding=1)
    assert out.dtype == expected.dtype == torch.bfloat16
    out.float().sum().backward()
    assert net[2].bias.dtype == torch.float32
    assert net[2].bias.grad is not None


def test_weights_saved_with_the_bias_on_the_whitening_layer_load() -> None:
    torch.manual_seed(0)
    net = fast_resnet(1, 10, whitening=torch.randn(8, 1, 3, 3))
    with torch.no_grad():
        net[2].bias.normal_()
    old = {("0.bias" if k == "2.bias" else k): v for k, v in net.state_dict().items()}
    wrapped = torch.nn.Sequential(torch.nn.Identity(), fast_resnet(1, 10))
    wrapped.load_state_dict({"1." + k: v for k, v in old.items()})  # strict: no key left over
    torch.testing.assert_close(wrapped[1][2].bias, net[2].bias)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(wrapped.eval()(x), net.eval()(x))


def test_keep_larger_than_the_patch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"keep must be in 1\.\.9"):
        patch_whitening_weights(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [0.5], [0.2], keep=10)
