"""antlers.explain against independent oracles: brute force, autograd, CAM, explicit loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from antlers.explain import (
    feature_maps,
    fully_convolutional,
    grad_cam,
    kernel_grid,
    layer_rf,
    sliding_window_logits,
    top_k_activations,
)
from antlers.explain.topk import crop_window
from antlers.nn.lecture import lecture_cnn
from antlers.tasks.classify.models import build_classifier
from conftest import classify_config


def _images(n: int = 60, size: int = 20, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    images[n // 2 : n // 2 + 5] = images[: len(images[n // 2 : n // 2 + 5])]  # ties to break
    return images


def _brute_force(acts: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (N, C, H, W) activations at once; order by (value desc, image index asc)."""
    a = acts.flatten(2).numpy()
    maxima, where = a.max(axis=2), a.argmax(axis=2)  # numpy: first maximum
    n, c = maxima.shape
    values, indices, positions = (np.zeros((c, k)) for _ in range(3))
    for ch in range(c):
        order = np.lexsort((np.arange(n), -maxima[:, ch]))[:k]
        values[ch], indices[ch], positions[ch] = maxima[order, ch], order, where[order, ch]
    return values, indices, positions


@pytest.mark.parametrize(("layer", "depth"), [("relu1", 2), ("pool2", 6)])
def test_top_k_equals_brute_force(layer: str, depth: int) -> None:
    torch.manual_seed(0)
    model = lecture_cnn(in_shape=(3, 20, 20), classes=["a", "b"]).eval()
    images = _images()
    result = top_k_activations(model, layer, images, k=5, batch_size=7)  # 9 merges
    with torch.no_grad():
        acts = model[:depth](images.float() / 255)  # the slice of the Sequential: no hooks
    values, indices, positions = _brute_force(acts, 5)
    # float32 to rounding (the search runs a channels_last copy), order and positions exactly
    np.testing.assert_allclose(result.values.numpy(), values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.indices.numpy(), indices)
    width = acts.shape[3]
    flat = result.positions[..., 0] * width + result.positions[..., 1]
    np.testing.assert_array_equal(flat.numpy(), positions)


def test_patch_is_the_analytic_window() -> None:
    # lecture_cnn: conv 3, pool 2, conv 3, pool 2 -> field 10, jump 4, unit i sees [4i, 4i+10).
    torch.manual_seed(1)
    model = lecture_cnn(in_shape=(3, 20, 20), classes=["a", "b"]).eval()
    result = top_k_activations(model, "pool2", _images(), k=4)
    assert (result.rf[0].size, result.rf[0].jump) == (10, 4)
    rows, cols = result.positions[..., 0], result.positions[..., 1]
    expected = torch.stack([4 * rows, 4 * rows + 10, 4 * cols, 4 * cols + 10], dim=-1)
    assert torch.equal(result.windows, expected)


def _positive_net() -> nn.Sequential:
    """Convs with positive weights and average pooling: no unit's gradient is ever zero."""
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 5, 3),
        nn.AvgPool2d(2),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.abs_().add_(0.01)
    return net.eval()


def _gradient_support(net: nn.Module, image: torch.Tensor, c: int, y: int, x: int) -> torch.Tensor:
    image = image.clone().requires_grad_(True)
    net(image[None])[0, c, y, x].backward()
    return image.grad.abs().sum(0) > 0  # (H, W)


def test_patch_equals_the_support_of_the_input_gradient() -> None:
    net, images = _positive_net(), _images(n=12, size=21).float() / 255
    result = top_k_activations(net, "4", images, k=3)
    assert (result.rf[0].size, result.rf[0].jump) == (10, 4)
    for c in range(5):
        for j in range(3):
            (y, x), window = result.positions[c, j].tolist(), result.windows[c, j]
            support = _gradient_support(net, images[int(result.indices[c, j])], c, y, x)
            expected = torch.zeros(21, 21, dtype=torch.bool)
            y0, y1, x0, x1 = (int(v) for v in window)
            expected[max(y0, 0) : y1, max(x0, 0) : x1] = True  # the padding is not in the image
            assert torch.equal(support, expected), (c, j, window)
            assert window[0] == 4 * y - 1  # conv padding 1 moves the field up-left by one


