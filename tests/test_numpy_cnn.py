"""The NumPy CNN: hand-written gradients against finite differences and autograd; training."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from antlers.conv.numpy_cnn import (
    NumpyCNN,
    TrainResult,
    softmax_cross_entropy,
    softmax_cross_entropy_backward,
    train_digits,
)


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``f()`` w.r.t. every entry of ``x`` (changed in place, restored)."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + eps
        up = f()
        x[index] = saved - eps
        down = f()
        x[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


def tiny_problem(seed: int = 0) -> tuple[NumpyCNN, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    model = NumpyCNN((2, 6, 6), channels=3, classes=4, seed=seed)
    model.params["conv_b"][:] = rng.normal(0, 0.1, 3)  # non-zero biases test their gradients too
    model.params["fc_b"][:] = rng.normal(0, 0.1, 4)
    return model, rng.standard_normal((5, 2, 6, 6)), rng.integers(0, 4, 5)


def test_gradients_equal_finite_differences() -> None:
    model, x, labels = tiny_problem()
    grads = model.backward(softmax_cross_entropy_backward(model.forward(x), labels))

    def loss() -> float:
        return softmax_cross_entropy(model.forward(x), labels)

    for name, param in model.params.items():
        assert grads[name].shape == param.shape, name
        expected = numerical_gradient(loss, param)
        np.testing.assert_allclose(grads[name], expected, rtol=1e-5, atol=1e-8, err_msg=name)


def test_gradients_equal_torch_autograd() -> None:
    model, x, labels = tiny_problem(seed=1)
    logits = model.forward(x)
    loss = softmax_cross_entropy(logits, labels)
    grads = model.backward(softmax_cross_entropy_backward(logits, labels))

    p = {name: torch.from_numpy(a.copy()).requires_grad_() for name, a in model.params.items()}
    z = nnf.conv2d(torch.from_numpy(x), p["conv_w"], p["conv_b"], padding=1)
    pooled = nnf.max_pool2d(torch.relu(z), 2)
    torch_logits = pooled.flatten(1) @ p["fc_w"].T + p["fc_b"]
    torch_loss = nnf.cross_entropy(torch_logits, torch.from_numpy(labels))
    torch_loss.backward()

    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert loss == pytest.approx(torch_loss.item(), rel=1e-12)
    for name, tensor in p.items():
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_predict_keeps_the_cache_of_forward() -> None:
    model, x, labels = tiny_problem()
    grad_logits = softmax_cross_entropy_backward(model.forward(x), labels)
    expected = model.backward(grad_logits)
    assert model.predict(x[:2]).shape == (2,)
    for name, grad in model.backward(grad_logits).items():
        np.testing.assert_array_equal(grad, expected[name])


def test_softmax_cross_entropy_equals_torch_with_large_logits() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)) * 50 + 700  # exp() alone would overflow
    labels = rng.integers(0, 5, 6)
    t_logits = torch.from_numpy(logits).requires_grad_()
    t_loss = nnf.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()
    assert softmax_cross_entropy(logits, labels) == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(
        softmax_cross_entropy_backward(logits, labels), t_logits.grad.numpy(), atol=1e-15
    )


def test_backward_needs_a_forward() -> None:
    model = NumpyCNN()
    with pytest.raises(ValueError, match="forward"):
        model.backward(np.zeros((1, 10)))


def test_training_is_deterministic_by_seed() -> None:
    first = train_digits(epochs=1, seed=3)
    second = train_digits(epochs=1, seed=3)
    assert first.step_losses == second.step_losses
    np.testing.assert_array_equal(first.kernels, second.kernels)
    assert train_digits(epochs=1, seed=4).step_losses != first.step_losses


def test_training_on_digits_reaches_95_percent_in_ten_epochs() -> None:
    """The default 10 epochs of 45 steps: the work is counted in steps, not in seconds, which
    depend on how busy the machine's cores are."""
    seen: list[tuple[int, float, float]] = []
    result = train_digits(seed=0, progress=lambda epoch, loss, acc: seen.append((epoch, loss, acc)))
    assert isinstance(result, TrainResult)
    assert len(result.losses) == 10
    assert result.test_accuracy >= 0.95
    assert result.train_accuracy >= result.test_accuracy - 0.05
    assert result.losses[-1] < result.losses[0] / 5
    assert [epoch for epoch, _, _ in seen] == list(range(1, len(result.losses) + 1))
    assert seen[-1][2] == pytest.approx(result.test_accuracy)
    assert result.kernels.shape == (16, 3, 3)
    np.testing.assert_array_equal(result.kernels, result.model.params["conv_w"][:, 0])
    assert len(result.step_losses) == len(result.losses) * int(np.ceil(1437 / 32))
