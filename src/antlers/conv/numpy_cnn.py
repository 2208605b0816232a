"""A whole CNN in NumPy alone, trained by the hand-written backward pass of ``ops.py``.

The network (images ``(N, 1, H, W)``, here scikit-learn's 8x8 digits scaled to [0, 1])::

    conv 3x3, 1 -> C channels, padding 1   (N, C, H, W)
    ReLU                                   (N, C, H, W)
    max pool 2x2                           (N, C, H/2, W/2)
    flatten                                (N, C*H/2*W/2)
    fully connected -> 10 classes          (N, 10)  logits
    softmax cross-entropy                  scalar loss (mean over the batch)

Backward runs the same chain in reverse, each step by the rule written beside its forward rule.
Training is plain minibatch SGD with momentum (and optional weight decay), deterministic by seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from antlers.conv import ops

__all__ = [
    "NumpyCNN",
    "TrainResult",
    "load_digits_split",
    "softmax_cross_entropy",
    "softmax_cross_entropy_backward",
    "train_digits",
]


# ---------------------------------------------------------------------------- loss


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the batch of ``-log softmax(logits)[label]``; logits (N, K), labels (N,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)  # same softmax, no overflow
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def softmax_cross_entropy_backward(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Gradient of :func:`softmax_cross_entropy` w.r.t. the logits: ``(softmax - onehot) / N``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(len(labels)), labels] -= 1.0
    return probs / len(labels)


# ---------------------------------------------------------------------------- the network


class NumpyCNN:
    """conv 3x3 (padding 1) -> ReLU -> max pool 2x2 -> flatten -> fully connected.

    ``params`` maps ``"conv_w" (C, Cin, 3, 3)``, ``"conv_b" (C,)``, ``"fc_w" (classes, F)`` and
    ``"fc_b" (classes,)`` to arrays, with ``F = C * (H // 2) * (W // 2)``. ``forward`` caches what
    ``backward`` needs; ``backward`` returns gradients under the same keys.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 8, 8),
        channels: int = 16,
        classes: int = 10,
        seed: int = 0,
        dtype: type[np.floating] = np.float64,
    ) -> None:
        c_in, h, w = image_shape
        features = channels * (h // 2) * (w // 2)
        rng = np.random.default_rng(seed)
        # He initialisation for the ReLU layer, 1/sqrt(fan_in) for the output layer.
        self.params: dict[str, np.ndarray] = {
            "conv_w": rng.normal(0, np.sqrt(2 / (c_in * 9)), (channels, c_in, 3, 3)).astype(dtype),
            "conv_b": np.zeros(channels, dtype),
            "fc_w": rng.normal(0, np.sqrt(1 / features), (classes, features)).astype(dtype),
            "fc_b": np.zeros(classes, dtype),
        }
        self._cache: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(N, classes)`` of images ``x (N, Cin, H, W)``; caches what backward needs."""
        logits, self._cache = self._forward(x)
        return logits

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        p = self.params
        z = ops.conv2d(x, p["conv_w"], p["conv_b"], padding=1)  # (N, C, H, W)
        a = ops.relu(z)
        pooled = ops.max_pool2d(a, 2)  # (N, C, H/2, W/2)
        flat = pooled.reshape(len(x), -1)  # (N, F)
        logits = flat @ p["fc_w"].T + p["fc_b"]  # (N, classes)
        return logits, {"x": x, "z": z, "a": a, "pooled": pooled, "flat": flat}

    def backward(self, grad_logits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the loss w.r.t. every parameter, given ``grad_logits (N, classes)``."""
        if not self._cache:
            raise ValueError("backward() needs a forward() first")
        c, p = self._cache, self.params
        grads = {"fc_w": grad_logits.T @ c["flat"], "fc_b": grad_logits.sum(axis=0)}
        grad_pooled = (grad_logits @ p["fc_w"]).reshape(c["pooled"].shape)
        grad_a = ops.max_pool2d_backward(grad_pooled, c["a"], 2)
        grad_z = ops.relu_backward(grad_a, c["z"])
        _, grads["conv_w"], grads["conv_b"] = ops.conv2d_backward(
            grad_z, c["x"], p["conv_w"], padding=1
        )
        return grads

    def predict(self, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Predicted class ``(N,)`` of images ``x (N, Cin, H, W)`` (leaves the cache alone)."""
        starts = range(0, len(x), batch_size)
        logits = [self._forward(x[i : i + batch_size])[0] for i in starts]
        return np.concatenate(logits).argmax(axis=1)

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        """Fraction of ``x`` classified as ``labels``."""
        return float(np.mean(self.predict(x) == labels))


# ---------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_digits` returns.

    losses: mean training loss of every epoch; step_losses: the loss of every minibatch;
    kernels: the learned first-layer kernels ``(C, 3, 3)``.
    """

    model: NumpyCNN
    losses: list[float]
    step_losses: list[float]
    train_accuracy: float
    test_accuracy: float
    seconds: float
    kernels: np.ndarray


def load_digits_split(
    seed: int = 0, test_size: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1]: ``(x_train, x_test, y_train, y_test)``.

    Images are ``(N, 1, 8, 8)`` float64; the split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_size, random_state=seed, stratify=digits.target
    )
    return x_train, x_test, y_train, y_test


def sgd_step(
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    velocity: dict[str, np.ndarray],
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    """One SGD step with momentum, in place: ``v = momentum*v + g + wd*p``, ``p -= lr*v``.

    Weight decay applies to the weights only, not the biases.
    """
    for name, param in params.items():
        grad = grads[name] + (weight_decay * param if name.endswith("_w") else 0.0)
        velocity[name] = momentum * velocity[name] + grad
        param -= lr * velocity[name]


def train_digits(
    epochs: int = 10,
    seed: int = 0,
    lr: float = 0.1,
    batch_size: int = 32,
    channels: int = 16,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    progress: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Train :class:`NumpyCNN` on the digits with SGD + momentum; deterministic by ``seed``.

    ``progress(epoch, mean_loss, test_accuracy)`` is called after every epoch (epochs from 1).
    """
    start = time.perf_counter()
    x_train, x_test, y_train, y_test = load_digits_split(seed)
    model = NumpyCNN(x_train.shape[1:], channels=channels, seed=seed)
    velocity = {name: np.zeros_like(p) for name, p in model.params.items()}
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    step_losses: list[float] = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        epoch_losses = []
        for i in range(0, len(order), batch_size):
            batch = order[i : i + batch_size]
            logits = model.forward(x_train[batch])
            epoch_losses.append(softmax_cross_entropy(logits, y_train[batch]))
            grads = model.backward(softmax_cross_entropy_backward(logits, y_train[batch]))
            sgd_step(model.params, grads, velocity, lr, momentum, weight_decay)
        step_losses.extend(epoch_losses)
        losses.append(float(np.mean(epoch_losses)))
        if progress is not None:
            progress(epoch, losses[-1], model.accuracy(x_test, y_test))
    return TrainResult(
        model=model,
        losses=losses,
        step_losses=step_losses,
        train_accuracy=model.accuracy(x_train, y_train),
        test_accuracy=model.accuracy(x_test, y_test),
        seconds=time.perf_counter() - start,
        kernels=model.params["conv_w"][:, 0].copy(),
    )