def test_max_pool_gradient_stays_inside_the_window() -> None:
    torch.manual_seed(3)
    model = lecture_cnn(in_shape=(3, 20, 20), classes=["a", "b"]).eval()
    images = _images(n=8).float() / 255
    result = top_k_activations(model, "conv2", images, k=2)
    for c in range(10):
        (y, x), (y0, y1, x0, x1) = result.positions[c, 0].tolist(), result.windows[c, 0].tolist()
        support = _gradient_support(model[:4], images[int(result.indices[c, 0])], c, y, x)
        inside = torch.zeros_like(support)
        inside[y0:y1, x0:x1] = True
        assert support.any()
        assert not (support & ~inside).any()


def test_crop_window_fills_outside_the_image() -> None:
    image = torch.arange(16.0).view(1, 4, 4)
    patch = crop_window(image, (-1, 2, 2, 5), fill=-7.0)
    assert patch.shape == (1, 3, 3)
    assert patch[0, 0].tolist() == [-7.0] * 3
    assert patch[0, 1].tolist() == [2.0, 3.0, -7.0]


def _two_blob_cam_net() -> nn.Sequential:
    """Channel 0 sees red, channel 1 green; global average pool; class c <- channel c."""
    net = nn.Sequential(
        nn.Conv2d(3, 2, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2, 2),
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1, 0], [-1, 1, 0]]).view(2, 3, 1, 1))
        net[0].bias.zero_()
        net[5].weight.copy_(torch.tensor([[2.0, 0.5], [0.3, 1.5]]))
        net[5].bias.zero_()
    return net.eval()


def test_grad_cam_peaks_on_the_object_and_equals_cam() -> None:
    image = torch.full((3, 32, 32), 0.3)
    image[:, 4:10, 4:10] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # red, top left
    image[:, 18:28, 20:30] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]  # green, bottom right
    net = _two_blob_cam_net()
    cams, classes = grad_cam(net, image[None].repeat(2, 1, 1, 1), target=torch.tensor([0, 1]))
    assert cams.shape == (2, 32, 32)
    assert classes.tolist() == [0, 1]
    for cam, (y0, y1, x0, x1) in zip(cams, [(4, 10, 4, 10), (18, 28, 20, 30)], strict=True):
        y, x = divmod(int(cam.argmax()), 32)
        assert y0 <= y < y1
        assert x0 <= x < x1
        assert float(cam.max()) == pytest.approx(1.0)
    # CAM (Zhou et al. 2016), the oracle: sum_k W[c, k] A^k at the layer before the pooling.
    with torch.no_grad():
        a = net[:3](image[None])[0]  # (2, 16, 16)
    for c in range(2):
        cam = torch.relu(torch.einsum("k,khw->hw", net[5].weight[c], a))
        cam = torch.nn.functional.interpolate(cam[None, None], size=(32, 32), mode="bilinear")
        torch.testing.assert_close(cams[c], cam[0, 0] / cam.max())
    _, predicted = grad_cam(net, image[None], layer="2")
    assert predicted.tolist() == [int(net(image[None]).argmax())]


def test_fully_convolutional_equals_the_explicit_sliding_window() -> None:
    torch.manual_seed(4)
    model = lecture_cnn(in_shape=(3, 22, 26), classes=["moose", "elk", "none"]).eval()
    fcn = fully_convolutional(model)
    assert fcn.window == (22, 26)
    assert fcn.stride == (4, 4)
    assert fcn.exact
    for height, width in [(22, 26), (41, 50), (53, 29)]:
        image = torch.rand(3, height, width)
        heat = fcn(image[None])[0]
        explicit = sliding_window_logits(model, image, fcn.window, fcn.stride)
        assert heat.shape == explicit.shape == (3, *fcn.output_size(height, width))
        torch.testing.assert_close(heat, explicit, rtol=1e-5, atol=1e-5)
    boxes = fcn.window_boxes(2, 3)
    assert boxes[4].tolist() == [4.0, 4.0, 30.0, 26.0]  # row 1, col 1: x 4..30, y 4..26


