"""How good are the samples? FID on a classifier's features, and the class-hit rate.

FID (Heusel et al. 2017) is the Fréchet distance between two Gaussians fitted to features of
real and generated images:

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

Instead of Inception-v3 (trained on ImageNet photos, 299 px, not offline) the features are the
penultimate activations (the input of the last ``nn.Linear``) of a classifier trained with
antlers on the same data set. The numbers are therefore comparable only with each other, so
``fid_report`` always computes the real-vs-real floor too: test images against the same train
reference, with as many images as there are samples (FID is biased upwards for small sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "QualityReport",
    "class_accuracy",
    "classifier_features",
    "fid_report",
    "frechet_distance",
    "run_fid_report",
]


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """FID between feature sets a (N, D) and b (M, D), in float64.

    Tr((S_1 S_2)^(1/2)) is the sum of the square roots of the eigenvalues of S_1 S_2, which are
    those of the symmetric positive semi-definite S_2^(1/2) S_1 S_2^(1/2): no non-symmetric
    matrix square root is needed.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(
            f"features must be (N, D) and (M, D) with N, M >= 2, got {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    a, b = a.double(), b.double()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    values, vectors = torch.linalg.eigh(s2)
    root2 = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = torch.linalg.eigvalsh(root2 @ s1 @ root2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * middle)


@torch.no_grad()
def classifier_features(
    classifier: nn.Module, images: Tensor, batch: int = 500
) -> tuple[Tensor, Tensor]:
    """(features (N, D), logits (N, K)) of images (N, C, H, W) in [0, 1]: the features are what
    enters the classifier's last ``nn.Linear`` (captured with a forward pre-hook)."""
    linears = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the classifier has no nn.Linear layer to take features from")
    captured: list[Tensor] = []
    hook = linears[-1].register_forward_pre_hook(lambda _, args: captured.append(args[0]))
    classifier.eval()
    device = next(classifier.parameters()).device
    logits = []
    try:
        for start in range(0, len(images), batch):
            logits.append(classifier(images[start : start + batch].float().to(device)).cpu())
    finally:
        hook.remove()
    return torch.cat([f.detach().cpu() for f in captured]), torch.cat(logits)


def class_accuracy(logits: Tensor, labels: Tensor) -> float:
    """Share of samples the classifier assigns to the class they were generated for."""
    return float((logits.argmax(1) == labels.cpu()).float().mean())


@dataclass(frozen=True)
class QualityReport:
    fid: float
    floor: float  # real-vs-real: test images against the same train reference, same count
    class_accuracy: float | None  # None for unconditional samples
    n: int

    @property
    def text(self) -> str:
        line = f"FID {self.fid:.2f} (real-vs-real floor {self.floor:.2f}, n={self.n})"
        if self.class_accuracy is not None:
            line += f", samples judged as their class {self.class_accuracy:.1%}"
        return line


def fid_report(
    classifier: nn.Module,
    samples: Tensor,
    reference: Tensor,
    real: Tensor,
    labels: Tensor | None = None,
) -> QualityReport:
    """FID of ``samples`` against ``reference`` (e.g. train images), beside the floor given by
    ``real`` (held-out images, at least as many as samples; the first len(samples) are used).
    All images float (N, C, H, W) in [0, 1]; ``labels``: the requested classes, if conditional."""
    if len(real) < len(samples):
        raise ValueError(f"need >= {len(samples)} real images for the floor, got {len(real)}")
    ref, _ = classifier_features(classifier, reference)
    fake, logits = classifier_features(classifier, samples)
    floor_features, _ = classifier_features(classifier, real[: len(samples)])
    accuracy = class_accuracy(logits, labels) if labels is not None else None
    return QualityReport(
        frechet_distance(fake, ref), frechet_distance(floor_features, ref), accuracy, len(samples)
    )


def run_fid_report(
    run: Any,
    classifier: Any,
    samples: Tensor,
    labels: Tensor | None,
    reference: int = 10_000,
) -> QualityReport:
    """``antlers sample RUN --fid CLASSIFIER_RUN``: the generate ``run``'s data set (train split,
    up to ``reference`` images, as the reference; test split for the floor) through the
    ``classifier`` run, which must have been trained on the same classes. Both are loaded
    :class:`antlers.run.Run` objects: the caller loads them (``antlers.run`` sits above tasks)."""
    from antlers.data import load_dataset

    generator = run.model_config
    if list(classifier.classes) != list(generator.classes):
        raise ValueError(
            f"{classifier.path}: its classes {list(classifier.classes)} differ from the "
            f"generator's {list(generator.classes)}"
        )
    size = generator.image_size[0]
    train = load_dataset(generator.data, "train", image_size=size, download=False)
    test = load_dataset(generator.data, "test", image_size=size, download=False)
    return fid_report(
        classifier.model,
        samples,
        train.head(reference).float() / 255,
        test.images.float() / 255,
        labels,
    )
