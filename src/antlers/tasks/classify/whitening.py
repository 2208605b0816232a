"""Patch whitening: a first convolution whose kernels are computed from the data, not learned.

The K x K patches p of the (normalised) training images have a second-moment matrix
Sigma = E[p p^T] of size C*K*K. Its eigenvectors with the largest eigenvalues are the patterns
the images vary most along: at this scale, smooth ramps, edges and spots, much what a trained
first layer ends up detecting. Each eigenvector v_i divided by sqrt(lambda_i + eps) is a kernel
whose outputs over the patches are uncorrelated with about unit variance (the patches are
"whitened"); each kernel is paired with its negative so that the ReLU after it keeps both signs.
Fast-training records use this first layer (Keller Jordan's hlb-CIFAR10 and airbench, 2023-24);
whitening patches before feature learning goes back to Coates & Ng (2011).

The kernels stay fixed; only a per-channel bias trains, and ``BiasReLU`` adds it after the max
pool that follows the layer: relu(pool(conv(x)) + b) equals pool(relu(conv(x) + b)) exactly,
since adding a constant and the ReLU are both monotone and so commute with the max (floating-
point rounding is monotone too). With no trainable weight before it, the full-resolution
convolution and its pool then need no backward pass at all, and the ReLU runs on a quarter of
the pixels.

Shapes: images (N, C, H, W); kernels (keep, C, K, K); the layer maps C -> 2 * keep channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BiasReLU", "PatchWhitening", "patch_whitening_weights", "whitening_images"]

MAX_PATCHES = 4_000_000  # enough for a stable 27 x 27 estimate; ~5000 28x28 images
CHUNK = 32  # images unfolded at a time: their float64 patches stay in the CPU's caches


@torch.no_grad()
def whitening_images(size: Sequence[int]) -> int:
    """How many images (H, W) = ``size`` give the whitening its ``MAX_PATCHES`` patches: the
    first ones of the training set are used."""
    return max(1, MAX_PATCHES // (size[0] * size[1]))


def patch_whitening_weights(
    images: Tensor,
    mean: list[float],
    std: list[float],
    keep: int,
    kernel_size: int = 3,
    eps: float = 5e-4,
) -> Tensor:
    """(keep, C, K, K) whitening kernels from uint8 ``images`` (N, C, H, W) normalised by the
    per-channel ``mean`` and ``std`` (of [0, 1] pixels): the leading eigenvectors of the patches'
    second-moment matrix, largest eigenvalue first, each scaled by 1 / sqrt(eigenvalue + eps)
    and signed so that its largest-magnitude entry is positive (deterministic everywhere)."""
    n, c, h, w = images.shape
    dims = c * kernel_size * kernel_size
    if not 1 <= keep <= dims:
        raise ValueError(
            f"keep must be in 1..{dims} (C*K*K) for {c}-channel {kernel_size}x"
            f"{kernel_size} patches, got {keep}"
        )
    count = min(n, whitening_images((h, w)))
    shift = torch.tensor(mean, dtype=torch.float64).view(1, c, 1, 1)
    scale = torch.tensor(std, dtype=torch.float64).view(1, c, 1, 1)
    moment = torch.zeros(dims, dims, dtype=torch.float64)
    patches_seen = 0
    for start in range(0, count, CHUNK):
        x = (images[start : min(start + CHUNK, count)].double() / 255 - shift) / scale
        p = F.unfold(x, kernel_size).transpose(1, 2).reshape(-1, dims)  # (patches, dims)
        moment += p.T @ p
        patches_seen += len(p)
    values, vectors = torch.linalg.eigh(moment / patches_seen)  # ascending eigenvalues
    values, vectors = values.flip(0)[:keep], vectors.T.flip(0)[:keep]  # rows: eigenvectors
    signs = vectors.gather(1, vectors.abs().argmax(1, keepdim=True)).sign()
    kernels = signs * vectors / (values.clamp_min(0) + eps).sqrt()[:, None]
    return kernels.float().reshape(keep, c, kernel_size, kernel_size)


class PatchWhitening(nn.Conv2d):
    """A K x K convolution C -> 2 * keep with fixed kernels [W; -W] and no bias (``BiasReLU``
    holds it). Without ``kernels`` the weights keep PyTorch's default initialisation, to be
    overwritten by a state dict (a model rebuilt from a run folder)."""

    def __init__(
        self, in_channels: int, keep: int, kernel_size: int = 3, kernels: Tensor | None = None
    ) -> None:
        super().__init__(in_channels, 2 * keep, kernel_size, padding=kernel_size // 2, bias=False)
        self.weight.requires_grad_(False)
        if kernels is not None:
            with torch.no_grad():
                self.weight.copy_(torch.cat([kernels, -kernels]).view_as(self.weight))


class BiasReLU(nn.Module):
    """relu(x + b) with a trainable per-channel bias b (zero at the start): the whitening layer's
    bias, added after its pool. x (B, C, H, W); b is added in x's dtype (bf16 under autocast, as
    a convolution's own bias is), so the activations after it are not promoted to float32."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.bias.to(x.dtype).view(1, -1, 1, 1))