def _classifier(name: str, channels: int, size: int, classes: str) -> nn.Module:
    return build_classifier(classify_config(name, channels, size, classes=list(classes)))


@pytest.mark.parametrize("name", ["fast_resnet", "alexnet_small", "lecture_cnn"])
def test_classifier_models_become_convolutional(name: str) -> None:
    torch.manual_seed(5)
    model = _classifier(name, 1, 28, "abcd").eval()
    fcn = fully_convolutional(model, window=(28, 28))
    x = torch.rand(1, 1, 28, 28)
    torch.testing.assert_close(fcn(x)[0, :, 0, 0], model(x)[0], rtol=1e-5, atol=1e-5)
    assert fcn(torch.rand(2, 1, 60, 44)).shape == (2, 4, *fcn.output_size(60, 44))
    assert fcn.exact == (name == "lecture_cnn")  # the others pad their convolutions


def test_unsupported_models_are_refused() -> None:
    with pytest.raises(ValueError, match="no conv backbone followed by Flatten"):
        fully_convolutional(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)))
    with pytest.raises(ValueError, match=r"supported: nn\.Sequential"):
        fully_convolutional(nn.Bilinear(2, 2, 2))
    model = _classifier("alexnet_small", 3, 32, "ab")
    with pytest.raises(ValueError, match="uneven windows"):  # 8 -> 3: windows of 3, 4, 3
        fully_convolutional(model, window=32)
    with pytest.raises(ValueError, match="window=\\(h, w\\)"):
        fully_convolutional(model)


def test_torchvision_resnet18() -> None:
    import torchvision

    torch.manual_seed(6)
    model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    images = torch.rand(6, 3, 64, 64)
    result = top_k_activations(model, "layer2", images, k=3, batch_size=4)
    assert result.values.shape == (128, 3)
    assert result.rf[0].jump == 8
    with torch.no_grad():
        acts = nn.Sequential(*list(model.children())[:6])(images)
    _values, indices, _ = _brute_force(acts, 3)
    np.testing.assert_array_equal(result.indices.numpy(), indices)
    cams, classes = grad_cam(model, images[:2])
    assert cams.shape == (2, 64, 64)
    assert classes.shape == (2,)
    maps = feature_maps(model, images[0])
    assert maps["conv1"].shape == (64, 32, 32)
    assert maps["maxpool"].shape == (64, 16, 16)
    assert kernel_grid(model.conv1.weight).shape[0] == 3
    fcn = fully_convolutional(model, window=64)
    torch.testing.assert_close(fcn(images[:1])[0, :, 0, 0], model(images[:1])[0])
    assert layer_rf(model, "layer4", (3, 64, 64))[0].jump == 32


def test_kernel_grid_normalises_each_kernel() -> None:
    weight = torch.randn(10, 3, 5, 5) * torch.arange(1, 11.0).view(10, 1, 1, 1)
    grid = kernel_grid(weight, columns=5)
    assert grid.shape == (3, 2 * 6 + 1, 5 * 6 + 1)
    first = grid[:, 1:6, 1:6]  # the first tile, after the 1-pixel gap
    assert float(first.min()) == 0.0
    assert float(first.max()) == pytest.approx(1.0)
    gray = kernel_grid(torch.randn(4, 1, 3, 3))
    assert torch.equal(gray[0], gray[1])  # grey tiles for one input channel
    numpy_kernels = np.random.default_rng(0).normal(size=(8, 1, 3, 3))  # the NumPy CNN's
    assert torch.equal(kernel_grid(numpy_kernels), kernel_grid(torch.from_numpy(numpy_kernels)))
